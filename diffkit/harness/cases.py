"""A suite's case: one function, one point, one operator, and optional tolerances.

:class:`Case` is what a suite is a list of; :func:`expand` makes one case per
operator. The built-in suites (:mod:`~diffkit.harness.builtin_suites`), the TOML
loader (:mod:`~diffkit.harness.suites`) and the runner
(:mod:`~diffkit.harness.runner`) build on it; this module imports none of them.

A case's function is an expression string, read by diffkit's safe parser
(never evaluated), or a reference ``"package.module:function"`` to Python
code. A reference is code: it is imported only by :func:`resolve`, which the
runner calls inside the case's own process, never when a suite is loaded or
listed. :func:`fingerprint` identifies a case in a results file without
importing anything (see ``docs/security.md``).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .._version import __version__
from ..core.function import Function
from ..errors import InvalidArgument

CALLABLE_REF = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*"
                          r"(\.[A-Za-z_][A-Za-z0-9_]*)*")
"""What a reference to Python code looks like: ``package.module:function`` (dotted names only)."""

BUILTIN = "builtin"
"""The :attr:`Case.origin` of the built-in suites' cases: diffkit's own code, always trusted."""


def is_callable_ref(f: Any) -> bool:
    """Whether ``f`` names Python code (``"module:function"``) rather than being an expression string.

    Example:
        >>> is_callable_ref("diffkit.harness.testfunctions:rosenbrock"), is_callable_ref("sin(x)*y")
        (True, False)
    """
    return isinstance(f, str) and CALLABLE_REF.fullmatch(f.strip()) is not None


@dataclass(frozen=True)
class Case:
    """One cross-check of a suite."""

    id: str
    f: str                                  # expression, or "module:function"
    args: tuple[Any, ...]
    op: str = "grad"
    argnums: Any = None                     # default: every argument
    order: int = 1
    rtol: Any = None
    atol: Any = None
    note: str = ""
    tags: tuple[str, ...] = field(default=())
    expect: Any = None                      # {backend: cause}: a known, explained disagreement
    at: Any = None                          # {variable: value} of a "module:function" case, ordered in its process
    origin: str = ""                        # the suite file it came from ("builtin" for diffkit's own suites)

    def function(self, allow_import: bool = True) -> Function:
        """The case's function, resolved (an expression is parsed safely; never evaluated)."""
        return resolve(self.f, name=self.id, allow_import=allow_import)

    def point(self) -> list[Any]:
        """The arguments as the function gets them: numbers, float arrays, and dicts of
        those (pytrees: a table in a suite file)."""
        return [_point_value(a) for a in self.args]

    def bound(self, F: Function) -> Case:
        """This case with ``at`` put in the order of ``F``'s variables (a no-op without ``at``)."""
        if self.at is None:
            return self
        missing = [v for v in F.variables if v not in self.at]
        if missing:
            raise InvalidArgument(f"case {self.id}: 'at' has no value for {missing} (variables "
                                  f"{list(F.variables)})")
        extra = sorted(set(self.at) - set(F.variables))
        if extra:
            raise InvalidArgument(f"case {self.id}: 'at' names {extra}, which are not variables of {self.f} "
                                  f"(variables {list(F.variables)})")
        return replace(self, args=tuple(self.at[v] for v in F.variables), at=None)

    def argnums_or_all(self) -> Any:
        if self.argnums is not None:
            return tuple(self.argnums) if isinstance(self.argnums, (list, tuple)) else int(self.argnums)
        return tuple(range(len(self.args))) if len(self.args) != 1 else 0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "f": self.f, "args": [_plain(a) for a in self.args], "op": self.op,
                "argnums": self.argnums, "order": self.order, "rtol": self.rtol, "atol": self.atol,
                "note": self.note, "tags": list(self.tags), "expect": self.expect,
                "at": None if self.at is None else {k: _plain(v) for k, v in self.at.items()},
                "origin": self.origin}


def _point_value(a: Any) -> Any:
    if isinstance(a, dict):
        return {k: _point_value(v) for k, v in a.items()}
    if isinstance(a, (list, tuple, np.ndarray)):
        return np.asarray(a, dtype=float)
    return float(a)


def _plain(a: Any) -> Any:
    if isinstance(a, dict):
        return {k: _plain(v) for k, v in a.items()}
    return np.asarray(a).tolist() if isinstance(a, (np.ndarray, list, tuple)) else a


def resolve(f: str, name: str | None = None, *, allow_import: bool = True) -> Function:
    """``"module:function"`` imported, or an expression string parsed (the safe parser).

    ``allow_import=False`` refuses a reference to Python code
    (:class:`~diffkit.errors.InvalidArgument`) instead of importing it.
    """
    if is_callable_ref(f):
        if not allow_import:
            raise InvalidArgument(f"{f!r} names Python code (module:function), and imports are not allowed "
                                  "(--no-import)")
        module, _, attr = f.strip().partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return Function(obj, name=name or attr)
    return Function.parse(f, name=name or f)


def expand(id: str, f: str, args: Any, ops: Any = ("grad",), **kw: Any) -> list[Case]:
    """One case per operator: ids ``<id>/<op>`` when there are several."""
    ops = [ops] if isinstance(ops, str) else list(ops)
    return [Case(f"{id}/{op}" if len(ops) > 1 else id, f, tuple(args), op, **kw) for op in ops]


# --------------------------------------------------------------------------
# Where a case's code comes from, and its fingerprint
# --------------------------------------------------------------------------


def import_dirs(origin: str = "") -> list[str]:
    """The folders a case process puts first on its import path: the suite file's, then the current one."""
    dirs = []
    if origin and origin != BUILTIN:
        dirs.append(os.path.dirname(os.path.abspath(origin)))
    dirs.append(os.getcwd())
    return list(dict.fromkeys(dirs))


def source_file(ref: str, origin: str = "") -> str | None:
    """The file a case process would import ``ref``'s module from, found without importing anything.

    The module is looked up as the case process imports it: in a package
    already imported here (diffkit's own), else on the suite file's folder,
    the current folder and ``sys.path``. ``None`` when it is not a plain
    ``.py`` file there (a built-in or compiled module, a zip, a custom finder).
    """
    if not is_callable_ref(ref):
        return None
    parts = ref.strip().partition(":")[0].split(".")
    bases: list[str] = []
    rest = parts
    for k in range(len(parts), 0, -1):
        mod = sys.modules.get(".".join(parts[:k]))
        if mod is None:
            continue
        if k == len(parts):
            path = getattr(mod, "__file__", None)
            return path if isinstance(path, str) and os.path.isfile(path) else None
        bases, rest = [str(p) for p in (getattr(mod, "__path__", None) or [])], parts[k:]
        break
    else:
        bases = import_dirs(origin) + [p or os.getcwd() for p in sys.path if isinstance(p, str)]
    for base in bases:
        stem = os.path.join(base, *rest)
        for candidate in (stem + ".py", os.path.join(stem, "__init__.py")):
            if os.path.isfile(candidate):
                return candidate
    return None


def source_hash(ref: str, origin: str = "") -> str | None:
    """SHA-256 of the source file of ``ref``'s module (:func:`source_file`), or ``None``."""
    path = source_file(ref, origin)
    if path is None:
        return None
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 16), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _canonical(v: Any) -> Any:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float, np.integer, np.floating)):
        x = float(v)
        return x if math.isfinite(x) else str(x)
    if isinstance(v, dict):
        return {str(k): _canonical(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_canonical(x) for x in (v.tolist() if isinstance(v, np.ndarray) else v)]
    return repr(v)


def fingerprint(case: Case) -> str:
    """What a stored result was computed for: ``"sha256:<hex>"`` of the case's function text, the
    source hash of a ``module:function``'s module (:func:`source_hash`), point, operator, order,
    tolerances, expected causes and diffkit's version.

    ``--resume`` reuses a stored record only when its fingerprint is the case's
    own; nothing is imported to compute it.

    Example:
        >>> a = Case("c", "x**2", (1.0,), "derivative")
        >>> fingerprint(a) == fingerprint(Case("c", "x**2", (1,), "derivative")), fingerprint(a) == fingerprint(
        ...     Case("c", "x**3", (1.0,), "derivative"))
        (True, False)
    """
    body = {"f": case.f.strip(), "source": source_hash(case.f, case.origin) if is_callable_ref(case.f) else None,
            "args": [_canonical(a) for a in case.args], "at": _canonical(case.at), "op": case.op,
            "argnums": _canonical(case.argnums), "order": _canonical(case.order), "rtol": _canonical(case.rtol),
            "atol": _canonical(case.atol), "expect": _canonical(case.expect), "diffkit": __version__}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
