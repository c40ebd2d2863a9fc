"""The numeric backend: derivatives from function values, with honest error estimates.

Every operator reduces to derivatives of the user's function along lines
``t -> f(x + t u)``: a gradient or Jacobian along the coordinate directions,
a JVP along the tangent, an n-th derivative along the one axis, a Hessian
along ``u_i`` and ``u_i + u_j`` (polarization). Each direction is scaled by
the magnitude of its coordinates (``max(|x_i|, 1)``), so ``t`` is a relative
step. Three ways to differentiate along a line:

* **complex step** (first derivatives): ``Im f(x + i h u) / h`` has no
  subtraction, so a tiny ``h`` gives the derivative to round-off in one
  evaluation (Squire and Trapp 1998). Higher orders use ``n`` points on a
  circle of radius ``r`` in the complex plane, placed so that the function
  value itself drops out of the imaginary parts (Lyness and Moler 1967);
  the error is ``O(r**(2n))`` and Richardson extrapolation over shrinking
  radii removes it. The function is evaluated on complex values *through
  diffkit's dispatch*, which records every primitive met: complex step is
  used only if every one of them is complex-analytic in the table (NumPy's
  own complex semantics differ, e.g. ``np.linalg.norm`` conjugates).
* **Richardson extrapolation** of finite differences over a geometric
  sequence of steps, with an error estimate for each extrapolated value and
  the best one kept (as numdifftools does), stopping as soon as round-off
  takes over; one-sided stencils where a central one leaves the domain.
* plain **forward, backward and central** stencils of any accuracy order,
  with weights from Fornberg's algorithm and dtype-aware steps
  ``eps**(1/(n+p))``.

``method="auto"`` takes the complex step where the function allows it and
Richardson-extrapolated central differences elsewhere. Every result method
(:meth:`Numeric.derivative_result` and friends) returns a
:class:`NumericResult`: value, error estimate, method, step, number of
function evaluations and, on a fallback, the reason.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

import numpy as np

from ..core.values import Value, new_level, pack
from ..errors import DiffkitError, ShapeError, TracingError
from ..numeric_tools import fornberg_weights
from ..primitives import Primitive
from .base import ADBackend, _check_scalar, split_aux

METHODS = ("auto", "complex", "richardson", "central", "forward", "backward")

# ---------------------------------------------------------------------------
# Constants, each with its reason
# ---------------------------------------------------------------------------

_NOISE_ULPS = 2.0
"""Relative round-off assumed in each function value (a few correctly rounded
operations); the Richardson differences reveal anything larger."""

_CONTOUR_NOISE_ULPS = 8.0
"""Round-off assumed in the imaginary part of each value on a complex contour, in
ulps of that part: NumPy's complex functions away from the real axis are accurate
to a few ulps per component, and a composition of several of them adds up. Two
ulps (as for real values) left 8% of the second derivatives of random compositions
with errors above their estimate, all at round-off level; eight leaves under 1%."""

_CS_FLOOR_ULPS = 4.0
"""Floor of a complex-step error estimate in ulps of the derivative: the
derivative is computed like an AD tangent, a handful of rounded operations."""

_CS_NOISE_FACTOR = 2.0
"""The complex-step estimate doubles the observed difference between two
evaluations whose round-off is independent (shifted point, non-dyadic step):
one difference of two errors of equal size exceeds half of either most of the time."""

_CS_STEP_RATIO = 1.3183
"""The second complex step is the first times this non-dyadic factor, so its
imaginary parts round differently (a power of 2 would round identically)."""

_CS_SHIFT_ULPS = 1.0
"""The second complex step is taken this many ulps away from x, so that the
real parts round differently too."""

_SHRINK = 16.0
"""Factor by which a stencil that left the domain is shrunk before retrying."""

_MIN_STEP_ULPS = 1024.0
"""A stencil is not shrunk below this many ulps of the argument's scale: further
down its points would collapse onto x (and round-off would swamp any difference)."""

_RATIO = 2.0
"""Step ratio of the Richardson sequence (numdifftools' default)."""

_MAX_LEVELS = 16
"""Steps in a Richardson sequence at most (down to 1/2**15 of the first, so a
function that varies on a scale of 1e-4 of max(|x|, 1) is still resolved); the
search stops once round-off dominates, for smooth functions after 4 to 6."""

_ASYMPTOTIC_SLACK = 3.0
"""Successive differences of the base estimates shrink by 2**e in the asymptotic
regime; a ratio within this factor of it counts as asymptotic. Tight enough that
a pre-asymptotic sequence rarely passes by chance at two levels in a row."""

_MAX_EXTRAP = 4
"""Richardson extrapolations at most: beyond that the weights amplify round-off more
than they remove truncation."""

_EDGE_SAFETY = 0.5
"""A contour's radius stays below this fraction of the first-order distance to the
nearest domain edge seen by the complex probe (a branch cut starts there)."""

_CHUNK = 1 << 22
"""Floats per batched call at most, so a batch never needs more than ~32 MB per array."""

_CS_FLOOR_SCALE = 0.25
"""The complex step is eps**2 * max(|x|, tiny**0.25): tiny relative to x (truncation
h**2 f'''/f' vanishes even next to a singularity at 0) and far above underflow."""


# ---------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NumericResult:
    """A numeric derivative with its error estimate and cost.

    Attributes:
        value: the derivative, shaped as the matching operator returns it
            (a tuple for a tuple ``argnums``).
        error: an estimate of ``|value - true value|``, shaped like ``value``.
        method: what was used: ``"complex"``, ``"richardson"``, ``"central"``,
            ``"forward"`` or ``"backward"``; ``"mixed (...)"`` when directions
            differ (one-sided at a domain edge).
        step: the step (absolute, in the argument's units) behind each
            element of ``value``: the smallest step of the selected estimate,
            or the radius of the complex contour.
        nfev: function evaluations (points; a batched call of ``k`` points counts ``k``).
        reason: why the method differs from the one asked for, else ``None``.

    Example:
        >>> import numpy as np, diffkit as dk
        >>> r = dk.Numeric().derivative_result(np.exp, 1.0)
        >>> r.method, bool(abs(r.value - np.e) <= r.error <= 1e-14)
        ('complex', True)
        >>> r = dk.Numeric().derivative_result(np.abs, -2.0)
        >>> r.method, round(float(r.value), 9), r.reason
        ('richardson', -1.0, 'complex step refused: absolute is not complex-analytic')
    """

    value: Any
    error: Any
    method: str
    step: Any
    nfev: int
    reason: str | None = None

    def __repr__(self) -> str:
        return (f"NumericResult(value={self.value!r}, error={self.error!r}, method={self.method!r}, "
                f"nfev={self.nfev}" + (f", reason={self.reason!r})" if self.reason else ")"))


# ---------------------------------------------------------------------------
# The complex probe: evaluation on complex values through diffkit's dispatch
# ---------------------------------------------------------------------------


class _Refused(Exception):
    """The function cannot be evaluated on complex values as an analytic function."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _Probe(Value):
    """A complex value running through the user's code (the numeric backend's trace)."""

    __slots__ = ("_trace", "primal")

    def __init__(self, trace: _ProbeTrace, primal: Any):
        self._trace = trace
        self.primal = primal

    def __repr__(self) -> str:
        return f"Probe({self.primal!r})"


class _ProbeTrace:
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
    stencil across it would average two slopes).
    """

    backend_name = "numeric"

    def __init__(self, rows: int | None):
        self.level = new_level()
        self.rows = rows
        self.refusals: list[str] = []
        self.edge = np.full(rows or 1, np.inf)
        self.kink = np.full(rows or 1, np.inf)
        self.met_kink = False

    def _refuse(self, why: str) -> None:
        if why not in self.refusals:
            self.refusals.append(why)

    def apply(self, prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        vals = [a.primal if type(a) is _Probe and a._trace is self else a for a in args]
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
        if prim.elementwise and prim.domain:
            self._measure_edges(prim, vals)
        return _Probe(self, out)

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
                # exactly at a kink (gap 0) a symmetric stencil gives the convention: not a limit
                dist = np.where((gap > 0) & (speed > 0), gap / np.where(speed > 0, speed, 1.0), np.inf)
        except Exception:  # noqa: BLE001 - a gap that cannot be measured limits nothing
            return
        self.kink = np.minimum(self.kink, self._per_row(dist))

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

    def call_custom(self, fn: Any, args: tuple[Any, ...]) -> Any:
        # A custom rule's function runs as it is: complex step sees what it computes.
        return fn.fun(*args)


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


# ---------------------------------------------------------------------------
# What we learn about a function: kept per function object, weakly
# ---------------------------------------------------------------------------

_FACTS: weakref.WeakKeyDictionary[Any, dict[Hashable, dict[str, Any]]] = weakref.WeakKeyDictionary()
"""function -> {call signature -> facts}. Two facts are kept: whether the
function broadcasts over a leading batch axis (``"batch"``) and why complex
step was refused (``"refused"``). Both depend only on the code and the
signature (shapes and dtypes of the differentiated arguments, the values of
the others), never on the point, so they cannot leak between functions or
change a result: they only save the evaluations that found them out. The
entry dies with the function object."""

_FACTS_PER_FUNCTION = 64
"""Signatures remembered per function (a function called with ever new constant
arguments would otherwise grow the table)."""


def _signature(primals: Sequence[Any], argnums: Sequence[int]) -> Hashable | None:
    key: list[Any] = [tuple(argnums)]
    for i, a in enumerate(primals):
        if i in argnums or isinstance(a, np.ndarray):
            arr = np.asarray(a)
            key.append(("array", arr.shape, arr.dtype.str, type(a).__name__))
            continue
        try:
            hash(a)
        except TypeError:
            return None  # unhashable constant: do not remember anything
        key.append((type(a).__name__, a))
    return tuple(key)


def _facts_for(fun: Any, primals: Sequence[Any], argnums: Sequence[int]) -> dict[str, Any]:
    key = _signature(primals, argnums)
    if key is None:
        return {}
    try:
        table = _FACTS.get(fun)
        if table is None:
            table = {}
            _FACTS[fun] = table
    except TypeError:  # not weakly referenceable (a NumPy ufunc): nothing kept
        return {}
    if key not in table and len(table) >= _FACTS_PER_FUNCTION:
        table.clear()
    return table.setdefault(key, {})


# ---------------------------------------------------------------------------
# Evaluating the function at many points
# ---------------------------------------------------------------------------


class _Evaluator:
    """The user's function at points of the flattened space of differentiated arguments.

    Points are rows of an array ``(P, N)``; values come back as ``(P, M)`` with
    ``M`` the size of the output. Real points run the plain function on the
    argument's dtype, complex points run through the probe trace. A batch runs
    as one call with a leading axis of length ``P`` when the function
    broadcasts that way (checked once per function and signature: output shape,
    and one row against a separate evaluation), else one call per point.
    """

    def __init__(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
                 vectorize: bool | None):
        for i, a in enumerate(primals):
            if isinstance(a, Value):
                raise TracingError(
                    f"the numeric backend evaluates the function at concrete points; argument {i} is "
                    f"traced by backend '{a._trace.backend_name}'. Put backend='numeric' on the "
                    "outside, or ask it for the higher derivative directly (dk.hessian, "
                    "dk.derivative(order=n))")
        self.fun = fun
        # NumPy scalars, not Python floats: user code then overflows to inf as NumPy does
        self.primals = [np.float64(p) if type(p) is float else p for p in primals]
        self.argnums = tuple(argnums)
        self.shapes = [tuple(np.shape(primals[i])) for i in argnums]
        self.sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        self.N = int(sum(self.sizes))
        dts = [np.asarray(primals[i]).dtype for i in argnums]
        for i, dt in zip(argnums, dts):
            if dt.kind == "c":
                raise TypeError(f"the numeric backend differentiates real arguments; argument {i} is "
                                f"{dt}")
        self.dtype = np.result_type(*dts) if dts else np.dtype(np.float64)
        if self.dtype.kind != "f":
            self.dtype = np.dtype(np.float64)
        self.cdtype = np.result_type(self.dtype, np.complex64)
        self.pyfloat = [type(primals[i]) is float for i in argnums]
        self.x0 = np.concatenate([np.asarray(primals[i], dtype=np.float64).ravel() for i in argnums]) \
            if argnums else np.zeros(0)
        self.facts = _facts_for(fun, primals, argnums)
        self.vectorize = vectorize
        self.nfev = 0
        self._f0: np.ndarray | None = None
        self._memo: dict[bytes, np.ndarray] = {}
        self._x0_key = self.x0.astype(self.dtype).tobytes()
        self.out_shape: tuple[int, ...] | None = None
        self.out_dtype: np.dtype[Any] | None = None

    # -- shapes ---------------------------------------------------------------
    @property
    def M(self) -> int:
        assert self.out_shape is not None
        return int(np.prod(self.out_shape, dtype=np.int64))

    def _dtypes(self) -> list[np.dtype[Any]]:
        out = [self.out_dtype] if self.out_dtype is not None and self.out_dtype.kind == "f" else []
        return [self.dtype] + out

    @property
    def eps(self) -> float:
        """Round-off unit of the values: the coarser of the argument's and the output's dtype."""
        return max(float(np.finfo(dt).eps) for dt in self._dtypes())

    @property
    def tiny(self) -> float:
        """Smallest normal number of the values' dtype (below it, precision is absolute)."""
        return max(float(np.finfo(dt).tiny) for dt in self._dtypes())

    @property
    def result_dtype(self) -> np.dtype[Any]:
        if self.out_dtype is None or self.out_dtype.kind != "f":
            return self.dtype
        return np.result_type(self.dtype, self.out_dtype)

    def _args(self, point: np.ndarray, batch: int | None) -> list[Any]:
        args = list(self.primals)
        start = 0
        for k, (i, shape, n) in enumerate(zip(self.argnums, self.shapes, self.sizes)):
            part = point[..., start:start + n]
            start += n
            if batch is None:
                if not shape and self.pyfloat[k] and part.dtype == np.float64:
                    args[i] = np.float64(part[0])
                else:
                    args[i] = part.reshape(shape)[()] if not shape else part.reshape(shape)
            else:
                args[i] = part.reshape((batch,) + shape)
        return args

    def _learn_output(self, out: Any) -> np.ndarray:
        arr = np.asarray(out)
        if arr.dtype.kind == "c":
            raise TypeError("the numeric backend differentiates real-valued functions; the function "
                            f"returned {arr.dtype}")
        if self.out_shape is None:
            self.out_shape = tuple(arr.shape)
            self.out_dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
        return arr

    # -- single points ----------------------------------------------------------
    def f0(self) -> np.ndarray:
        """``f(x)``, flattened to float64 (evaluated once)."""
        if self._f0 is None:
            with np.errstate(all="ignore"):
                out = pack(self.fun(*self.primals))
            self.nfev += 1
            self._f0 = self._learn_output(out).astype(np.float64).ravel()
        return self._f0

    def _real_one(self, row: np.ndarray) -> np.ndarray:
        self.nfev += 1
        try:
            with np.errstate(all="ignore"):
                out = pack(self.fun(*self._args(row, None)))
        except (ValueError, ArithmeticError):
            # math.sqrt(-1) and friends: a point outside the function's domain
            return np.full(self.M, np.nan)
        arr = self._learn_output(out)
        if arr.shape != self.out_shape:
            raise ShapeError(f"the function returned shape {arr.shape} at a perturbed point, "
                             f"{self.out_shape} at x")
        return arr.astype(np.float64).ravel()

    def _complex_one(self, row: np.ndarray) -> tuple[np.ndarray, float]:
        self.nfev += 1
        points = self._args(row, None)
        value, trace = _complex_call(self.fun, [points[i] for i in self.argnums], self.argnums,
                                     self.primals, rows=None)
        if self.out_shape is None:
            self.out_shape = tuple(value.shape)
            self.out_dtype = np.dtype(np.real(value).dtype)
        if value.shape != self.out_shape:
            raise _Refused(f"the output has shape {value.shape} on complex input, {self.out_shape} on real")
        return value.astype(np.complex128).ravel(), float(trace.edge[0])

    def kink_distance(self, U: np.ndarray) -> np.ndarray:
        """Per direction, how far (in units of t) ``x`` may move before a primitive reaches a kink.

        One probe evaluation per direction, to first order (the first direction
        alone first: a function that meets no primitive with a kink costs one
        evaluation, and is remembered and not probed again); inf where no kink
        is near or none can be measured.
        """
        k = U.shape[0]
        far = np.full(k, np.inf)
        if k == 0 or self.facts.get("kinks") is False:
            return far
        h = self.eps
        Z = (self.x0[None, :].astype(np.complex128) + 1j * h * U).astype(self.cdtype)

        def probe(z: np.ndarray, rows: int | None) -> _ProbeTrace:
            points = self._args(z, rows)
            self.nfev += rows or 1
            return _complex_call(self.fun, [points[i] for i in self.argnums], self.argnums,
                                 self.primals, rows=rows, strict=False)[1]

        try:
            # the first direction alone first: most functions meet no kink at all
            first = probe(Z[0], None)
            met = first.met_kink
            far[0] = first.kink[0] * h
            if met and k > 1:
                if self.facts.get("batch") is True:
                    far[1:] = probe(Z[1:], k - 1).kink * h
                else:
                    for r in range(1, k):
                        far[r] = probe(Z[r], None).kink[0] * h
        except _Refused:  # the function does not run on probe values: nothing to measure
            met = False
            far[:] = np.inf
        self.facts["kinks"] = met
        return far

    # -- batches ----------------------------------------------------------------
    def real(self, X: np.ndarray, remember: bool = False) -> np.ndarray:
        """Values at the real points ``X`` (rows, already in the argument's dtype).

        Rows evaluated before with ``remember=True`` (the domain check's points)
        and ``x`` itself are not evaluated again.
        """
        f0 = self.f0()
        if not self._memo:
            self._memo[self._x0_key] = f0
        keys = [row.tobytes() for row in X]
        todo = [r for r, key in enumerate(keys) if key not in self._memo]
        out = np.empty((X.shape[0], self.M))
        if todo:
            vals = self._batched(X[todo], complex_=False)[0]
            out[todo] = vals
            if remember:
                self._memo.update((keys[r], v) for r, v in zip(todo, vals))
        for r, key in enumerate(keys):
            if key in self._memo:
                out[r] = self._memo[key]
        return out

    def complex(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values (complex) and edge distances (per row, over |Im|) at complex points ``Z``."""
        return self._batched(Z, complex_=True)

    def _batched(self, X: np.ndarray, complex_: bool) -> tuple[np.ndarray, np.ndarray]:
        P = X.shape[0]
        width = max(self.N, self.M if self.out_shape is not None else 1, 1)
        chunk = max(1, _CHUNK // width)
        if P > chunk:
            parts = [self._batched(X[s:s + chunk], complex_) for s in range(0, P, chunk)]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        if P >= 2 and self.vectorize is not False and self.facts.get("batch", True):
            got = self._try_batch(X, complex_)
            if got is not None:
                return got
        values = []
        edges = np.full(P, np.inf)
        for r in range(P):
            if complex_:
                v, e = self._complex_one(X[r])
                values.append(v)
                edges[r] = e
            else:
                values.append(self._real_one(X[r]))
        return np.array(values), edges

    def _try_batch(self, X: np.ndarray, complex_: bool) -> tuple[np.ndarray, np.ndarray] | None:
        P = X.shape[0]
        trusted = self.vectorize is True or self.facts.get("batch") is True
        try:
            if complex_:
                points = self._args(X, P)
                value, trace = _complex_call(self.fun, [points[i] for i in self.argnums],
                                             self.argnums, self.primals, rows=P)
                edges = trace.edge
            else:
                with np.errstate(all="ignore"):
                    value = np.asarray(pack(self.fun(*self._args(X, P))))
                edges = np.full(P, np.inf)
        except _Refused:
            if self.facts.get("batch") is True:
                raise  # known to broadcast: the refusal is about the function, not the batch
            value = None
        except Exception:  # noqa: BLE001 - any failure means "does not broadcast": fall back to a loop
            value = None
        self.nfev += P
        if value is None or self.out_shape is None or tuple(value.shape) != (P,) + self.out_shape \
                or value.dtype.kind not in ("c" if complex_ else "fiub"):
            self.facts["batch"] = False
            return None
        flat = value.reshape(P, -1).astype(np.complex128 if complex_ else np.float64)
        if not trusted:
            # One row against its own evaluation: a function that mixes the rows (a sum
            # over everything, a mean subtracted) gives the right shape and wrong values.
            r = P - 1
            if complex_:
                single, _ = self._complex_one(X[r])
            else:
                single = self._real_one(X[r])
            scale = np.max(np.abs(single), initial=0.0)
            tol = 64 * self.eps * scale  # reductions may sum in another order: a few ulps
            same = np.all((np.abs(flat[r] - single) <= tol) | (np.isnan(single) & np.isnan(flat[r])))
            self.facts["batch"] = bool(same)
            if not same:
                return None
        return flat, edges


# ---------------------------------------------------------------------------
# Derivatives along lines
# ---------------------------------------------------------------------------


@dataclass
class _Lines:
    """Derivatives along ``k`` directions, each of the ``M`` output elements."""

    value: np.ndarray          # (k, M)
    error: np.ndarray          # (k, M)
    step: np.ndarray           # (k, M), in units of t
    kinds: list[str]           # per direction: complex / richardson / central / forward / backward
    notes: list[str]
    lost: np.ndarray | None = None   # (k, M): a Richardson sequence that was never trusted


def _stencil_offsets(n: int, kind: str, p: int) -> np.ndarray:
    """Integer offsets of the stencil of the ``n``-th derivative with accuracy order ``p``."""
    if kind == "central":
        m = (n + p - 1) // 2
        offs = np.arange(-m, m + 1, dtype=np.float64)
        return offs[offs != 0] if n % 2 else offs  # odd derivatives: the centre weighs 0
    offs = np.arange(0, n + p, dtype=np.float64)
    return offs if kind == "forward" else -offs[::-1]


def _order_for(kind: str, order: int | None) -> int:
    if order is None:
        return 2 if kind == "central" else 1
    p = int(order)
    if p < 1:
        raise ValueError(f"order (the accuracy order) must be >= 1, got {order}")
    if kind == "central" and p % 2:
        p += 1  # central stencils are symmetric: their order is even
    return p


def _grid_delta(ev: _Evaluator, U: np.ndarray, h: np.ndarray, reach: float, levels: int) -> np.ndarray:
    """The displacements ``h[b] * U[b]``, per component, rounded onto the floating-point grid.

    Each component becomes a multiple of ``ulp * 2**levels``, with ``ulp`` the
    spacing at the farthest point of the stencil (``reach`` steps away), so
    that ``x + o * delta / 2**j`` is exact for integer offsets ``|o| <= reach``
    and ``j <= levels``: the stencil is exactly symmetric and successive steps
    are exactly halved. Rounded points would not be symmetric, and next to a
    singularity (where ``f''`` is huge) the term ``f'' (a - b) / 2`` of two
    unequal half-widths ``a``, ``b`` is an error that no extrapolation removes.
    (Only a stencil that crosses into a coarser binade cannot be exact.)
    """
    d = h[:, None] * U
    far = np.abs(ev.x0)[None, :] + reach * np.abs(d)
    grid = np.spacing(far.astype(ev.dtype)).astype(np.float64) * 2.0 ** levels
    q = np.round(d / grid)
    q = np.where((q == 0) & (d != 0), np.sign(d), q)
    return np.asarray(q * grid)


def _real_points(ev: _Evaluator, U: np.ndarray, delta: np.ndarray, offs: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``x + offs[a] * delta[b]`` in the argument's dtype, and the displacements taken.

    Returns ``(X, t_eff)`` with ``X`` of shape ``(k * A, N)`` and ``t_eff`` of shape
    ``(k, A)``: each rounded point's displacement projected on ``U[b]``, in units of t.
    """
    k, A = delta.shape[0], len(offs)
    X = ev.x0[None, None, :] + offs[None, :, None] * delta[:, None, :]
    Xd = X.astype(ev.dtype)
    disp = Xd.astype(np.float64) - ev.x0[None, None, :]
    uu = np.sum(U * U, axis=1)
    t_eff = np.einsum("kan,kn->ka", disp, U) / np.where(uu > 0, uu, 1.0)[:, None]
    return Xd.reshape(k * A, -1), t_eff


def _complex_first(ev: _Evaluator, U: np.ndarray, h: np.ndarray, estimate: bool) -> _Lines:
    """First derivatives along ``U`` by complex step, with a round-off estimate.

    The estimate comes from one more complex evaluation, along a random
    combination of the directions, a few ulps away from ``x`` and with a step
    ``_CS_STEP_RATIO`` larger: its round-off is independent of the first, so
    the difference to the same combination of the first results measures it.
    """
    k = U.shape[0]
    Z = ev.x0[None, :].astype(np.complex128) + 1j * h[:, None] * U
    vals, edges = ev.complex(Z.astype(ev.cdtype))
    D = vals.imag / h[:, None]
    eps = ev.eps
    # an imaginary part in the subnormal range is known only to tiny * eps (absolute)
    tiny = float(np.finfo(ev.dtype).tiny)
    err = _CS_FLOOR_ULPS * eps * (np.abs(D) + tiny / h[:, None])
    if estimate:
        rng = np.random.default_rng(20180226)  # fixed: results are reproducible
        sigma = rng.choice([-1.0, 1.0], size=k)
        # Imaginary displacements that make every direction's term a_j D_j about the same
        # size: the combination's round-off d is then about k eps |a_j D_j| for each j, and
        # d / |a_i| bounds direction i's noise relative to its own derivative. (Each
        # direction's own step is relative to |x_i|, ~1e-77 at x_i = 0, and derivatives
        # may differ by orders of magnitude: unweighted, one direction's round-off was
        # charged to another, 9.7e61 for an argument at 0.)
        size = np.max(np.abs(D), axis=1, initial=0.0)
        small = float(np.min(size[size > 0], initial=1.0)) if np.any(size > 0) else 1.0
        with np.errstate(divide="ignore"):
            shrink = np.where(size > 0, np.clip(small / np.where(size > 0, size, 1.0), 1e-30, 1.0), 1.0)
        a = sigma * float(np.max(h, initial=0.0)) * _CS_STEP_RATIO * shrink
        w = np.sum(a[:, None] * U, axis=0)
        shifted = ev.x0 + _CS_SHIFT_ULPS * eps * np.abs(ev.x0) * np.sign(sigma @ U if k else 0)
        v2, _ = ev.complex((shifted.astype(ev.dtype).astype(np.complex128) + 1j * w)[None, :].astype(ev.cdtype))
        combo = np.sum(a[:, None] * D, axis=0)
        d = np.abs(v2[0].imag - combo)
        err = np.maximum(err, _CS_NOISE_FACTOR * d[None, :] / np.abs(a)[:, None])
    return _Lines(D, err, np.broadcast_to(h[:, None], D.shape).copy(), ["complex"] * k, [])


_RICHARDSON_SAFETY = 2.0


def _extrapolation_weights(hs: np.ndarray, exps: Sequence[float]) -> np.ndarray:
    """Weights ``c`` with ``sum(c) == 1`` that cancel the terms ``h**e`` for each ``e`` in ``exps``."""
    k = len(exps)
    r = hs / hs.max()
    A = np.ones((k + 1, k + 1))
    for i, e in enumerate(exps):
        A[i + 1] = r ** e
    rhs = np.zeros(k + 1)
    rhs[0] = 1.0
    return np.linalg.solve(A, rhs)


def _ladder(ev: _Evaluator, U: np.ndarray, n: int, kind: str, p: int, h0: np.ndarray,
            user_step: bool, slope: np.ndarray | None = None) -> _Lines:
    """Richardson extrapolation over the steps ``h0 / 2**j``, per direction and output element.

    ``kind`` is ``"central"``, ``"forward"``, ``"backward"`` (finite
    differences) or ``"contour"`` (complex, n >= 2). Each new step adds a row
    to the Richardson table. An entry is *trusted* only once the steps behind
    it are in the asymptotic regime: successive differences of the base
    estimates shrink by the expected factor ``2**e`` (or are at round-off).
    Before that, two values can agree by chance (an oscillating function
    sampled at steps larger than its period), the classic way Richardson
    extrapolation fails. Each trusted entry gets an error estimate: how much
    the last extrapolation and the last step changed it, plus the round-off
    bound ``sum |weights| * eps * |values|``; the smallest wins, per element.
    A direction stops once its estimate stops improving for two steps or
    reaches round-off; one where nothing was ever trusted reports its best
    value with the spread of the last estimates as its error.

    On a contour, ``slope`` (the exact first derivative from the complex step)
    adds a check per level: the same points must reproduce it. A radius far
    beyond the function's scale can give a consistent but wrong sequence
    (``tanh(20000 x)`` is exactly +-1, imaginary part 0, on a circle of
    radius 0.1: every estimate is 0); it cannot reproduce ``f'``.
    """
    k = U.shape[0]
    contour = kind == "contour"
    kinds = [kind] * k
    notes: list[str] = []
    h = h0.astype(np.float64).copy()
    f0 = delta0 = None
    if not contour:
        f0 = ev.f0()
        h, notes = _inside_kinks(ev, U, n, kinds, p, h, user_step)
        h, kinds, fit_notes = _fit_domain(ev, U, n, kinds, p, h, user_step, 1.0, _MAX_LEVELS)
        notes += fit_notes
        # displacements on the floating-point grid, exactly halved at every level
        delta0 = _grid_deltas(ev, U, h, n, kinds, p, 1.0, _MAX_LEVELS)
        h = _t_of(U, delta0)
    # exponents of the error series of the base estimates, per direction
    if contour:
        first = np.full(k, 2.0 * n)
        stride = np.full(k, 2.0 * n)
    else:
        central = np.array([kd == "central" for kd in kinds])
        first = np.full(k, float(p))
        stride = np.where(central, 2.0, 1.0)
    families = sorted({(a, b) for a, b in zip(first, stride)})
    recent: list[np.ndarray] = []     # per direction, its last three base estimates
    D_lv: list[np.ndarray] = []
    R_lv: list[np.ndarray] = []
    ok_lv: list[np.ndarray] = []      # per level: asymptotic (or at round-off) per element
    T_prev: list[np.ndarray] = []
    # best trusted entry and best entry at all, per element (sized at the first level)
    best_v = best_e = best_h = any_v = any_e = any_h = np.empty((0, 0))
    active = np.ones(k, dtype=bool)
    stale = np.zeros(k, dtype=int)
    last = np.full(k, np.inf)
    expected = _RATIO ** first        # how much successive differences shrink
    for j in range(_MAX_LEVELS):
        hj = h / _RATIO ** j
        idx = np.flatnonzero(active)
        sane = np.ones((k, 1), dtype=bool)
        if contour:
            got = _contour_values(ev, U[idx], n, hj[idx])
            D, R = _contour_level(ev, U[idx], n, hj[idx], got)
            if slope is not None:
                a1, a1_noise = _contour_slope(ev, got, n)
                # the slope's aliasing error, in function units (times r), must stay below
                # the n-th order term itself, or within 10% of the slope
                allowed = 0.1 * np.abs(slope[idx]) + np.abs(D) * hj[idx, None] ** (n - 1) / math.factorial(n)
                sane = np.ones((k, D.shape[1]), dtype=bool)
                sane[idx] = np.abs(a1 - slope[idx]) <= allowed + a1_noise
        else:
            assert f0 is not None and delta0 is not None
            D, R = _fd_level(ev, U[idx], n, [kinds[b] for b in idx], p, delta0[idx] / _RATIO ** j, f0)
        M = D.shape[1]
        Df = np.full((k, M), np.nan)
        Rf = np.full((k, M), np.nan)
        Df[idx], Rf[idx] = D, R
        D_lv.append(Df)
        R_lv.append(Rf)
        if not recent:
            recent = [Df.copy() for _ in range(3)]
        recent = recent[1:] + [np.where(active[:, None], Df, recent[-1])]
        if j == 0:
            best_v, best_e = Df.copy(), np.full((k, M), np.inf)
            best_h = np.broadcast_to(hj[:, None], (k, M)).copy()
            any_v, any_e, any_h = best_v.copy(), best_e.copy(), best_h.copy()
        # is this level in the asymptotic regime? (needs two differences)
        if j >= 2:
            d1 = np.abs(D_lv[j - 1] - D_lv[j - 2])
            d2 = np.abs(Df - D_lv[j - 1])
            noise = 4.0 * (Rf + R_lv[j - 1] + R_lv[j - 2])
            with np.errstate(divide="ignore", invalid="ignore"):
                rho = d1 / d2
            e = expected[:, None]
            ok = ((rho > e / _ASYMPTOTIC_SLACK) & (rho < e * _ASYMPTOTIC_SLACK)) | (np.maximum(d1, d2) <= noise)
        else:
            ok = np.zeros((k, M), dtype=bool)
        ok_lv.append(ok & sane)
        T_row = [Df]
        E_row = [np.abs(Df - D_lv[j - 1]) + Rf if j >= 1 else np.full((k, M), np.inf)]
        for kk in range(1, min(j, _MAX_EXTRAP) + 1):
            window = list(range(j - kk, j + 1))
            hs = _RATIO ** -np.array(window, dtype=np.float64)
            T = np.empty((k, M))
            Rk = np.empty((k, M))
            for a, b in families:
                sel = (first == a) & (stride == b)
                c = _extrapolation_weights(hs, [a + b * i for i in range(kk)])
                T[sel] = sum(ci * D_lv[m][sel] for ci, m in zip(c, window))
                Rk[sel] = sum(abs(ci) * R_lv[m][sel] for ci, m in zip(c, window))
            diff = np.abs(T - T_row[kk - 1])
            if kk < len(T_prev):
                diff = np.maximum(diff, np.abs(T - T_prev[kk]))
            T_row.append(T)
            E_row.append(diff + Rk)
        T_prev = T_row
        for kk, (T, E) in enumerate(zip(T_row, E_row)):
            good = np.isfinite(E)
            take = good & (E < any_e)
            any_v, any_e = np.where(take, T, any_v), np.where(take, E, any_e)
            any_h = np.where(take, hj[:, None], any_h)
            # trusted: every level whose ratio the window's estimates rely on looked asymptotic
            # (two consecutive ratio tests: one alone passes by chance too often)
            trusted = good & (j >= 3)
            for m in range(max(2, min(j - kk, j - 1)), j + 1):
                trusted &= ok_lv[m]
            take = trusted & (E < best_e)
            best_v, best_e = np.where(take, T, best_v), np.where(take, E, best_e)
            best_h = np.where(take, hj[:, None], best_h)
        # stopping, per direction: converged (trusted and round-off reached) or stalled
        valid = np.isfinite(Df)
        cur = np.where(np.any(valid, axis=1),
                       np.max(np.where(valid, best_e, -np.inf), axis=1, initial=-np.inf), np.inf)
        floor = np.max(np.where(valid, Rf, 0.0), axis=1, initial=0.0)
        stale = np.where(cur < 0.5 * last, 0, stale + 1)
        last = np.minimum(last, cur)
        if j >= 3:
            settled = np.isfinite(cur) & ((stale >= 2) | (cur <= 2.0 * floor))
            active &= ~settled
        if not np.any(active):
            break
    # never trusted: the best untrusted value, with the spread of the last base estimates
    spread = np.max(np.abs(np.array(recent) - any_v[None]), axis=0)
    lost = ~np.isfinite(best_e)
    value = np.where(lost, any_v, best_v)
    error = np.where(lost, np.maximum(any_e, spread), best_e)
    step = np.where(lost, any_h, best_h)
    if np.any(lost & np.isfinite(value)):
        notes.append("the Richardson sequence never reached its asymptotic regime for some elements "
                     "(the function varies on a scale below the smallest step): the error is the spread "
                     "of the last estimates")
    error = np.where(np.isfinite(error) | ~np.isfinite(value), error, np.abs(value))
    # Differences of successive extrapolants estimate the error to within a small factor only:
    # the thorough property run found a true error 1.56x the estimate (round-off dominated,
    # near 1e-13); doubling keeps the estimate a bound without making it loose.
    error = _RICHARDSON_SAFETY * error
    return _Lines(value, error, step, ["complex" if contour else kd for kd in kinds], notes,
                  lost & np.isfinite(value))


def _fd_level(ev: _Evaluator, U: np.ndarray, n: int, kinds: list[str], p: int, delta: np.ndarray,
              f0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Finite-difference estimates with displacements ``delta`` (one row per direction), and
    their round-off bounds."""
    k = U.shape[0]
    M = f0.shape[0]
    D = np.empty((k, M))
    R = np.empty((k, M))
    for kind in sorted(set(kinds)):
        sel = np.array([kd == kind for kd in kinds])
        ks = int(sel.sum())
        offs = _stencil_offsets(n, kind, p)
        nz = offs != 0
        X, t_eff = _real_points(ev, U[sel], delta[sel], offs[nz])
        vals = ev.real(X).reshape(ks, int(nz.sum()), M)
        nodes = np.zeros((len(offs), ks))
        nodes[nz] = t_eff.T
        w = fornberg_weights(nodes, n)  # (A, ks)
        allv = np.empty((ks, len(offs), M))
        allv[:, nz] = vals
        if not np.all(nz):
            allv[:, ~nz] = f0[None, None, :]
        D[sel] = np.einsum("ak,kam->km", w, allv)
        # values below tiny are subnormal: known to tiny * eps, not to eps relative
        R[sel] = _NOISE_ULPS * ev.eps * np.einsum("ak,kam->km", np.abs(w), np.abs(allv) + ev.tiny)
    return D, R


def _grid_deltas(ev: _Evaluator, U: np.ndarray, h: np.ndarray, n: int, kinds: list[str], p: int,
                 factor: float, levels: int) -> np.ndarray:
    delta = np.empty_like(U)
    for kind in sorted(set(kinds)):
        sel = np.array([kd == kind for kd in kinds])
        reach = float(np.max(np.abs(_stencil_offsets(n, kind, p)))) * factor
        delta[sel] = _grid_delta(ev, U[sel], h[sel], reach, levels)
    return delta


def _t_of(U: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """A displacement's length along its direction, in units of t."""
    uu = np.sum(U * U, axis=1)
    return np.asarray(np.einsum("kn,kn->k", delta, U) / np.where(uu > 0, uu, 1.0))


def _contour_values(ev: _Evaluator, U: np.ndarray, n: int, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``f`` at ``x + r exp(i pi (2k+1) / (2n)) u`` for each direction, shape ``(k, n, M)``,
    and the radii used, shape ``(k,)``.

    For n = 2 the points are ``x +- a u + i a u`` with ``a`` on the
    floating-point grid, so their real parts are exact and they lie exactly on
    the circle of radius ``a sqrt(2)``: a real part rounded by half an ulp would
    cost ``f'' ulp(x) / r``, which dominates at small radii next to a large
    ``x``. (Other n keep that small error: their cosines cannot all be on the grid.)
    """
    k = U.shape[0]
    if n == 2:
        a = _grid_delta(ev, U, r / math.sqrt(2.0), 1.0, 0)        # (k, N) on the grid
        Z = ev.x0[None, None, :] + np.array([1.0, -1.0])[None, :, None] * a[:, None, :] + 1j * a[:, None, :]
        r = np.sqrt(2.0) * _t_of(U, a)
    else:
        angles = np.pi * (2 * np.arange(n) + 1) / (2 * n)
        w = np.exp(1j * angles)
        Z = ev.x0[None, None, :] + (r[:, None, None] * w[None, :, None]) * U[:, None, :]
    vals = ev.complex(Z.reshape(k * n, -1).astype(ev.cdtype))[0]
    return vals.reshape(k, n, -1), r


def _contour_level(ev: _Evaluator, U: np.ndarray, n: int, r: np.ndarray,
                   got: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The n-th derivative from ``n`` points on a circle of radius ``r`` (per direction).

    Points ``x + r exp(i pi (2k+1) / (2n)) u``, k = 0..n-1: with their mirror
    images (the conjugates, which a real function maps to conjugate values)
    they are 2n points on the circle, and the n-th Taylor coefficient is the
    alternating sum of the imaginary parts,
    ``(n-1)!/r**n sum (-1)**k Im f(z_k)`` (Lyness and Moler 1967). The real
    part, and with it ``f(x)``, drops out, so round-off is relative to
    ``r |f'|``, not ``|f|``.
    """
    vals, r = got if got is not None else _contour_values(ev, U, n, r)
    im = vals.imag
    sign = (-1.0) ** np.arange(n)
    scale = math.factorial(n - 1) / r ** n
    D = scale[:, None] * np.einsum("a,kam->km", sign, im)
    R = _CONTOUR_NOISE_ULPS * ev.eps * scale[:, None] * np.sum(np.abs(im) + ev.tiny, axis=1)
    D[~np.isfinite(D)] = np.nan
    return D, R


def _contour_slope(ev: _Evaluator, got: tuple[np.ndarray, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first derivative from the same points (their first Fourier coefficient), and its round-off."""
    vals, r = got
    angles = np.pi * (2 * np.arange(n) + 1) / (2 * n)
    a1 = (np.einsum("a,kam->km", np.cos(angles), vals.real) + np.einsum("a,kam->km", np.sin(angles), vals.imag)) \
        / (n * r[:, None])
    noise = _CONTOUR_NOISE_ULPS * ev.eps * np.sum(np.abs(vals), axis=1) / (n * r[:, None])
    return a1, noise


def _fit_domain(ev: _Evaluator, U: np.ndarray, n: int, kinds: list[str], p: int, h: np.ndarray,
                user_step: bool, factor: float, levels: int) -> tuple[np.ndarray, list[str], list[str]]:
    """Steps and stencils that stay inside the function's domain, per direction.

    A stencil point where ``f`` is not finite (while ``f(x)`` is) has left the
    domain. Unless the step was given, the stencil is shrunk by 16 until it
    fits; the edge is then about that far away, and next to an edge a
    function varies on the scale of the distance to it (``log``, ``sqrt``
    just right of 0), so the step is rescaled to that distance (the relative
    step times the distance), not merely kept inside. If no step above
    ``_MIN_STEP_ULPS`` ulps fits, ``x`` sits on the edge: a central stencil
    becomes one-sided towards the finite side.
    """
    f0 = ev.f0()
    finite0 = np.isfinite(f0)
    if not np.any(finite0):
        return h, kinds, []
    notes: list[str] = []
    kinds = list(kinds)
    h = h.copy()
    floor = _MIN_STEP_ULPS * ev.eps  # in units of t, so at least that many ulps of x

    def ends_ok(b: int, kind: str, hb: float) -> np.ndarray:
        offs = _stencil_offsets(n, kind, p)
        ends = np.array([offs.min(), offs.max()])
        delta = _grid_delta(ev, U[b:b + 1], np.array([hb]), float(np.max(np.abs(ends))) * factor, levels)
        X, _ = _real_points(ev, U[b:b + 1], delta, ends)
        vals = ev.real(X, remember=True)
        return np.asarray(np.all(np.isfinite(vals[:, finite0]), axis=1))

    def fit(b: int, kind: str, start: float) -> tuple[float | None, np.ndarray]:
        hb = start
        ok = ends_ok(b, kind, hb)
        if np.all(ok):
            return start, ok
        if user_step:
            return None, ok
        while hb / _SHRINK >= floor:
            hb /= _SHRINK
            ok = ends_ok(b, kind, hb)
            if np.all(ok):
                extent = float(np.max(np.abs(_stencil_offsets(n, kind, p))))
                return min(hb, start * hb * extent), ok
        return None, ok

    # all directions at once first: usually every stencil fits and that is the only call
    k = U.shape[0]
    vals = np.empty((k, 2, f0.shape[0]))
    for kind in sorted(set(kinds)):
        sel = np.flatnonzero([kd == kind for kd in kinds])
        offs = _stencil_offsets(n, kind, p)
        ends = np.array([offs.min(), offs.max()])
        delta = _grid_delta(ev, U[sel], h[sel], float(np.max(np.abs(ends))) * factor, levels)
        X, _ = _real_points(ev, U[sel], delta, ends)
        vals[sel] = ev.real(X, remember=True).reshape(len(sel), 2, -1)
    fits = np.all(np.isfinite(vals[:, :, finite0]), axis=(1, 2))
    for b in (int(i) for i in np.flatnonzero(~fits)):
        kind = kinds[b]
        hb, ok = fit(b, kind, float(h[b]))
        if hb is not None:
            h[b] = hb
            continue
        side = "forward" if ok[1] else "backward" if ok[0] else None
        if kind == "central" and side is not None:
            # x sits on the edge: one-sided, towards the finite side, at the usual step
            hb, _ = fit(b, side, float(h[b]))
            if hb is not None:
                kinds[b], h[b] = side, hb
                notes.append(f"one-sided ({side}) along direction {b}: the function is not finite on "
                             "the other side of x")
                continue
        notes.append(f"no finite stencil along direction {b}: the function is not finite next to x")
    return h, kinds, notes


def _inside_kinks(ev: _Evaluator, U: np.ndarray, n: int, kinds: list[str], p: int, h: np.ndarray,
                  user_step: bool) -> tuple[np.ndarray, list[str]]:
    """Steps whose stencils stay on one side of the nearest kink, per direction.

    A finite difference across a kink of ``abs``, ``maximum``, a comparison in
    a ``np.where`` ... averages two slopes, and Richardson extrapolation can
    mistake the mix for convergence. The probe measures the distance to the
    nearest kink; the stencil's reach is kept below half of it. A kink within
    ``_MIN_STEP_ULPS`` ulps is left alone: the stencil then straddles it
    symmetrically and gives the average of the two slopes, which at the kink
    itself is the table's convention.
    """
    if user_step:
        return h, []
    reach = ev.kink_distance(U)
    extent = np.array([float(np.max(np.abs(_stencil_offsets(n, kd, p)))) for kd in kinds])
    limit = _EDGE_SAFETY * reach / extent
    near = limit < h
    fits = near & (limit >= _MIN_STEP_ULPS * ev.eps)
    notes = []
    if np.any(near & ~fits):
        notes.append("a kink lies within a few ulps of x: the stencil straddles it and gives the "
                     "average of the slopes on its two sides")
    return np.where(fits, limit, h), notes


def _plain(ev: _Evaluator, U: np.ndarray, n: int, kind: str, p: int, h: np.ndarray, user_step: bool,
           estimate: bool) -> _Lines:
    """One stencil per direction at step ``h``; the estimate compares it with the same stencil at 2h."""
    k = U.shape[0]
    f0 = ev.f0()
    kinds = [kind] * k
    wide, notes = _inside_kinks(ev, U, n, kinds, p, 2.0 * h, user_step)  # the estimate uses 2h
    h, kinds, fit_notes = _fit_domain(ev, U, n, kinds, p, wide / 2.0, user_step, 2.0, 1)
    notes += fit_notes
    # on the grid, so that the stencil is exactly symmetric and its double exactly twice as wide
    delta = _grid_deltas(ev, U, h, n, kinds, p, 2.0, 1)
    h = _t_of(U, delta)
    D, R = _fd_level(ev, U, n, kinds, p, delta, f0)
    err = R
    if estimate:
        D2, _ = _fd_level(ev, U, n, kinds, p, 2 * delta, f0)
        # Richardson: D(h) - f = c h**p, D(2h) - f = c (2h)**p  =>  error of D(h) = (D(2h) - D(h)) / (2**p - 1)
        err = np.abs(D2 - D) / (2.0 ** p - 1) + R
    return _Lines(D, err, np.broadcast_to(h[:, None], D.shape).copy(), kinds, notes)


# ---------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Numeric(ADBackend):
    """Numeric differentiation: complex step, Richardson-extrapolated and plain differences.

    A frozen configuration; each call evaluates the user's function at
    perturbed points and nothing is remembered except, per function object,
    facts that cannot change a result (whether it broadcasts over a batch axis,
    why complex step was refused).

    Args:
        method: ``"auto"`` (complex step where every primitive met is
            complex-analytic, else ``"richardson"``), ``"complex"`` (falls back
            like auto, and says why), ``"richardson"`` (central differences
            extrapolated over a sequence of steps, with error estimates),
            ``"central"``, ``"forward"``, ``"backward"`` (one stencil).
        order: accuracy order of the finite-difference stencils (default 2
            for central, 1 for one-sided; the base of the Richardson
            sequence). Complex step ignores it.
        step: an absolute step instead of the automatic one (the largest
            step of a Richardson sequence, the radius of a complex contour).
        vectorize: ``None`` finds out whether the function broadcasts over a
            leading batch axis and evaluates all points of a stencil in one
            call if it does; ``True`` trusts that it does, ``False`` loops.

    Example:
        >>> import numpy as np, diffkit as dk
        >>> f = lambda x, y: np.sin(x) * np.exp(y) + x**2 * y
        >>> [round(float(g), 10) for g in dk.grad(f, argnums=(0, 1), backend="numeric")(1.0, 2.0)]
        [7.9923240484, 7.2176763124]
        >>> round(float(dk.derivative(np.sin, order=3, backend=dk.Numeric())(0.0)), 12)
        -1.0
    """

    method: str = "auto"
    order: int | None = None
    step: float | None = None
    vectorize: bool | None = None

    name = "numeric"
    prefers_reverse = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"Numeric(method={self.method!r}): choose one of {', '.join(METHODS)}")
        if self.order is not None and int(self.order) < 1:
            raise ValueError(f"Numeric(order={self.order!r}): the accuracy order must be >= 1")
        if self.step is not None and not (float(self.step) > 0 and math.isfinite(float(self.step))):
            raise ValueError(f"Numeric(step={self.step!r}): the step must be a positive number")

    def __repr__(self) -> str:
        args = [f"method={self.method!r}"] + [f"{k}={getattr(self, k)!r}" for k in ("order", "step", "vectorize")
                                              if getattr(self, k) is not None]
        return f"Numeric({', '.join(args)})"

    # ------------------------------------------------------------------------
    # The core: derivatives of order n along directions
    # ------------------------------------------------------------------------
    def _scales(self, ev: _Evaluator) -> np.ndarray:
        # the unit of each coordinate: |x_i|, but at least 1, so that t is a relative step
        return np.asarray(np.maximum(np.abs(ev.x0), 1.0))

    def _lines(self, ev: _Evaluator, U: np.ndarray, n: int, estimate: bool
               ) -> tuple[_Lines, str, str | None]:
        """Derivatives of order ``n`` along the rows of ``U``: (lines, method, reason)."""
        method = self.method
        reason = None
        if method in ("auto", "complex"):
            refused = ev.facts.get("refused")
            if refused is None:
                try:
                    lines = self._complex(ev, U, n, estimate)
                    if lines.lost is not None and np.any(lines.lost):
                        return self._rescue(ev, U, n, lines)
                    return lines, "complex", _join(None, lines.notes)
                except _Refused as r:
                    refused = r.reason
                    ev.facts["refused"] = refused
            reason = f"complex step refused: {refused}"
            method = "richardson"
        p = _order_for("central", self.order)
        if method == "richardson":
            h0 = self._ladder_start(ev, U, n, p)
            lines = _ladder(ev, U, n, "central", p, h0, self.step is not None)
            return lines, _method_name(lines.kinds, "richardson"), _join(reason, lines.notes)
        p = _order_for(method, self.order)
        h = self._plain_step(ev, U, n, method, p)
        lines = _plain(ev, U, n, method, p, h, self.step is not None, estimate)
        return lines, _method_name(lines.kinds, None), _join(reason, lines.notes)

    def _rescue(self, ev: _Evaluator, U: np.ndarray, n: int, lines: _Lines) -> tuple[_Lines, str, str | None]:
        """Richardson differences for the directions whose complex contour was never trusted.

        A contour needs the function analytic in a disk; poles close to the real
        axis (a steep ``tanh``) can leave no radius that works, while the real line
        is smooth. The better of the two estimates wins, per element.
        """
        rows = np.flatnonzero(np.any(lines.lost, axis=1))
        p = _order_for("central", self.order)
        fd = _ladder(ev, U[rows], n, "central", p, self._ladder_start(ev, U[rows], n, p), self.step is not None)
        value, error, step = lines.value.copy(), lines.error.copy(), lines.step.copy()
        kinds = list(lines.kinds)
        better = fd.error < error[rows]
        value[rows] = np.where(better, fd.value, value[rows])
        error[rows] = np.where(better, fd.error, error[rows])
        step[rows] = np.where(better, fd.step, step[rows])
        for i, b in enumerate(rows):
            if np.any(better[i]):
                kinds[b] = "richardson" if fd.kinds[i] == "central" else f"richardson-{fd.kinds[i]}"
        note = ("the complex contour found no radius free of singularities for "
                f"{len(rows)} of {U.shape[0]} direction(s); finite differences were used where better")
        merged = _Lines(value, error, step, kinds, [])
        return merged, _method_name(kinds, None), _join(note, fd.notes)

    def _t_step(self, ev: _Evaluator, U: np.ndarray, absolute: float) -> np.ndarray:
        """An absolute step along each direction, in units of t."""
        size = np.max(np.abs(U), axis=1)
        return absolute / np.where(size > 0, size, 1.0)

    def _ladder_start(self, ev: _Evaluator, U: np.ndarray, n: int, p: int) -> np.ndarray:
        if self.step is not None:
            return self._t_step(ev, U, float(self.step))
        # The sequence should pass through the step that is best for its highest
        # order, eps**(1/(n + p + 2 * extrapolations)); start a few halvings above it.
        best = ev.eps ** (1.0 / (n + p + 2 * 3))
        return np.full(U.shape[0], min(0.5, 8.0 * best))

    def _plain_step(self, ev: _Evaluator, U: np.ndarray, n: int, kind: str, p: int) -> np.ndarray:
        if self.step is not None:
            return self._t_step(ev, U, float(self.step))
        # round-off eps/h**n against truncation h**p: the best step is eps**(1/(n+p))
        if ev.out_shape is None:
            ev.f0()
        return np.full(U.shape[0], ev.eps ** (1.0 / (n + p)))

    def _complex(self, ev: _Evaluator, U: np.ndarray, n: int, estimate: bool) -> _Lines:
        k = U.shape[0]
        # tiny relative to |x| (next to a singularity at 0 the scale of f is |x|), far from underflow
        xs = np.maximum(np.abs(ev.x0), np.finfo(ev.dtype).tiny ** _CS_FLOOR_SCALE)
        usz = np.abs(U)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(usz > 0, xs[None, :] / np.where(usz > 0, usz, 1.0), np.inf).min(axis=1)
        rel = np.where(np.isfinite(rel), rel, 1.0)
        eps = float(np.finfo(ev.dtype).eps)
        if self.step is not None and n == 1:
            h = self._t_step(ev, U, float(self.step))
        else:
            h = eps * eps * rel
        if n == 1:
            return _complex_first(ev, U, h, estimate)
        # n >= 2: first a complex step along each direction (it checks analyticity and
        # measures the distance to domain edges), then the contour over shrinking radii
        Z = ev.x0[None, :].astype(np.complex128) + 1j * h[:, None] * U
        probe, edges = ev.complex(Z.astype(ev.cdtype))
        slope = probe.imag / h[:, None]
        edge_t = edges * h
        if self.step is not None:
            r0 = self._t_step(ev, U, float(self.step))
        else:
            r0 = np.full(k, 0.5)
        r0 = np.minimum(r0, _EDGE_SAFETY * edge_t)
        return _ladder(ev, U, n, "contour", 0, r0, self.step is not None, slope)

    # ------------------------------------------------------------------------
    # Results
    # ------------------------------------------------------------------------
    def _directional(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
                     n: int, estimate: bool) -> tuple[_Evaluator, np.ndarray, _Lines, str, str | None]:
        """Derivatives of order n along each coordinate direction (scaled)."""
        ev = _Evaluator(fun, primals, argnums, self.vectorize)
        s = self._scales(ev)
        U = np.diag(s) if ev.N else np.zeros((0, 0))
        if ev.N == 0:
            ev.f0()
            empty = np.zeros((0, ev.M))
            return ev, s, _Lines(empty, empty, empty, [], []), self.method, None
        lines, method, reason = self._lines(ev, U, n, estimate)
        return ev, s, lines, method, reason

    def _jacobian_parts(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
                        estimate: bool) -> tuple[Any, list[np.ndarray], list[np.ndarray], list[np.ndarray],
                                                 str, str | None, int]:
        ev, s, lines, method, reason = self._directional(fun, primals, argnums, 1, estimate)
        out = self._out(ev)
        oshape = ev.out_shape or ()
        dt = ev.result_dtype
        # lines: (N, M) -> jacobian (M, N) / s
        J = (lines.value / s[:, None]).T
        E = (lines.error / s[:, None]).T
        bad = ~np.isfinite(ev.f0())  # outside the domain at x itself: no derivative
        if bad.any():
            J = np.where(bad[:, None], np.nan, J)
            E = np.where(bad[:, None], np.nan, E)
        H = (lines.step * s[:, None]).T
        vals, errs, steps = [], [], []
        start = 0
        for shape, size in zip(ev.shapes, ev.sizes):
            sl = slice(start, start + size)
            start += size
            vals.append(_shaped(J[:, sl], oshape + shape, dt))
            errs.append(_shaped(E[:, sl], oshape + shape, dt))
            steps.append(_shaped(H[:, sl], oshape + shape, np.dtype(np.float64)))
        return out, vals, errs, steps, method, reason, ev.nfev

    def _out(self, ev: _Evaluator) -> Any:
        f0 = ev.f0()
        assert ev.out_shape is not None and ev.out_dtype is not None
        arr = f0.astype(ev.out_dtype).reshape(ev.out_shape)
        return float(arr) if arr.shape == () and arr.dtype == np.float64 else (arr[()] if arr.shape == () else arr)

    def _hessian_parts(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
                       estimate: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, _Evaluator, str,
                                                str | None]:
        """The full Hessian over the flattened arguments: (M, N, N) values, errors, steps."""
        ev = _Evaluator(fun, primals, argnums, self.vectorize)
        s = self._scales(ev)
        N = ev.N
        pairs = [(i, j) for i in range(N) for j in range(i + 1, N)]
        U = np.zeros((N + len(pairs), N))
        U[np.arange(N), np.arange(N)] = s
        for r, (i, j) in enumerate(pairs):
            U[N + r, i] = s[i]
            U[N + r, j] = s[j]
        if N == 0:
            ev.f0()
            z = np.zeros((ev.M, 0, 0))
            return z, z, z, ev, self.method, None
        lines, method, reason = self._lines(ev, U, 2, estimate)
        M = lines.value.shape[1]
        Hv = np.zeros((M, N, N))
        He = np.zeros((M, N, N))
        Hs = np.zeros((M, N, N))
        d, de, ds = lines.value[:N], lines.error[:N], lines.step[:N]
        Hv[:, np.arange(N), np.arange(N)] = (d / (s * s)[:, None]).T
        He[:, np.arange(N), np.arange(N)] = (de / (s * s)[:, None]).T
        Hs[:, np.arange(N), np.arange(N)] = (ds * s[:, None]).T
        for r, (i, j) in enumerate(pairs):
            # D_{u_i + u_j} = s_i^2 H_ii + 2 s_i s_j H_ij + s_j^2 H_jj
            v = (lines.value[N + r] - d[i] - d[j]) / (2 * s[i] * s[j])
            e = (lines.error[N + r] + de[i] + de[j]) / (2 * s[i] * s[j])
            st = np.maximum(lines.step[N + r] * max(s[i], s[j]), np.maximum(ds[i] * s[i], ds[j] * s[j]))
            Hv[:, i, j] = Hv[:, j, i] = v
            He[:, i, j] = He[:, j, i] = e
            Hs[:, i, j] = Hs[:, j, i] = st
        return Hv, He, Hs, ev, method, reason

    # -- public result API ----------------------------------------------------------
    def derivative_result(self, f: Any, x: Any, order: int = 1) -> NumericResult:
        """The ``order``-th derivative of a scalar function of one scalar, with its error.

        Complex-analytic functions get the complex step (order 1) or the
        complex contour with Richardson extrapolation (higher orders); others
        Richardson-extrapolated finite differences of the proper order (not
        nested first differences).

        Args:
            f: a callable, :class:`~diffkit.Function` or expression string.
            x: the point (a scalar).
            order: the derivative order, >= 0.

        Example:
            >>> import numpy as np, diffkit as dk
            >>> r = dk.Numeric().derivative_result(np.log, 2.0, order=2)
            >>> bool(abs(r.value + 0.25) <= r.error <= 1e-10), r.method
            (True, 'complex')
        """
        fn, primals, _, _ = _user_call(f, (x,), 0, "derivative")
        if np.shape(primals[0]) != ():
            raise ShapeError(f"derivative: the argument must be a scalar, got shape {np.shape(primals[0])}")
        return self._derivative_result(fn, primals[0], int(order), True)

    def _derivative_result(self, fun: Callable[..., Any], x: Any, order: int, estimate: bool) -> NumericResult:
        if int(order) != order or order < 0:
            raise ValueError(f"derivative: order must be a non-negative integer, got {order!r}")
        ev = _Evaluator(fun, [x], [0], self.vectorize)
        if order == 0:
            out = self._out(ev)
            return NumericResult(out, ev.result_dtype.type(0), "exact", 0.0, ev.nfev)
        s = self._scales(ev)
        lines, method, reason = self._lines(ev, s[:, None] * np.eye(1), order, estimate)
        dt = ev.result_dtype
        if ev.out_shape not in ((), None):
            raise ShapeError(f"derivative: the function must return a scalar, got shape {ev.out_shape}; "
                             "use dk.jacobian for array outputs")
        val = dt.type(lines.value[0, 0] / s[0] ** order)
        err = dt.type(lines.error[0, 0] / s[0] ** order)
        # Outside the domain at x itself there is no derivative, but a complex step through
        # log(-1) is finite: the full result (what a cross-check reads) pays one evaluation of
        # f(x) to say NaN rather than a confident wrong number; the plain operator does not.
        if (estimate or ev._f0 is not None) and not np.all(np.isfinite(ev.f0())):
            val, err = dt.type(np.nan), dt.type(np.nan)
        return NumericResult(val, err, method, float(lines.step[0, 0] * s[0]), ev.nfev, reason)

    def gradient_result(self, f: Any, primals: Sequence[Any], argnums: int | Sequence[int] = 0) -> NumericResult:
        """The gradient of a scalar function, with error estimates.

        Args:
            f: a callable, :class:`~diffkit.Function` or expression string.
            primals: the arguments.
            argnums: which to differentiate; a tuple gives tuples in the result.

        Example:
            >>> import numpy as np, diffkit as dk
            >>> r = dk.Numeric().gradient_result(lambda x: np.sum(x**3), (np.array([1.0, 2.0]),))
            >>> r.value, r.method, bool(np.all(r.error < 1e-13))
            (array([ 3., 12.]), 'complex', True)
        """
        fn, ps, nums, single = _user_call(f, primals, argnums, "grad")
        out, vals, errs, steps, method, reason, nfev = self._jacobian_parts(fn, ps, nums, True)
        _check_scalar(out, getattr(fn, "__name__", "f"), self.name)
        return _pack_result(vals, errs, steps, method, nfev, reason, single)

    def jacobian_result(self, f: Any, primals: Sequence[Any], argnums: int | Sequence[int] = 0) -> NumericResult:
        """The Jacobian (shape ``out.shape + arg.shape``), with error estimates.

        Example:
            >>> import numpy as np, diffkit as dk
            >>> r = dk.Numeric(method="central").jacobian_result(np.sin, (np.array([0.0, 1.0]),))
            >>> np.round(r.value, 8), r.method, r.nfev
            (array([[1.        , 0.        ],
                   [0.        , 0.54030231]]), 'central', 11)
        """
        fn, ps, nums, single = _user_call(f, primals, argnums, "jacobian")
        _, vals, errs, steps, method, reason, nfev = self._jacobian_parts(fn, ps, nums, True)
        return _pack_result(vals, errs, steps, method, nfev, reason, single)

    def hessian_result(self, f: Any, primals: Sequence[Any], argnums: int | Sequence[int] = 0) -> NumericResult:
        """The Hessian (shape ``out.shape + arg.shape + arg.shape``), with error estimates.

        Second derivatives along each coordinate and along each pair of
        coordinates (``u_i + u_j``) give every entry by polarization.

        Example:
            >>> import numpy as np, diffkit as dk
            >>> r = dk.Numeric().hessian_result(lambda x: x[0]**2 * x[1], (np.array([1.0, 3.0]),))
            >>> np.round(r.value, 10) + 0.0, bool(np.all(r.error < 1e-9))
            (array([[6., 2.],
                   [2., 0.]]), True)
        """
        fn, ps, nums, single = _user_call(f, primals, argnums, "hessian")
        rows, errs, steps, method, reason, nfev = self._hessian_blocks(fn, ps, nums, True)
        if single:
            return NumericResult(rows[0][0], errs[0][0], method, steps[0][0], nfev, reason)
        return NumericResult(rows, errs, method, steps, nfev, reason)

    def jvp_result(self, f: Any, primals: Sequence[Any], tangents: Sequence[Any]) -> NumericResult:
        """The Jacobian-vector product ``J @ tangents``: one directional derivative.

        Example:
            >>> import numpy as np, diffkit as dk
            >>> r = dk.Numeric().jvp_result(lambda x, y: x * np.exp(y), (2.0, 0.0), (1.0, 1.0))
            >>> round(float(r.value), 12), r.method, r.nfev   # f(x), complex step, its round-off
            (3.0, 'complex', 3)
        """
        fn, ps, nums, _ = _user_call(f, primals, tuple(range(len(primals))), "jvp")
        ts = [np.asarray(t, dtype=np.float64) for t in tangents]
        _, tout, err, step, method, reason, nfev = self._jvp_core(fn, ps, nums, ts, 0, True)
        return NumericResult(tout, err, method, step, nfev, reason)

    # -- operator methods (what dk.grad and friends call) --------------------------------
    def value_and_grad(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
                       has_aux: bool = False, name: str = "f") -> tuple[Any, tuple[Any, ...], Any]:
        f_noaux, _ = split_aux(fun, has_aux)
        out, vals, _, _, _, _, _ = self._jacobian_parts(f_noaux, primals, argnums, False)
        _check_scalar(out, name, self.name)
        # the auxiliary output at x itself, from a plain evaluation (not a perturbed point)
        return out, tuple(vals), (fun(*primals)[1] if has_aux else None)

    def jacobian(self, fun: Callable[..., Any], primals: Sequence[Any],
                 argnums: Sequence[int]) -> tuple[Any, tuple[Any, ...]]:
        out, vals, _, _, _, _, _ = self._jacobian_parts(fun, primals, argnums, False)
        return out, tuple(vals)

    def hessian(self, fun: Callable[..., Any], primals: Sequence[Any],
                argnums: Sequence[int]) -> tuple[tuple[Any, ...], ...]:
        rows, _, _, _, _, _ = self._hessian_blocks(fun, primals, argnums, False)
        return tuple(rows)

    def derivative(self, fun: Callable[..., Any], x: Any, order: int) -> Any:
        return self._derivative_result(fun, x, order, False).value

    def jvp(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
            tangents: Sequence[Any], nb: int = 0) -> tuple[Any, Any]:
        out, tout, _, _, _, _, _ = self._jvp_core(fun, primals, argnums, tangents, nb, False)
        return out, tout

    def vjp(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
            has_aux: bool = False) -> tuple[Any, Callable[..., tuple[Any, ...]], Any]:
        # No transpose of a difference quotient: the Jacobian (built on the first
        # call of vjp_fn, once) contracted with each cotangent.
        f, aux_box = split_aux(fun, has_aux)
        ev = _Evaluator(f, primals, argnums, self.vectorize)
        out = self._out(ev)
        ond = len(ev.out_shape or ())
        jacs: list[Any] = []

        def vjp_fn(ct: Any, nb: int = 0) -> tuple[Any, ...]:
            if not jacs:
                jacs.extend(self._jacobian_parts(f, primals, argnums, False)[1])
            axes = (list(range(nb, nb + ond)), list(range(ond)))
            return tuple(np.tensordot(ct, jac, axes=axes) for jac in jacs)

        return out, vjp_fn, (fun(*primals)[1] if has_aux else None)

    # -- helpers --------------------------------------------------------------------
    def _hessian_blocks(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
                        estimate: bool) -> tuple[Any, Any, Any, str, str | None, int]:
        Hv, He, Hs, ev, method, reason = self._hessian_parts(fun, primals, argnums, estimate)
        oshape = ev.out_shape or ()
        dt = ev.result_dtype
        offs = np.cumsum([0] + ev.sizes)
        rows, erows, srows = [], [], []
        for a, sa in enumerate(ev.shapes):
            r, er, sr = [], [], []
            for b, sb in enumerate(ev.shapes):
                blk = (slice(None), slice(offs[a], offs[a + 1]), slice(offs[b], offs[b + 1]))
                shape = oshape + sa + sb
                r.append(_shaped(Hv[blk], shape, dt))
                er.append(_shaped(He[blk], shape, dt))
                sr.append(_shaped(Hs[blk], shape, np.dtype(np.float64)))
            rows.append(tuple(r))
            erows.append(tuple(er))
            srows.append(tuple(sr))
        return tuple(rows), tuple(erows), tuple(srows), method, reason, ev.nfev

    def _jvp_core(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
                  tangents: Sequence[Any], nb: int, estimate: bool
                  ) -> tuple[Any, Any, Any, Any, str, str | None, int]:
        ev = _Evaluator(fun, primals, argnums, self.vectorize)
        out = self._out(ev)
        batch = tuple(np.shape(tangents[0])[:nb]) if nb else ()
        nbatch = int(np.prod(batch, dtype=np.int64))
        V = np.concatenate([np.reshape(np.asarray(t, dtype=np.float64), (nbatch, -1)) for t in tangents],
                           axis=1) if tangents else np.zeros((nbatch, 0))
        s = self._scales(ev)
        size = np.max(np.abs(V) / s[None, :], axis=1, initial=0.0) if ev.N else np.zeros(nbatch)
        nonzero = size > 0
        # scale each tangent so that its largest relative component is 1: t is a relative step
        c = np.where(nonzero, 1.0 / np.where(nonzero, size, 1.0), 0.0)
        U = V[nonzero] * c[nonzero, None]
        M = ev.M
        val = np.zeros((nbatch, M))
        err = np.zeros((nbatch, M))
        step = np.zeros((nbatch, M))
        method, reason = self.method if self.method != "auto" else "complex", None
        if U.shape[0]:
            lines, method, reason = self._lines(ev, U, 1, estimate)
            # along U = c v the derivative is c times the one along v
            val[nonzero] = lines.value / c[nonzero, None]
            err[nonzero] = lines.error / c[nonzero, None]
            # t moves the largest component of the tangent by t * c * max|v|
            step[nonzero] = lines.step * (c[nonzero] * np.max(np.abs(V[nonzero]), axis=1))[:, None]
        oshape = ev.out_shape or ()
        dt = ev.result_dtype
        tout = _shaped(val, batch + oshape, dt)
        return out, tout, _shaped(err, batch + oshape, dt), _shaped(step, batch + oshape, np.dtype(np.float64)), \
            method, reason, ev.nfev


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def _shaped(a: np.ndarray, shape: tuple[int, ...], dt: np.dtype[Any]) -> Any:
    arr = np.asarray(a).reshape(shape).astype(dt)
    return arr[()] if arr.shape == () else arr


def _join(reason: str | None, notes: list[str]) -> str | None:
    parts = ([reason] if reason else []) + notes
    return "; ".join(parts) if parts else None


def _method_name(kinds: list[str], family: str | None) -> str:
    names = [kd if family is None else (family if kd == "central" else f"{family}-{kd}") for kd in kinds]
    if family is not None:
        names = ["complex" if kd == "complex" else nm for kd, nm in zip(kinds, names)]
    distinct = sorted(set(names))
    if len(distinct) == 1:
        return distinct[0]
    if not distinct:
        return family or "central"
    counts = ", ".join(f"{nm}: {names.count(nm)}" for nm in distinct)
    return f"mixed ({counts})"


def _pack_result(vals: list[Any], errs: list[Any], steps: list[Any], method: str, nfev: int,
                 reason: str | None, single: bool) -> NumericResult:
    if single:
        return NumericResult(vals[0], errs[0], method, steps[0], nfev, reason)
    return NumericResult(tuple(vals), tuple(errs), method, tuple(steps), nfev, reason)


def _user_call(f: Any, primals: Sequence[Any], argnums: int | Sequence[int], op: str
               ) -> tuple[Callable[..., Any], list[Any], tuple[int, ...], bool]:
    """What the operators do before calling a backend: function, promoted primals, argnums."""
    from ..core.function import as_function
    from ..operators import _argnums, _prepare

    F = as_function(f)
    if not isinstance(primals, (tuple, list)):
        raise TypeError(f"{op}: primals must be a tuple of arguments, got {type(primals).__name__}")
    nums, single = _argnums(argnums, len(primals), F, op)
    return F.fn, _prepare(primals, nums, F, op), nums, single


__all__ = ["Numeric", "NumericResult", "METHODS", "complex_values"]
