"""Helpers for users' own tests: cross-checks and a ``check_grads`` in JAX's spirit.

Only NumPy and diffkit are imported here; the Hypothesis strategies live in
:mod:`diffkit.strategies` and the pytest fixtures and profiles in
:mod:`diffkit.pytest_plugin`.

* :func:`assert_backends_agree` -- every backend against the high-precision
  reference (the same function as ``dk.assert_backends_agree``).
* :func:`check_grads` -- a function's JVP and VJP on the forward and reverse
  backends against the numeric backend's directional derivatives, and against
  each other through the transposition identity ``<v, J u> == <J^T v, u>``,
  to any order. It is the test to write for a ``custom_jvp`` or ``custom_vjp``
  rule: the numeric backend runs the function itself, never the rule.

Example:
    >>> import numpy as np, diffkit as dk
    >>> from diffkit.testing import check_grads
    >>> @dk.custom_jvp
    ... def f(x):
    ...     return np.sin(x)
    >>> @f.defjvp
    ... def f_jvp(primals, tangents):
    ...     (x,), (t,) = primals, tangents
    ...     return f(x), np.cos(x) * t
    >>> check_grads(f, (0.5,), order=1)
    >>> @f.defjvp
    ... def wrong_jvp(primals, tangents):
    ...     (x,), (t,) = primals, tangents
    ...     return f(x), np.cos(x) * t * 1.001
    >>> try:
    ...     check_grads(f, (0.5,), order=1)
    ... except AssertionError as e:
    ...     print(str(e).split(" vs ")[0])
    check_grads: JVP (mode 'fwd', order 1, backend 'forward') of f: 0.24063076725766086
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from .core.function import as_function
from .core.observe import ObservingTrace, Observed
from .errors import BackendMismatch, InvalidArgument
from .harness.crosscheck import AD_RTOL_EPS, NUMERIC_SAFETY, assert_backends_agree

__all__ = ["absolute_derivative", "assert_backends_agree", "check_gradient", "check_grads"]

_MODES = ("fwd", "rev")
_AD = ("forward", "reverse")


def check_gradient(f: Any, grad_f: Callable[..., Any], points: Sequence[Any], *, op: str = "grad",
                   argnums: Any = 0, rtol: float | None = None, atol: float | None = None,
                   name: str = "candidate") -> list[Any]:
    """Check a derivative written elsewhere against diffkit's independent reference.

    ``grad_f`` is any callable taking ``f``'s arguments and returning what
    ``dk.grad`` (or the operator ``op``) would: a hand-derived gradient, an
    adjoint code, another framework's gradient exported to NumPy. At each point
    it is compared with the reference (SymPy's own derivatives in 50-digit
    mpmath, or mpmath differences), with the harness's tolerances and causes.

    Args:
        f: the function (callable, :class:`~diffkit.Function`, string, SymPy expression).
        grad_f: the derivative to check.
        points: argument tuples (a bare number or array is a one-argument point).
        op: ``grad``, ``jacobian``, ``hessian`` or ``derivative``.
        argnums: as in the operators.
        rtol: relative tolerance; default the harness's (256 eps of the dtype).
        atol: absolute tolerance; default the harness's.
        name: the candidate's name in messages.

    Returns:
        The cross-check reports, one per point.

    Raises:
        BackendMismatch: (an AssertionError) naming the point, the element, both
            values, the error and its cause, at the first point where it differs.

    Example:
        >>> import numpy as np
        >>> f = lambda x, y: np.sin(x) * y ** 2
        >>> good = lambda x, y: (np.cos(x) * y ** 2, 2 * np.sin(x) * y)
        >>> _ = check_gradient(f, good, [(0.5, 2.0), (1.0, -1.0)], argnums=(0, 1))
        >>> bad = lambda x, y: (np.cos(x) * y ** 2, np.sin(x) * y)       # d/dy misses the 2
        >>> try:
        ...     check_gradient(f, bad, [(0.5, 2.0)], argnums=(0, 1))
        ... except AssertionError as e:
        ...     print(str(e).splitlines()[1].split(":")[0].strip())
        grad of <lambda> at (0.5, 2)
    """
    from .harness.crosscheck import crosscheck

    if not callable(grad_f):
        raise InvalidArgument(f"check_gradient: grad_f must be callable, got {type(grad_f).__name__}")
    reports = []
    for point in points:
        args = tuple(point) if isinstance(point, (tuple, list)) else (point,)
        rep = crosscheck(f, args, op, argnums=argnums, backends=[], candidates={name: grad_f},
                         rtol=rtol, atol=atol, time_budget=0.0)
        row = rep.row(name)
        if not row.passed:
            shown = ", ".join(_fmt(a) for a in args)
            raise BackendMismatch(f"{name} differs from the reference ({rep.reference.kind}):\n"
                                  f"  {op} of {rep.function} at ({shown}): {row.message or row.verdict}")
        reports.append(rep)
    return reports


def check_grads(f: Any, args: Sequence[Any], order: int = 2, modes: Sequence[str] = _MODES,
                atol: float | None = None, rtol: float | None = None, eps: float | None = None,
                *, seed: int = 0) -> None:
    """Check ``f``'s derivatives up to ``order``, in JAX's spirit (``jax.test_util.check_grads``).

    For one pseudo-random tangent ``u`` (shaped like ``args``) and cotangent
    ``v`` (shaped like ``f``'s output):

    * mode ``"fwd"``: ``J u`` from ``dk.jvp`` on the forward and reverse
      backends equals the numeric backend's directional derivative (within
      ``atol + rtol * |J u|`` plus 10 times the numeric error estimate);
    * mode ``"rev"``: ``dk.vjp`` on both backends satisfies
      ``<v, J u> == <J^T v, u>`` against the numeric ``J u`` (same tolerance)
      and, to 256 eps, against each AD backend's own ``J u``.

    For ``order > 1`` the same checks run on the first-order maps
    ``x -> J(x) u`` and ``x -> <J(x)^T v, w>`` built with each AD backend:
    second derivatives by nesting (forward over forward, reverse over forward, ...).

    Args:
        f: a callable, :class:`~diffkit.Function` or expression string with
            array or scalar output; ``custom_jvp``/``custom_vjp`` functions too.
        args: the point.
        order: how many derivatives deep to check (1 or more).
        modes: ``"fwd"`` (JVPs), ``"rev"`` (VJPs), or both.
        atol: absolute tolerance of the comparison with the numeric backend;
            by default ``sqrt(eps)`` of the arguments' dtype (1.5e-8 in float64).
        rtol: relative tolerance of the same comparison; the same default.
        eps: the numeric backend's step (``dk.Numeric(step=eps)``); by default
            its own choice (complex step or Richardson extrapolation).
        seed: seed of the tangents and cotangents (the check is reproducible).

    Raises:
        BackendMismatch: an ``AssertionError`` naming the mode, the order, the
            backend, both values, their difference and the tolerance.

    Example:
        >>> import numpy as np
        >>> check_grads(lambda x, y: np.sin(x) * y**2, (0.3, np.array([1.0, 2.0])), order=2)
    """
    if order < 1 or int(order) != order:
        raise InvalidArgument(f"check_grads: order must be a positive integer, got {order!r}")
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    bad = [m for m in modes if m not in _MODES]
    if bad or not modes:
        raise InvalidArgument(f"check_grads: modes must be among {_MODES}, got {modes!r}")
    F = as_function(f)
    args = tuple(_canon(a) for a in args)
    rng = np.random.default_rng(seed)
    _check(F.fn, F.name, args, int(order), 1, modes, atol, rtol, eps, rng)


def _canon(a: Any) -> Any:
    """Python floats stay floats, float32 stays float32; integers become float64."""
    arr = np.asarray(a)
    dt = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
    if arr.ndim == 0:
        return float(arr) if dt == np.float64 else dt.type(arr)
    return arr.astype(dt, copy=False)


def _like(rng: np.random.Generator, a: Any) -> Any:
    """A pseudo-random value shaped and typed like ``a``."""
    shape = np.shape(a)
    dt = np.result_type(np.asarray(a).dtype, np.float32) if np.asarray(a).dtype.kind == "f" \
        else np.dtype(np.float64)
    r = rng.uniform(-1.0, 1.0, shape).astype(dt)
    return float(r) if shape == () and dt == np.float64 else (dt.type(r) if shape == () else r)


def _eps(args: Sequence[Any]) -> float:
    dts = [np.asarray(a).dtype for a in args if np.asarray(a).dtype.kind == "f"]
    return float(np.finfo(np.result_type(*dts) if dts else np.float64).eps)


def _vdot(a: Any, b: Any) -> float:
    return float(np.sum(np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64)))


def _fmt(v: Any) -> str:
    a = np.asarray(v, dtype=np.float64)
    return f"{float(a):.17g}" if a.ndim == 0 else np.array2string(a, precision=17, max_line_width=120)


def _fail(what: str, name: str, got: Any, ref: Any, ref_name: str, diff: float, tol: float) -> None:
    raise BackendMismatch(
        f"check_grads: {what} of {name}: {_fmt(got)} vs {ref_name} {_fmt(ref)}, "
        f"difference {diff:.3g} > tol {tol:.3g}\n  (a wrong custom_jvp/custom_vjp rule, or a bug in the "
        "backend named; the numeric backend differentiates the function itself)")


def _numeric_jvp(fun: Callable[..., Any], args: tuple[Any, ...], u: tuple[Any, ...],
                 eps: float | None) -> tuple[np.ndarray, np.ndarray]:
    from .backends.numeric import Numeric

    r = Numeric(step=eps).jvp_result(fun, args, u)
    return np.asarray(r.value, dtype=np.float64), np.abs(np.asarray(r.error, dtype=np.float64))


def _check(fun: Callable[..., Any], name: str, args: tuple[Any, ...], order: int, level: int,
           modes: tuple[str, ...], atol: float | None, rtol: float | None, eps: float | None,
           rng: np.random.Generator) -> None:
    from . import operators as dk

    u = tuple(_like(rng, a) for a in args)
    out = np.asarray(fun(*args))
    v = _like(rng, out)
    w = tuple(_like(rng, a) for a in args)
    e = _eps(args)
    # sqrt(eps): the default of JAX's numerical comparisons in spirit; the numeric backend is
    # usually far better (complex step: eps), and its own estimate widens the tolerance where not.
    a_tol = math.sqrt(e) if atol is None else float(atol)
    r_tol = math.sqrt(e) if rtol is None else float(rtol)
    num, num_err = _numeric_jvp(fun, args, u, eps)
    num_tol = a_tol + r_tol * np.abs(num) + NUMERIC_SAFETY * num_err

    ad_jvp: dict[str, np.ndarray] = {}
    if "fwd" in modes or "rev" in modes:
        for b in _AD:
            _, t = dk.jvp(fun, args, u, backend=b)
            ad_jvp[b] = np.asarray(t, dtype=np.float64)
    if "fwd" in modes:
        for b in _AD:
            t = ad_jvp[b]
            d = np.abs(t - num)
            if t.shape != num.shape or not np.all(d <= num_tol):
                k = int(np.argmax(np.where(d <= num_tol, -1.0, d))) if t.shape == num.shape else 0
                _fail(f"JVP (mode 'fwd', order {level}, backend '{b}')", name, t, num,
                      "the numeric directional derivative", float(np.ravel(d)[k]) if d.size else math.inf,
                      float(np.ravel(num_tol)[k]) if np.size(num_tol) else 0.0)
    if "rev" in modes:
        for b in _AD:
            _, vjp_fn = dk.vjp(fun, *args, backend=b)
            cts = vjp_fn(v)
            rhs = sum(_vdot(c, ui) for c, ui in zip(cts, u))
            lhs_num = _vdot(v, num)
            err_num = float(np.sum(np.abs(np.asarray(v, np.float64)) * num_err))
            tol = a_tol + r_tol * abs(lhs_num) + NUMERIC_SAFETY * err_num
            if not abs(lhs_num - rhs) <= tol:
                _fail(f"VJP (mode 'rev', order {level}, backend '{b}'): <v, J u> vs <J^T v, u>", name,
                      rhs, lhs_num, "the numeric <v, J u>", abs(lhs_num - rhs), tol)
            for jb, t in ad_jvp.items():
                lhs = _vdot(v, t)
                scale = max(1.0, float(np.sum(np.abs(np.asarray(v, np.float64) * t))),
                            sum(float(np.sum(np.abs(np.asarray(c, np.float64) * np.asarray(ui, np.float64))))
                                for c, ui in zip(cts, u)))
                tol = (AD_RTOL_EPS * e if rtol is None else r_tol) * scale + (0.0 if atol is None else a_tol)
                if not abs(lhs - rhs) <= tol:
                    _fail(f"VJP (mode 'rev', order {level}, backend '{b}'): transposition "
                          f"<J^T v, u> vs <v, J u> from backend '{jb}'", name, rhs, lhs,
                          f"'{jb}' <v, J u>", abs(lhs - rhs), tol)
    if order > 1:
        for b in _AD:
            if "fwd" in modes:
                def jvp_map(*a: Any, _b: str = b) -> Any:
                    return dk.jvp(fun, a, u, backend=_b)[1]

                _check(jvp_map, f"(x -> J(x) u on '{b}') of {name}", args, order - 1, level + 1, modes,
                       atol, rtol, eps, rng)
            if "rev" in modes:
                def vjp_map(*a: Any, _b: str = b) -> Any:
                    cts = dk.vjp(fun, *a, backend=_b)[1](v)
                    total = 0.0
                    for c, wi in zip(cts, w):
                        total = total + np.sum(c * wi)
                    return total

                _check(vjp_map, f"(x -> <J(x)^T v, w> on '{b}') of {name}", args, order - 1, level + 1,
                       modes, atol, rtol, eps, rng)


# --------------------------------------------------------------------------
# The magnitude that rounding errors of derivatives scale with
# --------------------------------------------------------------------------

class _Unsupported(Exception):
    pass


class _Abs(Observed):
    """A value with the magnitudes of its first (``g``) and second (``h``) derivatives."""

    __slots__ = ("g", "h")

    def __init__(self, trace: Any, primal: Any, g: np.ndarray, h: np.ndarray | None):
        super().__init__(trace, primal)
        self.g, self.h = g, h


def _lift(d: np.ndarray, lead: int, shape: tuple[int, ...]) -> np.ndarray:
    """Derivative magnitudes ``d`` (``lead`` coordinate axes first) broadcast to ``shape``."""
    core = d.shape[lead:]
    d = d.reshape(d.shape[:lead] + (1,) * (len(shape) - len(core)) + core)
    return np.broadcast_to(d, d.shape[:lead] + tuple(shape))


class _AbsTrace(ObservingTrace):
    """Propagates |value| derivatives: every local partial replaced by its absolute value.

    The result bounds the sum of the magnitudes of all terms a derivative is
    computed from (a running error bound in the sense of Griewank and Walther,
    "Evaluating Derivatives", ch. 3): rounding errors of any evaluation of the
    derivative are a small multiple of eps times it.
    """

    backend_name = "absolute derivative"
    value_type = _Abs

    def __init__(self, n: int, order: int):
        super().__init__()
        self.n = n
        self.order = order

    def wrap(self, prim: Any, args: tuple[Any, ...], vals: list[Any], traced: list[bool],
             params: dict[str, Any], out: Any) -> Any:
        # Structural primitives linear in every argument are applied to the (nonnegative)
        # derivative magnitudes as they are; multilinear ones get a product rule.
        shape = tuple(np.shape(out))
        n = self.n
        gs = [a.g if t else None for a, t in zip(args, traced)]
        hs = [a.h if t else None for a, t in zip(args, traced)]
        if prim.elementwise:
            g, h = self._elementwise(prim, vals, params, traced, gs, hs, out, shape)
        elif prim.linearity == "linear":
            def lin(parts: list[Any]) -> np.ndarray:
                return np.asarray(prim.numpy(*parts, **params), dtype=np.float64)

            zeros = [np.zeros(np.shape(v)) for v in vals]
            g = np.stack([lin([gs[i][k] if traced[i] else zeros[i] for i in range(len(vals))])  # type: ignore[index]
                          for k in range(n)]).reshape((n,) + shape)
            h = None
            if self.order > 1:
                h = np.stack([lin([hs[i][k, m] if traced[i] else zeros[i]  # type: ignore[index]
                                   for i in range(len(vals))])
                              for k in range(n) for m in range(n)]).reshape((n, n) + shape)
        elif prim.linearity == "multilinear":
            g, h = self._multilinear(prim, vals, params, traced, gs, hs, shape)
        else:
            raise _Unsupported(prim.name)
        return _Abs(self, out, g, h)

    def _elementwise(self, prim: Any, vals: list[Any], params: dict[str, Any], traced: list[bool],
                     gs: list[Any], hs: list[Any], out: Any, shape: tuple[int, ...]) -> tuple[Any, Any]:
        from . import operators as dk

        n = self.n
        idx = [i for i in range(len(vals)) if traced[i] and i not in prim.nondiff_args]
        g = np.zeros((n,) + shape)
        h = np.zeros((n, n) + shape) if self.order > 1 else None
        floats = [np.asarray(v, dtype=np.float64) if i not in prim.nondiff_args else v for i, v in enumerate(vals)]

        def partial(i: int) -> Callable[..., Any]:
            def p(*d: Any) -> Any:
                full = list(floats)
                for j, v in zip(idx, d):
                    full[j] = v
                o = prim.numpy(*full, **params)
                return prim.jvp[i](np.ones(np.shape(full[i])), o, *full, **params)

            return p

        with np.errstate(all="ignore"):
            for i in idx:
                pi = np.abs(np.asarray(partial(i)(*[floats[j] for j in idx]), dtype=np.float64))
                g = g + pi * _lift(gs[i], 1, shape)
                if h is not None:
                    h = h + pi * _lift(hs[i], 2, shape)
                    for j in idx:
                        tangents = [np.ones(np.shape(floats[k])) if k == j else np.zeros(np.shape(floats[k]))
                                    for k in idx]
                        _, pij = dk.jvp(partial(i), [floats[k] for k in idx], tangents, backend="forward")
                        pij = np.abs(np.asarray(pij, dtype=np.float64))
                        gi, gj = _lift(gs[i], 1, shape), _lift(gs[j], 1, shape)
                        h = h + pij * gi[:, None] * gj[None, :]
        return g, h

    def _multilinear(self, prim: Any, vals: list[Any], params: dict[str, Any], traced: list[bool],
                     gs: list[Any], hs: list[Any], shape: tuple[int, ...]) -> tuple[Any, Any]:
        n = self.n
        absvals = [np.abs(np.asarray(v, dtype=np.float64)) for v in vals]

        def op(repl: dict[int, np.ndarray]) -> np.ndarray:
            parts = [repl.get(i, absvals[i]) for i in range(len(vals))]
            return np.asarray(prim.numpy(*parts, **params), dtype=np.float64)

        T = [i for i in range(len(vals)) if traced[i]]
        g = np.stack([sum((op({i: gs[i][k]}) for i in T), np.zeros(shape)) for k in range(n)])
        h = None
        if self.order > 1:
            rows = []
            for k in range(n):
                for m in range(n):
                    acc = np.zeros(shape)
                    for i in T:
                        acc = acc + op({i: hs[i][k, m]})
                        for j in T:
                            if j != i:
                                acc = acc + op({i: gs[i][k], j: gs[j][m]})
                    rows.append(acc)
            h = np.stack(rows).reshape((n, n) + shape)
        return g.reshape((n,) + shape), h


def absolute_derivative(f: Any, args: Sequence[Any], order: int = 1) -> np.ndarray | None:
    """The derivative of ``f`` computed with the absolute value of every local partial derivative.

    It bounds the magnitudes of all the terms a derivative is summed from, so
    rounding errors of any evaluation of the derivative (forward, reverse,
    symbolic) are a small multiple of eps times it, also where terms cancel
    (``hypot(x, x)`` has a zero second derivative made of terms of size ``1/|x|``).
    A tolerance ``c * eps * absolute_derivative(...)`` is the one to use for
    comparing backends.

    Coordinates are those of all arguments, flattened in order; the result has
    shape ``out.shape + (n,) * order`` (``order`` 1 or 2). ``None`` when ``f``
    uses a primitive this does not cover (reductions other than sums, linear
    algebra beyond products).

    Example:
        >>> import numpy as np
        >>> absolute_derivative(lambda x, y: x * y - x * y, (2.0, 3.0))   # the gradient is 0
        array([6., 4.])
        >>> absolute_derivative(lambda x: np.hypot(x, x), (0.01,), order=2).round(1)
        array([[141.4]])
    """
    if order not in (1, 2):
        raise InvalidArgument(f"absolute_derivative: order must be 1 or 2, got {order!r}")
    F = as_function(f)
    arrays = [np.asarray(a, dtype=np.float64) for a in args]
    sizes = [a.size for a in arrays]
    n = int(sum(sizes))
    trace = _AbsTrace(n, order)
    probes: list[Any] = []
    start = 0
    for a, size in zip(arrays, sizes):
        g = np.zeros((n,) + a.shape)
        g.reshape(n, -1)[start:start + size] = np.eye(size)
        h = np.zeros((n, n) + a.shape) if order > 1 else None
        probes.append(_Abs(trace, args[len(probes)], g, h))
        start += size
    from .core.values import pack

    with np.errstate(all="ignore"):
        try:
            out = pack(F(*probes))
        except _Unsupported:
            return None
    if not isinstance(out, _Abs):  # f does not depend on its arguments
        return np.zeros(np.shape(out) + (n,) * order)
    d = out.g if order == 1 else out.h
    lead = order
    return np.asarray(np.moveaxis(d, tuple(range(lead)), tuple(range(-lead, 0))))
