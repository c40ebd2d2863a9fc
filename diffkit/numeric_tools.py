"""Tools around numeric differentiation: stencil weights, the Taylor test, the step sweep.

* :func:`fornberg_weights` computes finite-difference weights for any
  derivative order on any set of offsets (Fornberg 1988), which is how the
  numeric backend builds every stencil, one-sided or central, of any order
  (it lives in :mod:`diffkit.backends.numeric.stencils`; this name stays);
* :func:`taylor_test` checks a gradient without choosing a step: the
  remainder ``|f(x + h dx) - f(x) - h <g, dx>|`` must shrink as ``h**2``;
* :func:`step_sweep` measures forward, central and complex-step differences
  over a range of steps against a reference: the V-shaped error curves of
  Baydin et al. (2018), Fig. 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .backends.numeric.stencils import fornberg_weights
from .errors import InvalidArgument

__all__ = ["fornberg_weights", "taylor_test", "TaylorResult", "TAYLOR_MIN_ORDER", "step_sweep",
           "SweepResult"]

# ---------------------------------------------------------------------------
# Taylor test
# ---------------------------------------------------------------------------

TAYLOR_MIN_ORDER = 1.8
"""A remainder that shrinks as h**2 shows observed orders near 2; the pass mark
sits below 2 for the h**3 term still visible at the largest steps, and far
above the order 1 of a wrong gradient (whose remainder keeps an h * <dg, dx>
term)."""

_TAYLOR_NOISE = 64.0
"""Remainders below this many ulps of |f| are round-off: a pair of steps
there says nothing about the convergence order."""


@dataclass(frozen=True)
class TaylorResult:
    """What :func:`taylor_test` observed.

    Attributes:
        steps: the step sizes ``h``, largest first.
        remainder0: ``|f(x + h dx) - f(x)|`` (shrinks as ``h``).
        remainder1: ``|f(x + h dx) - f(x) - h <g, dx>|`` (shrinks as ``h**2`` for the true gradient).
        orders0: observed orders ``log2`` of successive ratios of ``remainder0``.
        orders1: the same for ``remainder1``; NaN where the remainder is round-off.
        ok: every meaningful order of ``remainder1`` is at least ``TAYLOR_MIN_ORDER``
            (or every remainder is round-off: the gradient is exact along ``dx``).
        min_order: the smallest meaningful order of ``remainder1`` (inf if none).
    """

    steps: np.ndarray
    remainder0: np.ndarray
    remainder1: np.ndarray
    orders0: np.ndarray
    orders1: np.ndarray
    ok: bool
    min_order: float

    def __str__(self) -> str:
        lines = ["h          |f(x+h dx)-f(x)|   order  |... - h<g,dx>|   order"]
        for i, h in enumerate(self.steps):
            o0 = f"{self.orders0[i - 1]:6.2f}" if i else "      "
            o1 = f"{self.orders1[i - 1]:6.2f}" if i else "      "
            lines.append(f"{h:<10.3e} {self.remainder0[i]:<18.3e} {o0}  {self.remainder1[i]:<17.3e} {o1}")
        lines.append(f"{'passed' if self.ok else 'FAILED'}: smallest order {self.min_order:.2f} "
                     f"(needs >= {TAYLOR_MIN_ORDER})")
        return "\n".join(lines)


def taylor_test(f: Callable[[Any], Any], x: Any, dx: Any, grad: Any = None, *,
                steps: Sequence[float] | None = None) -> TaylorResult:
    """Check a gradient by the Taylor remainder, without choosing a step.

    For the true gradient ``g`` the first-order remainder
    ``|f(x + h dx) - f(x) - h <g, dx>|`` is ``O(h**2)``, so halving ``h``
    divides it by 4 (observed order 2); a wrong gradient leaves an ``O(h)``
    term (order 1). This is the test dolfin-adjoint users rely on: it needs
    no step to be right, only a sequence of them.

    Args:
        f: a scalar function of one argument (a float or an array).
        x: the point.
        dx: the direction, shaped like ``x``.
        grad: the gradient to check, an array like ``x`` or a callable
            ``grad(x)``; ``None`` checks ``dk.grad(f)`` (reverse mode).
        steps: the step sizes, decreasing; by default 8 halvings from a
            step that perturbs ``x`` by about 1% of its scale.

    Returns:
        A :class:`TaylorResult` with the remainders, the observed orders and ``ok``.

    Example:
        >>> import numpy as np, diffkit as dk
        >>> f = lambda x: np.sum(np.sin(x) * x)
        >>> x, dx = np.array([0.3, 1.2]), np.array([1.0, -0.5])
        >>> dk.taylor_test(f, x, dx).ok
        True
        >>> wrong = lambda x: 1.01 * (np.cos(x) * x + np.sin(x))
        >>> dk.taylor_test(f, x, dx, grad=wrong).ok
        False
    """
    xa = np.asarray(x)
    if xa.dtype.kind != "f":
        xa = xa.astype(np.float64)
    d = np.asarray(dx, dtype=xa.dtype)
    if d.shape != xa.shape:
        raise InvalidArgument(f"taylor_test: dx has shape {d.shape}, x has shape {xa.shape}")
    def as_arg(v: np.ndarray) -> Any:
        return float(v) if v.ndim == 0 and v.dtype == np.float64 else v

    point = as_arg(xa)
    if grad is None:
        from .operators import grad as _grad

        g = np.asarray(_grad(f)(point))
    elif callable(grad):
        g = np.asarray(grad(point))
    else:
        g = np.asarray(grad)
    if g.shape != xa.shape:
        raise InvalidArgument(f"taylor_test: the gradient has shape {g.shape}, x has shape {xa.shape}")
    if steps is None:
        # 1% of the argument's scale along dx, then 8 halvings: large enough that the
        # h**2 term dominates round-off at every step for an O(1) function
        scale = max(float(np.max(np.abs(xa), initial=0.0)), 1.0)
        h0 = 1e-2 * scale / max(float(np.max(np.abs(d), initial=0.0)), np.finfo(np.float64).tiny)
        hs = h0 * 0.5 ** np.arange(9)
    else:
        hs = np.asarray(steps, dtype=np.float64)
    f0 = float(np.asarray(f(point)))
    slope = float(np.sum(g.astype(np.float64) * d.astype(np.float64)))
    r0 = np.empty(len(hs))
    r1 = np.empty(len(hs))
    fh_abs = np.empty(len(hs))
    for i, h in enumerate(hs):
        fh = float(np.asarray(f(as_arg(xa + xa.dtype.type(h) * d))))
        r0[i] = abs(fh - f0)
        r1[i] = abs(fh - f0 - h * slope)
        fh_abs[i] = abs(fh)
    eps = float(np.finfo(xa.dtype).eps)
    noise = _TAYLOR_NOISE * eps * (abs(f0) + fh_abs)
    with np.errstate(divide="ignore", invalid="ignore"):
        o0 = np.log2(r0[:-1] / r0[1:])
        o1 = np.log2(r1[:-1] / r1[1:])
    meaningful = (r1[:-1] > noise[:-1]) & (r1[1:] > noise[1:])
    o1 = np.where(meaningful, o1, np.nan)
    valid = o1[meaningful]
    min_order = float(np.min(valid)) if valid.size else math.inf
    ok = bool(min_order >= TAYLOR_MIN_ORDER)
    return TaylorResult(steps=hs, remainder0=r0, remainder1=r1, orders0=o0, orders1=o1, ok=ok,
                        min_order=min_order)


# ---------------------------------------------------------------------------
# Step sweep
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    """Relative errors of three difference formulas over a range of steps.

    Attributes:
        steps: the step sizes ``h``.
        forward: relative error of ``(f(x + h) - f(x)) / h``.
        central: relative error of ``(f(x + h) - f(x - h)) / (2 h)``.
        complex: relative error of ``Im f(x + i h) / h`` (NaN where the
            function is not complex-analytic, see ``reason``).
        reference: the derivative the errors are measured against.
        reason: why the complex-step column is NaN, else ``None``.
    """

    steps: np.ndarray
    forward: np.ndarray
    central: np.ndarray
    complex: np.ndarray
    reference: float
    reason: str | None = None

    def best(self, method: str) -> tuple[float, float]:
        """``(step, error)`` where ``method``'s error is smallest.

        Example:
            >>> import numpy as np, diffkit as dk
            >>> h, err = dk.step_sweep(np.exp, 1.0).best("central")
            >>> bool(h < 1e-3 and err < 1e-9)
            True
        """
        errs = np.asarray(getattr(self, method))
        if method not in ("forward", "central", "complex"):
            raise InvalidArgument(f"method is one of forward, central, complex; got {method!r}")
        if not np.any(np.isfinite(errs)):
            return math.nan, math.nan
        i = int(np.nanargmin(errs))
        return float(self.steps[i]), float(errs[i])


def step_sweep(f: Callable[[Any], Any], x: float, steps: Sequence[float] | None = None,
               reference: float | None = None) -> SweepResult:
    """Errors of forward, central and complex-step differences over a range of steps.

    Each formula uses the step actually represented, ``(x + h) - x``, as the
    backend does. For small ``h`` round-off grows as ``eps/h``, for large
    ``h`` truncation as ``h`` (forward) or ``h**2`` (central): a V on a
    log-log plot, with its bottom near ``sqrt(eps)`` and ``eps**(2/3)``
    (Baydin et al. 2018, "Automatic differentiation in machine learning: a
    survey", Fig. 3). The complex step has no subtraction and reaches
    round-off. The complex step runs through diffkit's dispatch, so it is
    only taken where every primitive met is complex-analytic.

    Args:
        f: a scalar function of one scalar.
        x: the point.
        steps: the step sizes; by default ``10**-k`` for k from 1 to 18 in
            half decades.
        reference: the true derivative; by default reverse-mode AD.

    Returns:
        A :class:`SweepResult` of relative errors (absolute where the reference is 0).

    Example:
        >>> import numpy as np, diffkit as dk
        >>> s = dk.step_sweep(np.sin, 1.0)
        >>> s.best("forward")[1] > s.best("central")[1] > s.best("complex")[1]
        True
    """
    from .backends.numeric import complex_values
    from .core.function import as_function
    from .operators import derivative

    F = as_function(f)
    hs = np.asarray(10.0 ** -np.arange(1.0, 18.01, 0.5) if steps is None else steps, dtype=np.float64)
    x = float(x)
    ref = float(derivative(F)(x)) if reference is None else float(reference)
    scale = abs(ref) if ref != 0 else 1.0

    def fr(v: float) -> float:
        return float(np.asarray(F.fn(v)))

    f0 = fr(x)
    fwd = np.empty(len(hs))
    cen = np.empty(len(hs))
    for i, h in enumerate(hs):
        hp = (x + h) - x      # the step actually taken
        hm = x - (x - h)
        fwd[i] = abs((fr(x + h) - f0) / hp - ref) / scale if hp else math.nan
        cen[i] = abs((fr(x + h) - fr(x - h)) / (hp + hm) - ref) / scale if hp + hm else math.nan
    cs, reason = complex_values(F.fn, x, hs)
    cse = np.abs(cs - ref) / scale if cs is not None else np.full(len(hs), np.nan)
    return SweepResult(steps=hs, forward=fwd, central=cen, complex=cse, reference=ref, reason=reason)
