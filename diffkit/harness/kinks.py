"""Which non-differentiable points a function passes through, found by tracing it.

The function runs once on probe values through diffkit's dispatch; every
primitive with an ``at_kink`` test in the table (abs, sign, maximum, minimum,
max, min, the comparisons of a ``np.where`` ...) is asked whether its
arguments sit on a kink. A disagreement there is a *convention*, not a bug.
The same walk records the largest intermediate value (the magnitude that a
difference quotient's round-off scales with, even where ``f`` itself is 0),
the first NaN or inf computed from finite numbers, and the input-structure
conventions of the primitives met (``eigh`` takes its matrix as symmetric).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..core.observe import ObservingTrace
from ..core.primitive import Primitive


class _Walk(ObservingTrace):
    backend_name = "kink probe"

    def __init__(self) -> None:
        super().__init__()
        self.kinks: list[str] = []
        self.structures: list[str] = []
        self.nonfinite: list[str] = []
        self.magnitude = 0.0

    def evaluate(self, prim: Primitive, vals: list[Any], traced: list[bool], params: dict[str, Any]) -> Any:
        if prim.at_kink is not None:
            try:
                hit = np.asarray(prim.at_kink(*vals, **params))
            except Exception:  # a test that cannot run here says nothing
                hit = np.zeros((), bool)
            if hit.any():
                where = "" if hit.ndim == 0 else f" at {np.argwhere(hit).tolist()[:3]}"
                self.kinks.append(f"{prim.name}{where}: {prim.kink}")
        if prim.structure is not None and any(traced):
            self.structures.append(prim.structure)
        return super().evaluate(prim, vals, traced, params)

    def wrap(self, prim: Primitive, args: tuple[Any, ...], vals: list[Any], traced: list[bool],
             params: dict[str, Any], out: Any) -> Any:
        with np.errstate(all="ignore"):
            size = np.abs(np.asarray(out)).astype(float)  # the modulus of complex intermediates
        ok = np.isfinite(size)
        finite = size[ok]
        self.magnitude = max(self.magnitude, float(finite.max(initial=0.0)))
        if not ok.all() and all(np.all(np.isfinite(np.abs(np.asarray(v)))) for v in vals if _is_number(v)):
            bad = "nan" if np.isnan(size).any() else "inf"
            where = "" if size.ndim == 0 else f" at {np.argwhere(~ok).tolist()[:3]}"
            self.nonfinite.append(f"numpy.{prim.name} gives {bad}{where} from finite arguments")
        return super().wrap(prim, args, vals, traced, params, out)


def walk(fun: Callable[..., Any], args: Sequence[Any]) -> _Walk:
    """Run ``fun`` once at ``args`` on probe values: the trace holds ``kinks`` and ``magnitude``.

    Example:
        >>> import numpy as np
        >>> t = walk(lambda x: np.log(1.0 + np.sin(x) ** 2), [0.0])
        >>> t.kinks, t.magnitude      # f(0) = 0, but it is computed from 1 + 0
        ([], 1.0)
    """
    trace = _Walk()
    try:
        trace.run(fun, args)
    except Exception:
        pass  # the backends will report the failure themselves
    trace.kinks = sorted(set(trace.kinks))
    trace.structures = sorted(set(trace.structures))
    return trace


def find_kinks(fun: Callable[..., Any], args: Sequence[Any]) -> list[str]:
    """The kinks ``fun`` meets at ``args``, one line each (empty when none, or when unsure).

    Example:
        >>> import numpy as np
        >>> find_kinks(lambda x: np.abs(x) + np.maximum(x, 1.0), [0.0])
        ['absolute: d|x|/dx at 0 is sign(0) = 0, as SymPy']
    """
    return walk(fun, args).kinks


def _is_number(v: Any) -> bool:
    try:
        return np.asarray(v).dtype.kind in "fiuc"
    except Exception:  # noqa: BLE001 - not a number
        return False
