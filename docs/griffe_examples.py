"""Griffe extension for the API pages: diffkit's docstrings, read as Markdown.

Two habits of diffkit's docstrings do not fit Griffe's Google-style parser and
Markdown, and this extension adapts them before the docstrings are parsed (the
sources stay as they are; mkdocs.yml loads it through mkdocstrings' ``extensions``):

* the examples section is headed ``Example:``; Griffe knows it as ``Examples:``
  and renders a singular ``Example:`` as an admonition of plain text, so the
  ``>>>`` lines would not be code;
* cross-references are Sphinx roles (``:func:`grad```, ``:class:`~diffkit.Function```),
  which Markdown shows verbatim; they become inline code (``grad``, ``Function``).
"""

from __future__ import annotations

import re
from typing import Any

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")

try:  # only the docs build has griffe; pytest imports this file too (doctest-modules)
    import griffe
except ImportError:  # pragma: no cover
    griffe = None


def plural_examples(text: str) -> str:
    """Rename every ``Example:`` section heading to ``Examples:``.

    Example:
        >>> plural_examples("Summary.\\n\\n    Example:\\n        >>> 1 + 1\\n        2")
        'Summary.\\n\\n    Examples:\\n        >>> 1 + 1\\n        2'
    """
    return _EXAMPLE.sub(r"\1Examples:", text)


def _code(m: re.Match[str]) -> str:
    target = m.group(2)
    if m.group(1):  # ~a.b.c shows as c, as in Sphinx
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def plain_roles(text: str) -> str:
    """Replace Sphinx cross-reference roles by inline code.

    Example:
        >>> plain_roles("See :func:`grad` and :class:`~diffkit.Function`.")
        'See `grad` and `Function`.'
    """
    return _ROLE.sub(_code, text)


if griffe is not None:

    class PluralExamples(griffe.Extension):
        """Rewrites each object's docstring once the object tree is built."""

        def on_object(self, *, obj: Any, **kwargs: Any) -> None:
            if obj.docstring is not None:
                obj.docstring.value = plain_roles(plural_examples(obj.docstring.value))
