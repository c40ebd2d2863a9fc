"""The numeric backend, :class:`Numeric`, and its results, :class:`NumericResult`.

A frozen configuration (method, accuracy order, step, vectorization) that
reduces every operator to derivatives along lines (:mod:`.lines`,
:mod:`.ladder`) and packs them, with their error estimates, steps and
evaluation counts, into a :class:`NumericResult` shaped as the operator
returns its value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ...core.function import as_function
from ...errors import InvalidArgument, InvalidType, ShapeError
from ..arguments import _argnums, _prepare
from ..base import ADBackend, _check_scalar, split_aux
from .evaluator import _Evaluator
from .ladder import _ladder
from .lines import _EDGE_SAFETY, _complex_first, _Lines, _plain
from .probe import _Refused
from .stencils import _order_for

METHODS = ("auto", "complex", "richardson", "central", "forward", "backward")

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
        bounded: whether ``error`` bounds the error, shaped like ``value`` (a bool for a
            scalar). ``False`` where the method cannot bound it and ``error`` is only a
            conservative value: ``x`` on a kink where the derivatives from either side
            differ (no derivative exists; ``error`` is half their difference, so it covers
            either side), a Richardson sequence that never reached its asymptotic regime,
            a plain stencil across a kink, a point outside the domain (NaN). ``reason``
            says which.

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
    bounded: Any = True

    @property
    def all_bounded(self) -> bool:
        """Every element's ``error`` is a bound (``bounded`` true throughout)."""
        parts = self.bounded if isinstance(self.bounded, tuple) else (self.bounded,)
        return all(bool(np.all(b)) for b in parts)

    def __repr__(self) -> str:
        extra = "" if self.all_bounded else f", bounded={self.bounded!r}"
        return (f"NumericResult(value={self.value!r}, error={self.error!r}, method={self.method!r}, "
                f"nfev={self.nfev}" + (f", reason={self.reason!r}" if self.reason else "") + extra + ")")


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
            raise InvalidArgument(f"Numeric(method={self.method!r}): choose one of {', '.join(METHODS)}")
        if self.order is not None and int(self.order) < 1:
            raise InvalidArgument(f"Numeric(order={self.order!r}): the accuracy order must be >= 1")
        if self.step is not None and not (float(self.step) > 0 and math.isfinite(float(self.step))):
            raise InvalidArgument(f"Numeric(step={self.step!r}): the step must be a positive number")

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
                        return self._rescue(ev, U, n, lines, estimate)
                    return lines, "complex", _join(None, lines.notes)
                except _Refused as r:
                    refused = r.reason
                    ev.facts["refused"] = refused
            reason = f"complex step refused: {refused}"
            method = "richardson"
        p = _order_for("central", self.order)
        if method == "richardson":
            h0 = self._ladder_start(ev, U, n, p)
            lines = _ladder(ev, U, n, "central", p, h0, self.step is not None, estimate=estimate)
            return lines, _method_name(lines.kinds, "richardson"), _join(reason, lines.notes)
        p = _order_for(method, self.order)
        h = self._plain_step(ev, U, n, method, p)
        lines = _plain(ev, U, n, method, p, h, self.step is not None, estimate)
        return lines, _method_name(lines.kinds, None), _join(reason, lines.notes)

    def _rescue(self, ev: _Evaluator, U: np.ndarray, n: int, lines: _Lines,
                estimate: bool = True) -> tuple[_Lines, str, str | None]:
        """Richardson differences for the directions whose complex contour was never trusted.

        A contour needs the function analytic in a disk; poles close to the real
        axis (a steep ``tanh``) can leave no radius that works, while the real line
        is smooth. The better of the two estimates wins, per element.
        """
        rows = np.flatnonzero(np.any(lines.lost, axis=1))
        p = _order_for("central", self.order)
        fd = _ladder(ev, U[rows], n, "central", p, self._ladder_start(ev, U[rows], n, p), self.step is not None,
                     estimate=estimate)
        value, error, step = lines.value.copy(), lines.error.copy(), lines.step.copy()
        unbounded = _mask(lines.unbounded, value.shape).copy()
        dirs = (lines.dirs if lines.dirs is not None else U).astype(np.float64).copy()
        kinds = list(lines.kinds)
        better = fd.error < error[rows]
        fd_dirs = fd.dirs if fd.dirs is not None else U[rows]
        # a row mixing both keeps the finite differences' direction: the contour's elements
        # there pay for the difference of the two directions (both within ~1e-11 of U)
        mixed = np.any(better, axis=1)
        shift = np.max(np.abs(fd_dirs - dirs[rows]), axis=1) / np.maximum(np.max(np.abs(U[rows]), axis=1), 1e-300)
        error[rows] = np.where(mixed[:, None] & ~better, error[rows] + 4.0 * shift[:, None] * np.abs(value[rows]),
                               error[rows])
        dirs[rows] = np.where(mixed[:, None], fd_dirs, dirs[rows])
        value[rows] = np.where(better, fd.value, value[rows])
        error[rows] = np.where(better, fd.error, error[rows])
        step[rows] = np.where(better, fd.step, step[rows])
        unbounded[rows] = np.where(better, _mask(fd.unbounded, fd.value.shape), unbounded[rows])
        for i, b in enumerate(rows):
            if np.any(better[i]):
                kinds[b] = "richardson" if fd.kinds[i] == "central" else f"richardson-{fd.kinds[i]}"
        note = ("the complex contour found no radius free of singularities for "
                f"{len(rows)} of {U.shape[0]} direction(s); finite differences were used where better")
        merged = _Lines(value, error, step, kinds, [], unbounded=unbounded, dirs=dirs)
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
        return _ladder(ev, U, n, "contour", 0, r0, self.step is not None, slope, estimate)

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
                                                 str, str | None, int, list[Any]]:
        ev, s, lines, method, reason = self._directional(fun, primals, argnums, 1, estimate)
        out = self._out(ev)
        oshape = ev.out_shape or ()
        dt = ev.result_dtype
        # lines: (N, M) -> jacobian (M, N) / s
        J = (lines.value / s[:, None]).T
        E = (lines.error / s[:, None]).T
        B = _bounded(lines, E)
        bad = ~np.isfinite(ev.f0())  # outside the domain at x itself: no derivative
        if bad.any():
            J = np.where(bad[:, None], np.nan, J)
            E = np.where(bad[:, None], np.nan, E)
            B = B & ~bad[:, None]
        H = (lines.step * s[:, None]).T
        vals, errs, steps, bounds = [], [], [], []
        start = 0
        for shape, size in zip(ev.shapes, ev.sizes):
            sl = slice(start, start + size)
            start += size
            vals.append(_shaped(J[:, sl], oshape + shape, dt))
            errs.append(_shaped(E[:, sl], oshape + shape, dt))
            steps.append(_shaped(H[:, sl], oshape + shape, np.dtype(np.float64)))
            bounds.append(_flags(B[:, sl], oshape + shape))
        return out, vals, errs, steps, method, reason, ev.nfev, bounds

    def _out(self, ev: _Evaluator) -> Any:
        f0 = ev.f0()
        assert ev.out_shape is not None and ev.out_dtype is not None
        arr = f0.astype(ev.out_dtype).reshape(ev.out_shape)
        return float(arr) if arr.shape == () and arr.dtype == np.float64 else (arr[()] if arr.shape == () else arr)

    def _hessian_parts(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
                       estimate: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, _Evaluator, str,
                                                str | None, np.ndarray]:
        """The full Hessian over the flattened arguments: (M, N, N) values, errors, steps, bounded."""
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
            return z, z, z, ev, self.method, None, np.ones((ev.M, 0, 0), dtype=bool)
        lines, method, reason = self._lines(ev, U, 2, estimate)
        M = lines.value.shape[1]
        Hv = np.zeros((M, N, N))
        He = np.zeros((M, N, N))
        Hs = np.zeros((M, N, N))
        ub = _mask(lines.unbounded, lines.value.shape)
        Hu = np.zeros((M, N, N), dtype=bool)
        d, de, ds = lines.value[:N], lines.error[:N], lines.step[:N]
        Hv[:, np.arange(N), np.arange(N)] = (d / (s * s)[:, None]).T
        He[:, np.arange(N), np.arange(N)] = (de / (s * s)[:, None]).T
        Hs[:, np.arange(N), np.arange(N)] = (ds * s[:, None]).T
        Hu[:, np.arange(N), np.arange(N)] = ub[:N].T
        # The directions actually differentiated: stencil points lie on the floating-point grid,
        # so a pair direction is (a_i, a_j), within ~1e-11 of (s_i, s_j) but not equal; the
        # polarization below is exact for it. (With (s_i, s_j) assumed, the difference times
        # H_jj was the error: 4.4e-11 in the Hessian of softplus(x) y**2 at (1, 0).)
        dirs = lines.dirs if lines.dirs is not None else U
        b = dirs[np.arange(N), np.arange(N)]      # the diagonal directions: (b_i) e_i, b_i ~ s_i
        for r, (i, j) in enumerate(pairs):
            # D_{a} = a_i^2 H_ii + 2 a_i a_j H_ij + a_j^2 H_jj, and d_i = b_i^2 H_ii
            ai, aj = float(dirs[N + r, i]), float(dirs[N + r, j])
            ci, cj = (ai / b[i]) ** 2, (aj / b[j]) ** 2
            v = (lines.value[N + r] - ci * d[i] - cj * d[j]) / (2 * ai * aj)
            e = (lines.error[N + r] + ci * de[i] + cj * de[j]) / abs(2 * ai * aj)
            st = np.maximum(lines.step[N + r] * max(s[i], s[j]), np.maximum(ds[i] * s[i], ds[j] * s[j]))
            Hv[:, i, j] = Hv[:, j, i] = v
            He[:, i, j] = He[:, j, i] = e
            Hs[:, i, j] = Hs[:, j, i] = st
            Hu[:, i, j] = Hu[:, j, i] = ub[N + r] | ub[i] | ub[j]
        return Hv, He, Hs, ev, method, reason, ~Hu & ~np.isnan(He)

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
            raise InvalidArgument(f"derivative: order must be a non-negative integer, got {order!r}")
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
        bounded = bool(_bounded(lines, lines.error)[0, 0])
        # Outside the domain at x itself there is no derivative, but a complex step through
        # log(-1) is finite: the full result (what a cross-check reads) pays one evaluation of
        # f(x) to say NaN rather than a confident wrong number; the plain operator does not.
        if (estimate or ev._f0 is not None) and not np.all(np.isfinite(ev.f0())):
            val, err, bounded = dt.type(np.nan), dt.type(np.nan), False
        return NumericResult(val, err, method, float(lines.step[0, 0] * s[0]), ev.nfev, reason, bounded)

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
        out, vals, errs, steps, method, reason, nfev, bounds = self._jacobian_parts(fn, ps, nums, True)
        _check_scalar(out, getattr(fn, "__name__", "f"), self.name)
        return _pack_result(vals, errs, steps, method, nfev, reason, single, bounds)

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
        _, vals, errs, steps, method, reason, nfev, bounds = self._jacobian_parts(fn, ps, nums, True)
        return _pack_result(vals, errs, steps, method, nfev, reason, single, bounds)

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
        rows, errs, steps, method, reason, nfev, bounds = self._hessian_blocks(fn, ps, nums, True)
        if single:
            return NumericResult(rows[0][0], errs[0][0], method, steps[0][0], nfev, reason, bounds[0][0])
        return NumericResult(rows, errs, method, steps, nfev, reason, bounds)

    def jvp_result(self, f: Any, primals: Sequence[Any], tangents: Sequence[Any]) -> NumericResult:
        """The Jacobian-vector product ``J @ tangents``: one directional derivative.

        Example:
            >>> import numpy as np, diffkit as dk
            >>> r = dk.Numeric().jvp_result(lambda x, y: x * np.exp(y), (2.0, 0.0), (1.0, 1.0))
            >>> round(float(r.value), 12), r.method, r.nfev   # f(x), complex step, 2 for its round-off
            (3.0, 'complex', 4)
        """
        fn, ps, nums, _ = _user_call(f, primals, tuple(range(len(primals))), "jvp")
        ts = [np.asarray(t, dtype=np.float64) for t in tangents]
        _, tout, err, step, method, reason, nfev, bounded = self._jvp_core(fn, ps, nums, ts, 0, True)
        return NumericResult(tout, err, method, step, nfev, reason, bounded)

    # -- operator methods (what dk.grad and friends call) --------------------------------
    def value_and_grad(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
                       has_aux: bool = False, name: str = "f") -> tuple[Any, tuple[Any, ...], Any]:
        f_noaux, _ = split_aux(fun, has_aux)
        out, vals, *_ = self._jacobian_parts(f_noaux, primals, argnums, False)
        _check_scalar(out, name, self.name)
        # the auxiliary output at x itself, from a plain evaluation (not a perturbed point)
        return out, tuple(vals), (fun(*primals)[1] if has_aux else None)

    def jacobian(self, fun: Callable[..., Any], primals: Sequence[Any],
                 argnums: Sequence[int]) -> tuple[Any, tuple[Any, ...]]:
        out, vals, *_ = self._jacobian_parts(fun, primals, argnums, False)
        return out, tuple(vals)

    def hessian(self, fun: Callable[..., Any], primals: Sequence[Any],
                argnums: Sequence[int]) -> tuple[tuple[Any, ...], ...]:
        rows, *_ = self._hessian_blocks(fun, primals, argnums, False)
        return tuple(rows)

    def derivative(self, fun: Callable[..., Any], x: Any, order: int) -> Any:
        return self._derivative_result(fun, x, order, False).value

    def jvp(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
            tangents: Sequence[Any], nb: int = 0) -> tuple[Any, Any]:
        out, tout, *_ = self._jvp_core(fun, primals, argnums, tangents, nb, False)
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
                        estimate: bool) -> tuple[Any, Any, Any, str, str | None, int, Any]:
        Hv, He, Hs, ev, method, reason, Hb = self._hessian_parts(fun, primals, argnums, estimate)
        oshape = ev.out_shape or ()
        dt = ev.result_dtype
        offs = np.cumsum([0] + ev.sizes)
        rows, erows, srows, brows = [], [], [], []
        for a, sa in enumerate(ev.shapes):
            r, er, sr, br = [], [], [], []
            for b, sb in enumerate(ev.shapes):
                blk = (slice(None), slice(offs[a], offs[a + 1]), slice(offs[b], offs[b + 1]))
                shape = oshape + sa + sb
                r.append(_shaped(Hv[blk], shape, dt))
                er.append(_shaped(He[blk], shape, dt))
                sr.append(_shaped(Hs[blk], shape, np.dtype(np.float64)))
                br.append(_flags(Hb[blk], shape))
            rows.append(tuple(r))
            erows.append(tuple(er))
            srows.append(tuple(sr))
            brows.append(tuple(br))
        return tuple(rows), tuple(erows), tuple(srows), method, reason, ev.nfev, tuple(brows)

    def _jvp_core(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
                  tangents: Sequence[Any], nb: int, estimate: bool
                  ) -> tuple[Any, Any, Any, Any, str, str | None, int, Any]:
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
        bounded = np.ones((nbatch, M), dtype=bool)
        method, reason = self.method if self.method != "auto" else "complex", None
        if U.shape[0]:
            lines, method, reason = self._lines(ev, U, 1, estimate)
            value, error = _along_tangents(ev, U, lines)
            # along U = c v the derivative is c times the one along v
            val[nonzero] = value / c[nonzero, None]
            err[nonzero] = error / c[nonzero, None]
            bounded[nonzero] = _bounded(lines, error)
            # t moves the largest component of the tangent by t * c * max|v|
            step[nonzero] = lines.step * (c[nonzero] * np.max(np.abs(V[nonzero]), axis=1))[:, None]
        oshape = ev.out_shape or ()
        dt = ev.result_dtype
        tout = _shaped(val, batch + oshape, dt)
        return out, tout, _shaped(err, batch + oshape, dt), _shaped(step, batch + oshape, np.dtype(np.float64)), \
            method, reason, ev.nfev, _flags(bounded, batch + oshape)


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
                 reason: str | None, single: bool, bounds: list[Any]) -> NumericResult:
    if single:
        return NumericResult(vals[0], errs[0], method, steps[0], nfev, reason, bounds[0])
    return NumericResult(tuple(vals), tuple(errs), method, tuple(steps), nfev, reason, tuple(bounds))


def _mask(m: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    return np.zeros(shape, dtype=bool) if m is None else np.broadcast_to(m, shape)


def _bounded(lines: _Lines, error: np.ndarray) -> np.ndarray:
    """Where the estimate is a bound: not marked unbounded, and not NaN. ``error``'s shape
    decides the orientation: ``(k, M)`` as the lines or ``(M, k)`` transposed."""
    ub = _mask(lines.unbounded, lines.value.shape)
    if error.shape != ub.shape:
        ub = ub.T
    return ~ub & ~np.isnan(error)


def _flags(b: np.ndarray, shape: tuple[int, ...]) -> Any:
    arr = np.asarray(b, dtype=bool).reshape(shape)
    return bool(arr) if arr.shape == () else arr


def _along_tangents(ev: _Evaluator, U: np.ndarray, lines: _Lines) -> tuple[np.ndarray, np.ndarray]:
    """The derivatives along ``U`` from those along ``lines.dirs``.

    Finite-difference stencils along a tangent with several nonzero components
    move along ``lines.dirs``: each component of the displacement is rounded onto
    the floating-point grid on its own (a relative change of up to ~1e-11 for
    ``2**16`` levels of exact halving). ``D(U) = D(dirs) + f'(x) (U - dirs)``,
    and the small correction is a central difference along ``U - dirs`` (two
    evaluations, accurate to ~1e-8 of a term already ~1e-11 of the result).
    """
    value, error = lines.value, lines.error
    if lines.dirs is None:
        return value, error
    multi = np.count_nonzero(U, axis=1) > 1
    W = U - lines.dirs
    size = np.max(np.abs(W), axis=1)
    rows = np.flatnonzero(multi & (size > 0))
    if rows.size == 0:
        return value, error
    value, error = value.copy(), error.copy()
    scale = np.maximum(np.abs(ev.x0), 1.0)
    for b in rows:
        w_hat = W[b] / size[b]
        h = ev.eps ** (1.0 / 3.0) * float(np.max(scale[w_hat != 0], initial=1.0))
        X = np.stack([ev.x0 + h * w_hat, ev.x0 - h * w_hat]).astype(ev.dtype)
        fp, fm = ev.real(X)
        slope = (fp - fm) / (2.0 * h)
        fix = slope * size[b]
        ok = np.isfinite(fix)
        value[b] = np.where(ok, value[b] + fix, value[b])
        error[b] = error[b] + np.where(ok, 1e-3 * np.abs(fix), np.abs(size[b] * value[b]))
    return value, error


def _user_call(f: Any, primals: Sequence[Any], argnums: int | Sequence[int], op: str
               ) -> tuple[Callable[..., Any], list[Any], tuple[int, ...], bool]:
    """What the operators do before calling a backend: function, promoted primals, argnums."""
    F = as_function(f)
    if not isinstance(primals, (tuple, list)):
        raise InvalidType(f"{op}: primals must be a tuple of arguments, got {type(primals).__name__}")
    nums, single = _argnums(argnums, len(primals), F, op)
    return F.fn, _prepare(primals, nums, F, op), nums, single


__all__ = ["Numeric", "NumericResult", "METHODS"]
