"""Cross-check every backend against an independent reference, and say why one differs.

:func:`crosscheck` runs each backend on the same derivative, compares it with
the reference (:mod:`diffkit.harness.reference`: SymPy's own derivatives in
50-digit mpmath, else mpmath differences, else — labelled weak — the two AD
backends' agreement; never the table's derivative rules), applies a tolerance
that follows from the dtype, the result's magnitude and — for the numeric
backend — its own error estimate, and names the cause of a disagreement:

* ``domain edge``: the derivative is infinite at the point;
* ``input structure``: the rules assume a structure NumPy does not read
  (``eigh`` takes its matrix as symmetric);
* ``convention``: the point is a kink and the element's derivative jumps there;
* ``nan/inf in the function``: a NaN or inf computed on the way spoils the value;
* ``truncation`` / ``round-off``: the numeric error shrinks / grows with the step;
* ``likely bug``: none of these.
"""

from __future__ import annotations

import contextvars
import math
import time
import warnings
from typing import Any, Callable, Sequence

import numpy as np

from ..backends import backends as all_backends
from ..core.function import Function, as_function
from ..errors import (
    BackendMismatch,
    InvalidArgument,
    InvalidType,
    ShapeError,
    SizeLimitError,
    TimeLimitError,
    TracingError,
    UnsupportedOperation,
)
from ..limits import check_timeout, run_limited
from ..pytree import is_leaf, tree_flatten, tree_flatten_with_paths, tree_leaves, tree_unflatten
from .kinks import walk
from .reference import reference
from .report import Reference, Report, Row

OPS = ("grad", "jacobian", "hessian", "derivative", "jvp", "vjp")
EPS64 = float(np.finfo(np.float64).eps)

# Tolerances, as multiples of the dtype's eps: an AD or symbolic result is a
# few dozen floating-point operations per element away from the exact one;
# 256 eps (5.7e-14 in float64) leaves room for that and catches any rule off by
# more than rounding.
AD_RTOL_EPS = 256.0
# The numeric backend is trusted to its own error estimate, with this safety factor.
NUMERIC_SAFETY = 10.0


# --------------------------------------------------------------------------
# Running one backend
# --------------------------------------------------------------------------


def _operator(F: Function, op: str, backend: Any, argnums: Any, order: int,
              tangents: Sequence[Any] | None, cotangent: Any) -> Callable[..., Any]:
    from .. import operators as dk

    if op == "grad":
        return dk.grad(F, argnums=argnums, backend=backend)
    if op == "jacobian":
        return dk.jacobian(F, argnums=argnums, backend=backend)
    if op == "hessian":
        return dk.hessian(F, argnums=argnums, backend=backend)
    if op == "derivative":
        d = dk.derivative(F, order=order, backend=backend)
        return lambda *args: d(args[0])
    if op == "jvp":
        return lambda *args: dk.jvp(F, args, tangents, backend=backend)[1]
    if op == "vjp":
        return lambda *args: dk.vjp(F, *args, backend=backend)[1](cotangent)
    raise InvalidArgument(f"crosscheck of {F.name}: op must be one of {', '.join(OPS)}, got {op!r}")


def _flatten(value: Any) -> np.ndarray:
    if isinstance(value, tuple):
        parts = [_flatten(v) for v in value]
        return np.concatenate(parts) if parts else np.zeros(0)
    return np.ravel(np.asarray(value, dtype=np.float64))


def _numeric_result(F: Function, op: str, args: Sequence[Any], argnums: Any, order: int,
                    tangents: Any, cotangent: Any, backend: Any) -> tuple[np.ndarray, np.ndarray, Any]:
    """The numeric backend's value, elementwise error estimate, and result object."""
    if op == "grad":
        r = backend.gradient_result(F, args, argnums)
    elif op == "jacobian" or op == "vjp":
        r = backend.jacobian_result(F, args, argnums if op == "jacobian" else tuple(range(len(args))))
    elif op == "hessian":
        r = backend.hessian_result(F, args, argnums)
    elif op == "derivative":
        r = backend.derivative_result(F, args[0], order)
    else:
        r = backend.jvp_result(F, args, tangents)
    if op == "vjp":
        jacs = r.value if isinstance(r.value, tuple) else (r.value,)
        errs = r.error if isinstance(r.error, tuple) else (r.error,)
        ct = np.asarray(cotangent, dtype=float)
        nd = ct.ndim
        value = tuple(np.tensordot(ct, j, axes=nd) for j in jacs)
        error = tuple(np.tensordot(np.abs(ct), np.abs(e), axes=nd) for e in errs)
        return _flatten(value), _flatten(error), r
    return _flatten(r.value), np.broadcast_to(_flatten(r.error), _flatten(r.value).shape), r


def _time(call: Callable[[], Any], budget: float, min_repeats: int = 3) -> tuple[float, float, int]:
    """Median and interquartile range of ``call()``'s time over about ``budget`` seconds."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_repeats or (time.perf_counter() - start < budget and len(times) < 10_000):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    return float(med), float(q3 - q1), len(times)


# --------------------------------------------------------------------------
# The reference
# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# Tolerances and causes
# --------------------------------------------------------------------------


def _tolerance(backend: str, ref: np.ndarray, estimate: np.ndarray | None, dtype: Any,
               rtol: Any, atol: Any, deriv_scale: float = 0.0) -> tuple[np.ndarray, float, float]:
    """Elementwise tolerance; ``rtol``/``atol`` may be numbers or dicts per backend."""
    eps = float(np.finfo(dtype).eps) if np.dtype(dtype).kind == "f" else EPS64
    r = rtol.get(backend) if isinstance(rtol, dict) else rtol
    a = atol.get(backend) if isinstance(atol, dict) else atol
    r = AD_RTOL_EPS * eps if r is None else float(r)
    # entries near zero are judged against the result's overall magnitude:
    # they come from sums whose terms are that large
    scale = float(np.max(np.abs(ref), initial=0.0))
    a = r * max(scale, 1.0) if a is None else float(a)
    tol = a + r * np.abs(ref)
    if estimate is not None and backend == "numeric" and rtol is None:
        # trusted to its own estimate, but never beyond sqrt(eps) relative: the best a plain
        # one-sided difference reaches; past it the estimate only says the result is poor.
        # Relative to the derivative, or to |f| / |x| when the derivative is much smaller
        # than the function (a difference quotient's round-off scales with |f|, and with
        # the intermediate values f is computed from).
        cap = math.sqrt(eps) * np.maximum(np.abs(ref), max(deriv_scale, max(scale, 1.0) * eps))
        tol = np.maximum(tol, np.minimum(NUMERIC_SAFETY * np.abs(estimate), cap))
    return tol, r, a


def _numeric_cause(F: Function, op: str, args: Sequence[Any], argnums: Any, order: int, tangents: Any,
                   cotangent: Any, ref: np.ndarray, used_step: Any) -> str:
    """Truncation or round-off: the error at steps 8x larger and 8x smaller than the one used."""
    from ..backends.numeric import Numeric

    h = float(np.max(np.atleast_1d(np.asarray(used_step, dtype=float)), initial=0.0)) or 1e-5
    errs = []
    for s in (h * 8, h, h / 8):
        try:
            v, _, _ = _numeric_result(F, op, args, argnums, order, tangents, cotangent,
                                      Numeric(method="central", step=s))
            errs.append(float(np.max(np.abs(v - ref))))
        except Exception:
            errs.append(math.inf)
    big, mid, small = errs
    if small < mid <= big:
        return "truncation"
    if small > mid or big < mid:
        return "round-off"
    return "truncation" if small <= mid else "round-off"


# --------------------------------------------------------------------------
# crosscheck
# --------------------------------------------------------------------------


def _labels(F: Function, args: Sequence[Any], op: str, argnums: Any, out_shape: Any) -> list[str]:
    """A name for each flattened element: df/dy, d2f/dx[0]dx[1], ..."""
    names = list(F.variables) + [f"arg{i}" for i in range(len(F.variables), len(args))]
    nums = [argnums] if isinstance(argnums, (int, np.integer)) else list(argnums)
    if op in ("jvp",):
        return [f"(J t){_idx(i, out_shape)}" for i in range(int(np.prod(out_shape or (), dtype=int)) or 1)]
    if op == "vjp":
        nums = list(range(len(args)))
    if op == "derivative":
        return ["f'"]
    labels = []
    for a in nums:
        shape = np.shape(args[a])
        for i in range(int(np.prod(shape, dtype=int))):
            labels.append(f"df/d{names[a]}{_idx(i, shape)}")
    if op == "hessian":
        return [f"{l1}/{l2}" for l1 in labels for l2 in labels]
    if op == "jacobian" and out_shape:
        return [f"d out{_idx(o, out_shape)}/{lab.removeprefix('df/')}" for o in range(int(np.prod(out_shape)))
                for lab in labels]
    return labels


def _idx(i: int, shape: Any) -> str:
    if not shape:
        return ""
    return str([int(k) for k in np.unravel_index(i, shape)])


def crosscheck(f: Any, args: Sequence[Any] = (), op: str = "grad", *, argnums: Any = 0,
               backends: Sequence[Any] | None = None, order: int = 1, tangents: Sequence[Any] | None = None,
               cotangent: Any = None, rtol: Any = None, atol: Any = None, time_budget: float = 0.1,
               name: str | None = None, candidates: dict[str, Callable[..., Any]] | None = None,
               timeout: float | None = None) -> Report:
    """Run every backend (or a chosen subset) on one derivative and compare them with a reference.

    Args:
        f: callable, :class:`~diffkit.Function`, expression string or SymPy expression.
        args: the point, one value per positional argument.
        op: ``grad``, ``jacobian``, ``hessian``, ``derivative``, ``jvp`` or ``vjp``.
        argnums: the differentiated argument(s) (grad, jacobian, hessian).
        backends: names or instances; default all of :func:`diffkit.backends`.
        order: the derivative order for ``op="derivative"``.
        tangents: for ``jvp`` (default: a fixed pseudo-random direction).
        cotangent: for ``vjp`` (default: a fixed pseudo-random cotangent).
        rtol: override the relative tolerance; a number, or a dict per backend name.
        atol: override the absolute tolerance; a number, or a dict per backend name.
        time_budget: seconds spent timing each backend's repeated calls.
        name: the function's name in the report.
        candidates: other derivatives to judge, by name: each a callable taking the
            same arguments as ``f`` and returning what diffkit's operator returns
            for ``op`` (same shapes; a tuple for a tuple ``argnums``) — a
            hand-derived gradient, an adjoint code, another framework's gradient.
            Each gets a row like a backend's, with the same verdicts and causes.
        timeout: seconds allowed to the whole cross-check, which then runs in a
            child process killed at the limit (:class:`~diffkit.errors.TimeLimitError`).
            Within it the symbolic reference may take a quarter of the time, and
            then the mpmath reference as long (past it the reference is the next
            kind), and each backend an equal part of what is left (past it the
            row is ``unsupported``, with the limit in its message). ``None``, the default, is no limit (``diffkit check``: 60 s).

    Returns:
        A :class:`Report`; ``report.ok`` says whether every backend agrees.

    Raises:
        InvalidArgument, InvalidType, ShapeError: a mistake in the call, found
            before any backend runs: no point, an empty array, a function that
            returns None or no floating-point number, ``grad`` of a function
            with an array output, tangents or a cotangent of the wrong shape.

    Example:
        >>> import diffkit as dk
        >>> report = dk.crosscheck("sin(x)*exp(y)", args=(1.0, 2.0), op="grad", argnums=(0, 1))
        >>> report.ok, report.reference.kind
        (True, "symbolic: SymPy's own derivatives in mpmath, 50 digits")
        >>> sorted(r.backend for r in report.rows)
        ['compiled', 'forward', 'numeric', 'reverse', 'symbolic']

        Any other derivative is judged the same way (``candidates``)::

            >>> import numpy as np
            >>> mine = lambda x, y: (np.cos(x) * np.exp(y), np.sin(x) * np.exp(y))
            >>> rep = dk.crosscheck("sin(x)*exp(y)", (1.0, 2.0), "grad", argnums=(0, 1),
            ...                     backends=["reverse"], candidates={"mine": mine})
            >>> [(r.backend, r.verdict) for r in rep.rows]
            [('reverse', 'ok'), ('mine', 'ok')]
    """
    from ..backends import get_backend

    if op not in OPS:
        raise InvalidArgument(f"crosscheck: op must be one of {', '.join(OPS)}, got {op!r}")
    limit = check_timeout(timeout)
    if limit is not None:
        kwargs = dict(argnums=argnums, backends=backends, order=order, tangents=tangents, cotangent=cotangent,
                      rtol=rtol, atol=atol, time_budget=time_budget, name=name, candidates=candidates)
        label = name or (f if isinstance(f, str) else getattr(f, "name", None) or getattr(f, "__name__", "f"))
        label = label if len(label) <= 60 else label[:57] + "..."
        return run_limited(_limited, f, args, op, kwargs, limit, timeout=limit, what=f"crosscheck of {label}")
    F = as_function(f)
    if name:
        F = Function(F, name=name)
    if any(not is_leaf(a) for a in args):  # pytree arguments: the cross-check runs on their leaves
        F, args, argnums, tangents, candidates = _flatten_point(F, list(args), argnums, tangents, candidates)
    if not len(args) and F.variables:
        raise InvalidArgument(f"crosscheck of {F.name}: no point given; the function's variables are "
                              f"{', '.join(F.variables)}: give args=(...) with one value each")
    if op == "derivative" and len(args) != 1:
        raise InvalidArgument(f"crosscheck of {F.name}: op='derivative' takes a function of one scalar; "
                              f"{len(args)} arguments given (use op='grad' with argnums)")
    # NumPy scalars and arrays in the arguments' own floating dtype (float32 stays float32)
    try:
        args = [np.asarray(a, dtype=np.asarray(a).dtype if np.asarray(a).dtype.kind == "f" else np.float64)
                for a in args]
    except (TypeError, ValueError) as e:
        raise InvalidType(f"crosscheck of {F.name}: the point holds something that is not a number or a numeric "
                          f"array ({type(e).__name__}: {e})") from None
    args = [a[()] if a.ndim == 0 else a for a in args]
    rng = np.random.default_rng(12345)  # fixed: a report is reproducible
    if op == "jvp" and tangents is None:
        tangents = [rng.uniform(-1.0, 1.0, np.shape(a)) if np.ndim(a) else float(rng.uniform(-1, 1)) for a in args]
    t0 = time.perf_counter()
    out = F(*args)
    f_time = time.perf_counter() - t0
    out_shape = np.shape(out)
    if op == "vjp" and cotangent is None:
        cotangent = rng.uniform(-1.0, 1.0, out_shape) if out_shape else float(rng.uniform(-1, 1))
    _refuse_mistakes(F, op, args, argnums, out, tangents, cotangent)
    f_time, _, _ = _time(lambda: F(*args), min(time_budget, 0.05))
    ref = reference(F, args, op, argnums, order, tangents, cotangent, timeout=_share(1 / 4),
                    ad=lambda b: _flatten(_operator(F, op, b, argnums, order, tangents, cotangent)(*args)))
    trace = walk(F.fn, args)
    kinks = trace.kinks
    dtype = np.result_type(*[np.asarray(a).dtype for a in args]) if args else np.dtype(float)
    labels = _labels(F, args, op, argnums, out_shape)
    with np.errstate(all="ignore"):
        # a difference quotient's round-off scales with the largest value computed on the
        # way to f, not with |f| alone: log(1 + a**2) at a = 0 is 0, computed from 1
        f_mag = max(float(np.max(np.abs(np.asarray(out, dtype=float)), initial=0.0)), trace.magnitude)
        x_mag = max([1.0] + [float(np.max(np.abs(a), initial=0.0)) for a in args])
    deriv_scale = f_mag / x_mag if math.isfinite(f_mag) else 0.0
    rows = []
    judged = [get_backend(b) for b in (backends if backends is not None else all_backends())]
    taken = {be.name for be in judged}
    for n in candidates or {}:
        if n in taken:
            raise InvalidArgument(f"crosscheck of {F.name}: candidate {n!r} has a backend's name; rename it")
    judged += [_Candidate(n, c, F.name) for n, c in (candidates or {}).items()]
    for k, be in enumerate(judged):
        share = _share(1 / (len(judged) - k + 1))  # an equal part of what is left, one part kept back
        if share is None:
            rows.append(_check_backend(F, be, op, args, argnums, order, tangents, cotangent, ref, trace, dtype,
                                       rtol, atol, time_budget, labels, deriv_scale))
            continue
        try:
            rows.append(run_limited(_check_backend, F, be, op, args, argnums, order, tangents, cotangent, ref,
                                    trace, dtype, rtol, atol, time_budget, labels, deriv_scale, timeout=share,
                                    what=f"{be.name}: {op}", hint="the cross-check's time limit shared out"))
        except TimeLimitError as e:
            row = Row(be.name, "unsupported")
            row.message = f"TimeLimitError: {_one_line(e)}"
            rows.append(row)
    shape = list(out_shape) if op in ("jvp",) else []
    return Report(F.name, op, [argnums] if isinstance(argnums, (int, np.integer)) else list(argnums),
                  [np.asarray(a).tolist() for a in args], shape, labels, ref, rows, kinks, f_time, F.source)


_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("diffkit_crosscheck_deadline",
                                                                        default=None)
"""When the cross-check running here must end (``time.monotonic()``), or None: no limit."""


def _limited(f: Any, args: Sequence[Any], op: str, kwargs: dict[str, Any], limit: float) -> Report:
    """crosscheck in the child process of ``timeout=``: its parts share out the time left."""
    token = _DEADLINE.set(time.monotonic() + limit)
    try:
        return crosscheck(f, args, op, **kwargs)
    finally:
        _DEADLINE.reset(token)


def _share(fraction: float) -> float | None:
    """Seconds a part of a time-limited cross-check may take (``fraction`` of what is left)."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return None
    return max(0.05, (deadline - time.monotonic()) * fraction)


def _flatten_point(F: Function, args: list[Any], argnums: Any, tangents: Any,
                   candidates: dict[str, Callable[..., Any]] | None) -> tuple[Any, ...]:
    """A point with pytree arguments (dicts, lists, tuples: docs/pytrees.md) as the leaves'
    point: the function of the leaves (named ``p_w``, ``p_layer_0``), the leaves' argnums
    for the arguments' argnums (a pytree argument's leaves all), tangents flattened alike,
    candidates answering in the leaves. The report then shows one value per leaf."""
    from ..operators import _flat_fn, _symbol_name

    names = [F.variables[i] if i < len(F.variables) else f"arg{i}" for i in range(len(args))]
    layout: list[Any] = []
    flat: list[Any] = []
    symbols: list[str] = []
    positions: list[list[int]] = []
    for i, a in enumerate(args):
        leaves, paths, td = tree_flatten_with_paths(a)
        start = len(flat)
        if td.is_leaf:
            layout.append(None)
            flat.append(a)
            symbols.append(names[i])
        else:
            layout.append(td)
            flat.extend(leaves)
            symbols.extend(_symbol_name(names[i], p) for p in paths)
        positions.append(list(range(start, len(flat))))
    single = isinstance(argnums, (int, np.integer))
    nums = [int(argnums)] if single else [int(a) for a in argnums]
    for a in nums:
        if not -len(args) <= a < len(args):
            raise InvalidArgument(f"crosscheck of {F.name}: argnums={argnums!r} does not name arguments of the "
                                  f"point ({len(args)} given)")
    nums = [a % len(args) for a in nums]
    if single and layout[nums[0]] is None:
        new_argnums: Any = positions[nums[0]][0]
    else:
        new_argnums = tuple(k for a in nums for k in positions[a])
    if tangents is not None:
        flat_t: list[Any] = []
        for i, t in enumerate(tangents):
            if i < len(layout) and layout[i] is not None:
                leaves, td = tree_flatten(t)
                if td != layout[i]:
                    raise ShapeError(f"crosscheck of {F.name}: tangent {i} {td} differs in structure from its "
                                     f"argument {layout[i]}")
                flat_t.extend(leaves)
            else:
                flat_t.append(t)
        tangents = flat_t
    if candidates:
        def leaves_of(c: Callable[..., Any]) -> Callable[..., Any]:
            def flat_candidate(*leaves: Any) -> Any:
                res = tree_leaves(c(*_unflatten_args(layout, leaves)))
                return res[0] if not isinstance(new_argnums, tuple) else tuple(res)
            return flat_candidate

        candidates = {n: leaves_of(c) for n, c in candidates.items()}
    fn = _flat_fn(F.fn, tuple(layout), symbols, F.name)
    return Function(fn, variables=symbols, name=F.name), flat, new_argnums, tangents, candidates


def _unflatten_args(layout: Sequence[Any], flat: Sequence[Any]) -> list[Any]:
    args = []
    k = 0
    for td in layout:
        if td is None:
            args.append(flat[k])
            k += 1
        else:
            args.append(tree_unflatten(td, list(flat[k:k + td.num_leaves])))
            k += td.num_leaves
    return args


def _refuse_mistakes(F: Function, op: str, args: Sequence[Any], argnums: Any, out: Any, tangents: Any,
                     cotangent: Any) -> None:
    """Mistakes in the call, not in a backend: raised before any backend runs (a backend's
    error row would read as a likely bug in diffkit)."""
    where = f"crosscheck of {F.name}"
    names = list(F.variables) + [f"arg{i}" for i in range(len(F.variables), len(args))]
    for i, a in enumerate(args):
        if np.size(a) == 0:
            raise InvalidArgument(f"{where}: argument {names[i]!r} is an empty array; a point needs values")
    kind = np.asarray(out).dtype.kind if out is not None and not isinstance(out, (str, bytes)) else ""
    if out is None or isinstance(out, (bool, np.bool_)) or kind not in ("f", "c"):
        what = "None" if out is None else f"{type(out).__name__} {str(out)[:40]!r}"
        hint = " (does it miss a `return`?)" if out is None else ""
        raise InvalidType(f"{where}: the function returned {what}, not a floating-point number or array, and has "
                          f"no derivative{hint}")
    if op in ("grad", "jacobian", "hessian"):
        nums = [argnums] if isinstance(argnums, (int, np.integer)) else list(argnums)
        for k in nums:
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not -len(args) <= k < len(args):
                raise InvalidArgument(f"{where}: argnums={argnums!r} does not name arguments of the point "
                                      f"({len(args)} given)")
    if op == "grad" and np.shape(out) != ():
        raise ShapeError(f"{where}: grad needs a function with a scalar output, and it returns an array of shape "
                         f"{np.shape(out)}; use op='jacobian' (diffkit check --op jacobian), or reduce the "
                         "output to a number (np.sum)")
    if op == "derivative" and np.ndim(args[0]) != 0:
        raise ShapeError(f"{where}: op='derivative' differentiates a function of one scalar, and the argument "
                         f"has shape {np.shape(args[0])}; use op='jacobian'")
    if op == "jvp":
        if len(tangents) != len(args):
            raise InvalidArgument(f"{where}: {len(tangents)} tangent(s) for {len(args)} argument(s)")
        for i, (t, a) in enumerate(zip(tangents, args)):
            if np.shape(t) != np.shape(a):
                raise ShapeError(f"{where}: the tangent of {names[i]!r} has shape {np.shape(t)}, the argument "
                                 f"{np.shape(a)}")
    if op == "vjp" and np.shape(cotangent) != np.shape(out):
        raise ShapeError(f"{where}: the cotangent has shape {np.shape(cotangent)}, the output {np.shape(out)}")


class _Candidate:
    """A user's derivative judged like a backend: a name and the callable that computes it."""

    def __init__(self, name: str, fn: Callable[..., Any], function: str):
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"crosscheck of {function}: candidate names must be non-empty strings, got {name!r}")
        if not callable(fn):
            raise InvalidType(f"crosscheck of {function}: candidate {name!r} is not callable "
                              f"({type(fn).__name__}); give a function of the same arguments as f")
        self.name = name
        self.fn = fn


def _check_backend(F: Function, be: Any, op: str, args: list[Any], argnums: Any, order: int, tangents: Any,
                   cotangent: Any, ref: Reference, walked: Any, dtype: Any, rtol: Any, atol: Any,
                   budget: float, labels: list[str], deriv_scale: float = 0.0) -> Row:
    row = Row(be.name, "ok")
    fn = be.fn if isinstance(be, _Candidate) else _operator(F, op, be, argnums, order, tangents, cotangent)
    estimate = None
    result = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            t0 = time.perf_counter()
            value = _flatten(fn(*args))
            first = time.perf_counter() - t0
            if be.name == "numeric":
                value, estimate, result = _numeric_result(F, op, args, argnums, order, tangents, cotangent, be)
                row.nfev = int(result.nfev)
                row.method = result.method
                row.error_estimate = float(np.max(np.abs(estimate), initial=0.0))
            row.call_time, row.call_spread, row.repeats = _time(lambda: fn(*args), budget)
            row.setup_time = max(0.0, first - row.call_time)
    except (UnsupportedOperation, TracingError) as e:
        # no rule for an operation, or code this backend cannot trace (math.erf on the
        # symbolic backend): a limit of the backend on this code, not a wrong number
        row.verdict, row.message = "unsupported", f"{type(e).__name__}: {_one_line(e)}"
        return row
    except Exception as e:
        if walked.kinks or _is_size_limit(e):
            row.verdict = "unsupported" if _is_size_limit(e) else "convention"
        else:
            row.verdict, row.cause = "error", "likely bug"
        row.message = f"{type(e).__name__}: {_one_line(e)}"
        return row
    row.value = value.tolist()
    if ref.value is None:
        if "forward and reverse disagree" in ref.note and be.name in ("forward", "reverse"):
            # no reference *because* the two AD backends disagree: that is a failure to report
            row.verdict, row.cause = "fail", ("convention" if walked.kinks else "likely bug")
            row.message = f"{op} of {F.name}: forward and reverse disagree and SymPy cannot trace the function"
            if walked.kinks:
                row.verdict = "convention"
        else:
            row.verdict, row.message = "ok", "no reference: the value is reported, not judged"
        return row
    if value.shape != ref.value.shape:
        row.verdict, row.cause = "fail", "likely bug"
        row.message = f"shape {value.shape} differs from the reference's {ref.value.shape}"
        return row
    tol, r, a = _tolerance(be.name, ref.value, estimate, dtype, rtol, atol, deriv_scale)
    if ref.error is not None:
        tol = tol + ref.error  # the reference's own error (mpmath differences), far below float64's
    row.rtol, row.atol = r, a
    refv = ref.value
    with np.errstate(invalid="ignore", divide="ignore"):
        same = value == refv  # equal infinities agree
        err = np.where(same, 0.0, np.abs(value - refv))
        # where the reference is NaN the function has no derivative to judge against
        # an infinite reference is met only by the same infinity; a NaN value counts as bad
        bad = ~np.isnan(refv) & ~(same | np.isfinite(refv) & (err <= tol))
        ratio = np.where(tol > 0, err / tol, np.inf)
    judged = ~np.isnan(refv)
    finite_err = err[judged & np.isfinite(err)]
    if judged.any():
        row.abs_error = float(np.max(finite_err, initial=0.0)) if finite_err.size else math.inf
        nz = np.isfinite(refv) & (np.abs(refv) > 0)
        row.rel_error = float(np.max(err[nz] / np.abs(refv[nz]), initial=0.0)) if nz.any() else row.abs_error
    ratio = np.where(np.isnan(refv), 0.0, np.where(np.isnan(ratio), np.inf, ratio))
    row.tol_ratio = float(np.max(ratio, initial=0.0))
    unjudged = np.flatnonzero(np.isnan(refv))
    if unjudged.size:
        row.message = (f"the reference is NaN at {unjudged[:4].tolist()}: the function has no derivative "
                       "there to judge against")
    if not bad.any():
        return row
    i = int(np.argmax(np.where(bad, ratio, -1.0)))
    row.worst_index = i
    cause, why = _cause(F, be.name, op, args, argnums, order, tangents, cotangent, value, refv, tol, i, walked,
                        result)
    row.cause = cause
    row.verdict = "convention" if cause in ("convention", "input structure") else "fail"
    row.message = _mismatch_message(F, op, be.name, i, value, refv, err, tol, dtype, result, cause, why, labels)
    return row


def _cause(F: Function, backend: str, op: str, args: list[Any], argnums: Any, order: int, tangents: Any,
           cotangent: Any, value: np.ndarray, ref: np.ndarray, tol: np.ndarray, i: int, walked: Any,
           result: Any) -> tuple[str, str]:
    """Why ``value`` differs from ``ref`` at element ``i``: ``(cause, explanation)``.

    In order: an infinite derivative (a domain edge); a function of a matrix whose
    rules assume a structure NumPy does not read (symmetric input); a kink whose
    derivative jumps at this very element; a NaN or inf computed on the way;
    the numeric backend's truncation or round-off; else a likely bug.
    """
    if np.isinf(ref[i]):
        return "domain edge", "the derivative is infinite here, at the edge of a primitive's domain"
    if walked.structures and _symmetric_convention(args, op, argnums, value, ref, tol):
        return "input structure", walked.structures[0]
    if walked.kinks:
        if backend == "numeric":  # a difference quotient at a kink is no derivative, whatever the element
            return "convention", f"kink: {walked.kinks[0]}"
        jump = _jumps(F, op, args, argnums, order, tangents, cotangent, i)
        if jump is None or jump:
            return "convention", f"kink: {walked.kinks[0]}"
    if not np.isfinite(value[i]):
        where = f" ({walked.nonfinite[0]})" if walked.nonfinite else ""
        return "nan/inf in the function", f"a NaN or inf computed on the way{where}"
    if backend == "numeric":
        return _numeric_cause(F, op, args, argnums, order, tangents, cotangent, ref,
                              result.step if result is not None else None), ""
    return "likely bug", ("no kink, domain edge or non-finite value explains it; the point meets a kink "
                          "elsewhere, whose derivative does not jump at this element" if walked.kinks else "")


def _jumps(F: Function, op: str, args: list[Any], argnums: Any, order: int, tangents: Any, cotangent: Any,
           i: int) -> bool | None:
    """Does element ``i`` of the derivative jump across the point (the mark of a kink there)?

    The derivative (reverse mode) at two points a step ``±delta u`` away along a fixed
    random direction: on either side of a kink at this element the two differ by O(1),
    elsewhere by O(delta). ``None`` when it cannot be computed.
    """
    rng = np.random.default_rng(7)
    nums = range(len(args)) if op in ("jvp", "vjp", "derivative") else (
        [argnums] if isinstance(argnums, (int, np.integer)) else list(argnums))
    sides = []
    for sign in (1.0, -1.0):
        moved = list(args)
        for k in nums:
            a = np.asarray(args[k], dtype=float)
            delta = 1e-7 * np.maximum(1.0, np.abs(a))
            # distinct components, so that ties (max, min, |x - y|) break
            step = sign * delta * rng.normal(size=a.shape) if a.ndim else sign * float(delta * rng.normal())
            moved[k] = a + step if a.ndim else float(a + step)
        rng = np.random.default_rng(7)  # the same direction on both sides
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sides.append(_flatten(_operator(F, op, "reverse", argnums, order, tangents, cotangent)(*moved)))
        except Exception:  # noqa: BLE001 - cannot tell
            return None
    plus, minus = sides
    if plus.shape != minus.shape or i >= plus.size:
        return None
    gap = abs(float(plus[i]) - float(minus[i]))
    return not (gap <= 1e-4 * max(1.0, abs(float(plus[i])), abs(float(minus[i]))))


def _symmetric_convention(args: list[Any], op: str, argnums: Any, value: np.ndarray, ref: np.ndarray,
                          tol: np.ndarray) -> bool:
    """The value is the reference symmetrized over each square-matrix argument: the rules take
    the matrix as symmetric (its gradient ``(G + G^T)/2``), NumPy reads one triangle."""
    if op not in ("grad", "jacobian"):
        return False
    nums = [argnums] if isinstance(argnums, (int, np.integer)) else list(argnums)
    sizes = [int(np.size(args[k])) for k in nums]
    m = value.size // max(sum(sizes), 1)
    sym = ref.copy()
    start = 0
    for k, n in zip(nums, sizes):
        shape = np.shape(args[k])
        block = ref[start * m:(start + n) * m].reshape((m,) + shape)
        if len(shape) >= 2 and shape[-1] == shape[-2]:
            block = 0.5 * (block + np.swapaxes(block, -1, -2))
            sym[start * m:(start + n) * m] = block.ravel()
        start += n
    return bool(np.all(np.abs(value - sym) <= tol)) and not np.array_equal(sym, ref)


def _is_size_limit(e: BaseException) -> bool:
    return isinstance(e, (SizeLimitError, TimeLimitError))


def _one_line(e: BaseException) -> str:
    return str(e).splitlines()[0][:400] if str(e) else type(e).__name__


def _mismatch_message(F: Function, op: str, backend: str, i: int, value: np.ndarray, ref: np.ndarray,
                      err: np.ndarray, tol: np.ndarray, dtype: Any, result: Any, cause: str,
                      why: str, labels: list[str]) -> str:
    how = f"{np.dtype(dtype).name}"
    if result is not None:
        step = np.asarray(result.step, dtype=float)
        h = float(np.ravel(step)[min(i, step.size - 1)]) if step.size else float("nan")
        how += f", {result.method}, h={h:.2g}"
    where = f"[{i}]" + (f" ({labels[i]})" if i < len(labels) else "")
    msg = (f"{op} of {F.name}: '{backend}' differs from the reference at {where}: {value[i]:.17g} vs "
           f"{ref[i]:.17g}, error {err[i]:.3g} > tol {tol[i]:.3g} ({how}); cause: {cause}")
    if why:
        msg += f" ({why})"
    return msg


def assert_backends_agree(f: Any, args: Sequence[Any] = (), op: str = "grad", **kwargs: Any) -> Report:
    """Cross-check and raise :class:`~diffkit.BackendMismatch` (an AssertionError) on a disagreement.

    The message names the backends, the element, both values, the size of the
    error and its cause. Keyword arguments are those of :func:`crosscheck`.

    Example:
        >>> import diffkit as dk
        >>> _ = dk.assert_backends_agree("x**3 - 2*x", args=(1.5,), op="derivative")
    """
    kwargs.setdefault("time_budget", 0.0)
    report = crosscheck(f, args, op, **kwargs)
    if not report.ok:
        bad = [r for r in report.rows if not r.passed]
        lines = [r.message or f"{r.backend}: {r.verdict}" for r in bad]
        if not bad:
            lines = ["no backend produced a value"]
        raise BackendMismatch(f"backends disagree on {op} of {report.function} at {report.point} "
                              f"(reference: {report.reference.kind}):\n  " + "\n  ".join(lines))
    return report


