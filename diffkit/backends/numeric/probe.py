"""The complex probe: evaluation on complex values through diffkit's dispatch.

The numeric backend's trace (:class:`_ProbeTrace`) runs the user's function
on complex values and records every primitive it meets: complex step and the
complex contour are used only if each one is complex-analytic. It also
measures, to first order, how far the point may move before an argument
leaves a primitive's domain or reaches a kink. :func:`complex_values` is the
complex step of :func:`diffkit.step_sweep`.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from ...core.observe import ObservingTrace, Observed
from ...core.primitive import Primitive
from ...core.values import Value, pack
from ...errors import DiffkitError
from ..base import check_output


_TINY_IMAG = float(np.finfo(np.float64).eps) ** 1.5
"""An imaginary part at most this fraction of the real part is a complex step's: the real part
of ``g(r + i m)`` is ``g(r)`` to ``O(m**2)``, far below an ulp."""

_EXACT_IN_COMPLEX = frozenset({"add", "subtract", "multiply", "negative", "positive", "square", "conj",
                               "real", "imag", "angle", "to_complex", "where"})
"""Primitives whose complex arithmetic rounds the real part as the real one does."""


class _Refused(Exception):
    """The function cannot be evaluated on complex values as an analytic function."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _Probe(Observed):
    """A complex value running through the user's code (the numeric backend's trace)."""

    __slots__ = ()
    # Python control flow on the complex value itself has no derivative to follow:
    # refused, as on the AD backends (comparisons give plain arrays, which branch)
    __bool__ = Value.__bool__
    __float__ = Value.__float__

    def __repr__(self) -> str:
        return f"Probe({self.primal!r})"


class _ProbeTrace(ObservingTrace):
    """Evaluates each primitive on complex values and records what it meets.

    It refuses (records a reason) on primitives that are not complex-analytic,
    on piecewise-constant ones (comparisons: their result, computed on the real
    parts, selects branches the derivative would not see), on NumPy
    implementations that reject complex input or drop its imaginary part.
    Past a primitive that is not analytic, the imaginary part goes on to first
    order (its JVP rule applied to the imaginary parts), so the distances below
    stay measurable downstream.

    It also measures, per row, how far the point may move (in multiples of the
    imaginary displacement, to first order) before an argument leaves the
    declared domain of an elementwise primitive (``edge``: a branch cut starts
    there) or reaches a kink of a primitive with a ``kink_gap`` (``kink``: a
    stencil across it would average two slopes), and whether the point sits
    on a kink that moves with it (``at_kink``: a gap of exactly 0).
    """

    backend_name = "numeric"
    value_type = _Probe

    def __init__(self, rows: int | None):
        super().__init__()
        self.rows = rows
        self.refusals: list[str] = []
        self.edge = np.full(rows or 1, np.inf)
        self.kink = np.full(rows or 1, np.inf)
        self.at_kink = np.zeros(rows or 1, dtype=bool)
        self.met_kink = False

    def _refuse(self, why: str) -> None:
        if why not in self.refusals:
            self.refusals.append(why)

    def evaluate(self, prim: Primitive, vals: list[Any], traced: list[bool], params: dict[str, Any]) -> Any:
        if prim.kink_gap is not None:
            self._measure_kinks(prim, vals, params)
        if not prim.differentiable:
            self._refuse(f"{prim.name} is piecewise constant (a comparison or rounding) on the input")
            return prim.numpy(*[np.real(v) for v in vals], **params)
        if not prim.complex_safe:
            self._refuse(f"{prim.name} is not complex-analytic")
            out = self._first_order(prim, vals, params)
        else:
            complex_in = any(np.iscomplexobj(v) for v in vals)
            try:
                out = prim.numpy(*vals, **params)
            except (TypeError, ValueError) as e:
                self._refuse(f"numpy's {prim.name} does not take complex input ({e})")
                out = self._first_order(prim, vals, params)
            else:
                if complex_in and not np.iscomplexobj(out):
                    self._refuse(f"numpy's {prim.name} drops the imaginary part of complex input")
                elif complex_in and prim.elementwise and prim.name not in _EXACT_IN_COMPLEX:
                    out = self._real_where_step(prim, vals, params, out)
        if prim.elementwise and prim.domain:
            self._measure_edges(prim, vals)
        return out

    @staticmethod
    def _real_where_step(prim: Primitive, vals: list[Any], params: dict[str, Any], out: Any) -> Any:
        """``out`` with its real part from the real implementation where every input's imaginary
        part is a complex step's (or 0).

        NumPy's complex functions are a few ulps less accurate than its real ones on the real
        axis (``tanh(0.768935 + 0j)`` is an ulp off ``tanh(0.768935)``), and with a complex
        step that error stays in the real part of every value downstream, where it changes
        the derivative: ``cos(arccos(0.9 tanh(y)) + x)`` at a point where the sum is 0.01 had
        a derivative 2e-14 off, 20 times its estimate (the error is systematic, so no nearby
        evaluation reveals it). Values the step reaches keep their imaginary part.
        """
        try:
            small = np.ones(np.shape(out), dtype=bool)
            for v in vals:
                a = np.asarray(v)
                if np.iscomplexobj(a):
                    small = small & (np.abs(a.imag) <= _TINY_IMAG * np.abs(a.real))
            if not np.any(small):
                return out
            real = np.asarray(prim.numpy(*[np.real(v) for v in vals], **params))
            if real.shape != np.shape(out) or real.dtype.kind not in "fiub":
                return out
            use = small & np.isfinite(real)
            return np.where(use, real + 1j * np.imag(out), out)
        except Exception:  # noqa: BLE001 - the complex result stands
            return out

    def _first_order(self, prim: Primitive, vals: list[Any], params: dict[str, Any]) -> Any:
        """``prim`` on the real parts, with the imaginary parts carried by its JVP rules."""
        re = [np.real(v) for v in vals]
        out = prim.numpy(*re, **params)
        im = None
        try:
            for i, v in enumerate(vals):
                if not np.iscomplexobj(v) or i in prim.nondiff_args or i >= len(prim.jvp) \
                        or prim.jvp[i] is None:
                    continue
                t = prim.jvp[i](np.imag(v), out, *re, **params)
                im = t if im is None else im + t
            return out if im is None else out + 1j * np.asarray(im, dtype=float)
        except Exception:  # noqa: BLE001 - only the distances downstream depend on it
            return out

    def _per_row(self, dist: Any) -> np.ndarray:
        dist = np.asarray(dist, dtype=float)
        if self.rows is not None and dist.ndim >= 1 and dist.shape[0] == self.rows:
            return dist.reshape(self.rows, -1).min(axis=1, initial=np.inf)
        return np.full(self.edge.shape, dist.min(initial=np.inf))

    def _measure_kinks(self, prim: Primitive, vals: list[Any], params: dict[str, Any]) -> None:
        moving = [np.abs(np.imag(v)) for i, v in enumerate(vals)
                  if i not in prim.nondiff_args and np.iscomplexobj(v)]
        if not moving:
            return
        self.met_kink = True
        try:
            gap = np.abs(np.asarray(prim.kink_gap(*[np.real(v) for v in vals], **params), dtype=float))
            if prim.elementwise:
                speed = np.maximum.reduce(np.broadcast_arrays(*moving)) if len(moving) > 1 else moving[0]
            else:  # a reduction: the fastest element of its argument (per row, in a batch)
                m = moving[0]
                if self.rows is not None and gap.ndim >= 1 and gap.shape[0] == self.rows == m.shape[0]:
                    speed = m.reshape(self.rows, -1).max(axis=1).reshape((self.rows,) + (1,) * (gap.ndim - 1))
                else:
                    speed = np.max(m, initial=0.0)
                speed = np.broadcast_to(speed, gap.shape)
            with np.errstate(divide="ignore", invalid="ignore"):
                # exactly at a kink (gap 0) no step keeps a stencil on one side: recorded apart
                dist = np.where((gap > 0) & (speed > 0), gap / np.where(speed > 0, speed, 1.0), np.inf)
            at = (gap == 0) & (speed > 0)
        except Exception:  # noqa: BLE001 - a gap that cannot be measured limits nothing
            return
        self.kink = np.minimum(self.kink, self._per_row(dist))
        if np.any(at):
            self.at_kink |= self._per_row(np.where(at, 0.0, 1.0)) == 0.0

    def _measure_edges(self, prim: Primitive, vals: list[Any]) -> None:
        for i, (lo, hi) in enumerate(prim.domain):
            if i >= len(vals) or i in prim.nondiff_args or not np.iscomplexobj(vals[i]):
                continue
            if lo == -math.inf and hi == math.inf:
                continue
            a = np.asarray(vals[i])
            re, im = a.real, np.abs(a.imag)
            # only where the argument is inside the declared domain: outside it the
            # declaration is a sampling range, not the function's real domain
            inside = (re > lo) & (re < hi) & (im > 0)
            if not np.any(inside):
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                dist = np.minimum(re - lo, hi - re) / np.where(im > 0, im, 1.0)
            self.edge = np.minimum(self.edge, self._per_row(np.where(inside, dist, np.inf)))


def complex_values(fun: Callable[[Any], Any], x: float, steps: Any) -> tuple[np.ndarray | None, str | None]:
    """``Im f(x + i h) / h`` for each step ``h``, through diffkit's dispatch.

    Returns ``(values, None)``, or ``(None, reason)`` when the function is not
    complex-analytic. Used by :func:`diffkit.step_sweep`.
    """
    out = np.empty(len(steps))
    for i, h in enumerate(steps):
        try:
            v, _ = _complex_call(fun, [complex(x, h)], [0], [x], rows=None)
        except _Refused as r:
            return None, f"complex step refused: {r.reason}"
        out[i] = float(np.imag(v)) / h
    return out, None


def _complex_call(fun: Callable[..., Any], points: Sequence[Any], argnums: Sequence[int],
                  primals: Sequence[Any], rows: int | None, strict: bool = True) -> tuple[Any, _ProbeTrace]:
    """``fun`` at complex ``points`` (one per argnum) through the probe trace: (output, trace).

    ``strict`` raises :class:`_Refused` when the function is not complex-analytic
    at the point; otherwise the trace is returned anyway (its distances to
    domain edges and kinks are still first-order right).
    """
    trace = _ProbeTrace(rows)
    args = list(primals)
    for i, p in zip(argnums, points):
        args[i] = _Probe(trace, p)
    try:
        with np.errstate(all="ignore"):
            out = pack(fun(*args))
    except _Refused:
        raise
    except (DiffkitError, TypeError, ValueError, AttributeError, ArithmeticError) as e:
        reasons = trace.refusals or [f"the function does not run on diffkit's traced values ({_first_line(e)})"]
        raise _Refused("; ".join(reasons)) from e
    if trace.refusals and strict:
        raise _Refused(", ".join(_group(trace.refusals)))
    if isinstance(out, _Probe) and out._trace is trace:
        value = out.primal
    elif isinstance(out, Value):
        raise _Refused("the output is traced by another transformation")
    else:
        check_output(out, "numeric")  # None, a bool, an integer: no derivative, not a zero one
        value = out  # does not depend on the differentiated arguments
    return np.asarray(value), trace


def _group(reasons: list[str]) -> list[str]:
    """'a is not complex-analytic', 'b is not ...' -> 'a, b are not complex-analytic'."""
    tail = " is not complex-analytic"
    names = [r[: -len(tail)] for r in reasons if r.endswith(tail)]
    rest = [r for r in reasons if not r.endswith(tail)]
    if len(names) > 1:
        rest.insert(0, f"{', '.join(names)} are not complex-analytic")
    elif names:
        rest.insert(0, names[0] + tail)
    return rest


def _first_line(e: BaseException) -> str:
    s = str(e).splitlines()[0] if str(e) else type(e).__name__
    return s if len(s) <= 160 else s[:157] + "..."


__all__ = ["complex_values"]
