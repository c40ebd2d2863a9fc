"""The page of supported NumPy (and SciPy) functions, generated from the table.

``docs/coverage.md`` is this module's output (``python -m diffkit.coverage
docs/coverage.md``); a test regenerates it and fails when the file differs, so
the page cannot drift from the code. It lists

* the primitives of the table (:data:`diffkit.core.primitive.PRIMITIVES`): their
  backends (the symbolic one needs a SymPy form; the numeric backend's complex
  step needs a complex-analytic primitive), domain and kink convention;
* the NumPy (and, with the ``scipy`` extra installed, SciPy) callables diffkit dispatches (ufuncs, their reductions,
  functions and array methods), each on the forward, reverse and numeric
  backends, and on the symbolic one where its primitives have SymPy forms.

Example:
    >>> text = coverage_markdown()
    >>> text.startswith("# Supported functions")
    True
    >>> "| `sin` |" in text and "`numpy.linalg.solve`" in text
    True
"""

from __future__ import annotations

import math
import sys
from typing import Any

from .core.primitive import PRIMITIVES, Primitive


def _interval(lo: float, hi: float) -> str:
    def end(v: float) -> str:
        return "∞" if v == math.inf else "-∞" if v == -math.inf else f"{v:g}"

    return f"({end(lo)}, {end(hi)})"


def _domain(p: Primitive) -> str:
    """The non-trivial intervals, by argument (``x ∈ (0, ∞)``; ``arg 1 ∈ ...`` for the others)."""
    dom = getattr(p, "domain", None) or ()
    parts = [f"{'x' if i == 0 and len(dom) == 1 else f'arg {i}'} ∈ {_interval(*d)}"
             for i, d in enumerate(dom) if d is not None and tuple(d) != (-math.inf, math.inf)]
    return ", ".join(parts)


def _cell(text: Any) -> str:
    return str(text or "").replace("|", "\\|").replace("\n", " ")


def _callable_name(f: Any) -> str:
    module = getattr(f, "__module__", None) or "numpy"
    if type(f).__name__ == "ufunc":
        module = "scipy.special" if module.startswith("scipy") else "numpy"
    name = getattr(f, "__name__", repr(f))
    if module.startswith("numpy"):
        module = "numpy" + ("." + module.split(".")[1] if module.split(".")[1:2] in (["linalg"], ["fft"]) else "")
    return f"{module}.{name}"


def versions() -> str:
    """The NumPy (and SciPy) the page is generated with: what NumPy offers differs by version."""
    import numpy as np

    text = f"NumPy {np.__version__}"
    try:
        import scipy

        text += f", SciPy {scipy.__version__}"
    except ImportError:
        pass
    return text


def coverage_markdown() -> str:
    """The coverage page as Markdown (deterministic: sorted, no timings)."""
    from . import numpy_api  # noqa: F401 - its registrations are what is listed

    try:  # the scipy extra: its entries join the table when SciPy is installed
        from . import scipy_special  # noqa: F401
    except ImportError:
        pass
    from .core.values import FUNCTION_HANDLERS, REDUCE_HANDLERS, UFUNC_HANDLERS, UFUNC_PRIMITIVES

    lines = ["# Supported functions", "",
             "Generated from the primitive table by `python -m diffkit.coverage docs/coverage.md`; a test",
             "regenerates it, so it lists exactly what the code supports. Forward, reverse and numeric",
             "run every entry; *symbolic* needs a SymPy form; *complex step* marks the primitives the",
             "numeric backend may differentiate with a complex step (complex-analytic ones). Domains are",
             "the open intervals inside which the derivative exists (blank: the real line); at a kink the",
             "backends follow the convention given ([conventions](conventions.md)).", "",
             f"Generated with {versions()}.", "",
             "## The primitive table", "",
             "| primitive | symbolic | complex step | differentiable | domain | at a kink | note |",
             "|---|---|---|---|---|---|---|"]
    for name in sorted(PRIMITIVES):
        p = PRIMITIVES[name]
        lines.append(f"| `{name}` | {'yes' if p.sympy is not None else '-'} | "
                     f"{'yes' if p.complex_safe else '-'} | {'yes' if p.differentiable else 'no (derivative 0)'} | "
                     f"{_cell(_domain(p))} | {_cell(p.kink)} | {_cell(p.doc)} |")
    lines += ["", "## NumPy and SciPy callables", "",
              "Each runs on the forward, reverse and numeric backends; on the symbolic backend where the",
              "primitives it is written with have SymPy forms (the table above).", "",
              "| callable | kind | primitive |", "|---|---|---|"]
    # a function is written with the table's primitives (several, or one with other arguments)
    rows = set()
    for u in UFUNC_HANDLERS:
        prim = UFUNC_PRIMITIVES.get(u) or getattr(UFUNC_HANDLERS[u], "primitive", None)
        rows.add((_callable_name(u), "ufunc", f"`{prim.name}`" if prim is not None else "several"))
    for u in REDUCE_HANDLERS:
        rows.add((_callable_name(u) + ".reduce", "reduction", "several"))
    for f in FUNCTION_HANDLERS:
        rows.add((_callable_name(f), "function", "several"))
    for name, kind, prim in sorted(rows):
        lines.append(f"| `{name}` | {kind} | {prim} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write the page to the path given (``docs/coverage.md``), or print it."""
    args = sys.argv[1:] if argv is None else argv
    text = coverage_markdown()
    if args:
        with open(args[0], "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
