"""A suite's case: one function, one point, one operator, and optional tolerances.

:class:`Case` is what a suite is a list of; :func:`expand` makes one case per
operator. The built-in suites (:mod:`~diffkit.harness.builtin_suites`), the TOML
loader (:mod:`~diffkit.harness.suites`) and the runner
(:mod:`~diffkit.harness.runner`) build on it; this module imports none of them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.function import Function


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

    def function(self) -> Function:
        """The case's function, resolved (an expression is parsed safely; never evaluated)."""
        return resolve(self.f, name=self.id)

    def point(self) -> list[Any]:
        return [np.asarray(a, dtype=float) if isinstance(a, (list, tuple)) else float(a) for a in self.args]

    def argnums_or_all(self) -> Any:
        if self.argnums is not None:
            return tuple(self.argnums) if isinstance(self.argnums, (list, tuple)) else int(self.argnums)
        return tuple(range(len(self.args))) if len(self.args) != 1 else 0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "f": self.f, "args": [_plain(a) for a in self.args], "op": self.op,
                "argnums": self.argnums, "order": self.order, "rtol": self.rtol, "atol": self.atol,
                "note": self.note, "tags": list(self.tags), "expect": self.expect}


def _plain(a: Any) -> Any:
    return np.asarray(a).tolist() if isinstance(a, (np.ndarray, list, tuple)) else a


def resolve(f: str, name: str | None = None) -> Function:
    """``"module:function"`` imported, or an expression string parsed (the safe parser)."""
    if ":" in f and "(" not in f:
        module, _, attr = f.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return Function(obj, name=name or attr)
    return Function.parse(f, name=name or f)


def expand(id: str, f: str, args: Any, ops: Any = ("grad",), **kw: Any) -> list[Case]:
    """One case per operator: ids ``<id>/<op>`` when there are several."""
    ops = [ops] if isinstance(ops, str) else list(ops)
    return [Case(f"{id}/{op}" if len(ops) > 1 else id, f, tuple(args), op, **kw) for op in ops]
