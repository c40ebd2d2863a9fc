"""Cross-check every backend against a high-precision reference, and say why one differs.

:func:`crosscheck` runs each backend on the same derivative, compares it with
the reference (the symbolic derivative evaluated in 50-digit mpmath where the
symbolic backend can trace the function, otherwise the agreement of the two
AD backends), applies a tolerance that follows from the dtype, the result's
magnitude and — for the numeric backend — its own error estimate, and
attributes every disagreement to a cause:

* ``truncation``: the numeric error shrinks with the step;
* ``round-off``: the numeric error grows as the step shrinks;
* ``convention``: the point is a kink (found by tracing the function) and the
  backends follow different conventions, or the derivative does not exist;
* ``domain``: NaN or inf from outside a primitive's domain;
* ``likely bug``: none of these.
"""

from __future__ import annotations

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
    SizeLimitError,
    TracingError,
    UnsupportedOperation,
)
from .kinks import walk
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


def reference(F: Function, args: Sequence[Any], op: str, argnums: Any, order: int = 1,
              tangents: Any = None, cotangent: Any = None, dps: int = 50) -> Reference:
    """The symbolic derivative in mpmath where SymPy can trace ``F``; else the AD backends' agreement."""
    from ..backends.symbolic import precise

    try:
        if op in ("jvp", "vjp"):
            nums = tuple(range(len(args)))
            jac = precise(F, args, op="jacobian", argnums=nums, dps=dps)
            value = _contract_mp(jac, args, op, tangents, cotangent, F)
        else:
            value = precise(F, args, op=op, argnums=argnums, order=order, dps=dps)
        flat = _flatten_mp(value)
        return Reference(flat, f"symbolic (mpmath, {dps} digits)")
    except Exception as e:  # the symbolic backend cannot trace this function: fall back
        note = f"symbolic reference unavailable ({type(e).__name__}: {_one_line(e)[:160]})"
    values = {}
    for b in ("forward", "reverse"):
        try:
            values[b] = _flatten(_operator(F, op, b, argnums, order, tangents, cotangent)(*args))
        except Exception as e:
            note += f"; {b} failed ({type(e).__name__})"
    if len(values) == 2:
        a, b = values["forward"], values["reverse"]
        scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
        if a.shape == b.shape and np.all(np.abs(a - b) <= AD_RTOL_EPS * EPS64 * scale):
            return Reference(b, "AD agreement (forward and reverse)", note)
        note += "; forward and reverse disagree"
    return Reference(None, "none", note)


def _flatten_mp(value: Any) -> np.ndarray:
    if isinstance(value, tuple):
        parts = [_flatten_mp(v) for v in value]
        return np.concatenate(parts) if parts else np.zeros(0)
    arr = np.asarray(value, dtype=object)
    return np.array([float(v) for v in arr.ravel()], dtype=np.float64)


def _contract_mp(jac: Any, args: Sequence[Any], op: str, tangents: Any, cotangent: Any, F: Function) -> Any:
    """J t (jvp) or c^T J (vjp) summed in mpmath, so the reference stays exact to its digits."""
    import mpmath

    jacs = jac if isinstance(jac, tuple) else (jac,)
    with mpmath.workdps(50):
        if op == "jvp":
            total = None
            for j, t in zip(jacs, tangents):
                t = np.asarray(t, dtype=float)
                jo = np.asarray(j, dtype=object)
                nd = t.ndim
                term = np.tensordot(jo, np.vectorize(mpmath.mpf, otypes=[object])(t) if nd else mpmath.mpf(float(t)),
                                    axes=nd) if nd else jo * mpmath.mpf(float(t))
                total = term if total is None else total + term
            return total
        ct = np.asarray(cotangent, dtype=float)
        ct_mp = np.vectorize(mpmath.mpf, otypes=[object])(ct) if ct.ndim else mpmath.mpf(float(ct))
        return tuple(np.tensordot(ct_mp, np.asarray(j, dtype=object), axes=ct.ndim) if ct.ndim
                     else np.asarray(j, dtype=object) * ct_mp for j in jacs)


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
               name: str | None = None) -> Report:
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

    Returns:
        A :class:`Report`; ``report.ok`` says whether every backend agrees.

    Example:
        >>> import diffkit as dk
        >>> report = dk.crosscheck("sin(x)*exp(y)", args=(1.0, 2.0), op="grad", argnums=(0, 1))
        >>> report.ok, report.reference.kind
        (True, 'symbolic (mpmath, 50 digits)')
        >>> sorted(r.backend for r in report.rows)
        ['forward', 'numeric', 'reverse', 'symbolic']
    """
    from ..backends import get_backend

    if op not in OPS:
        raise InvalidArgument(f"crosscheck: op must be one of {', '.join(OPS)}, got {op!r}")
    F = as_function(f)
    if name:
        F = Function(F, name=name)
    if op == "derivative" and len(args) != 1:
        raise InvalidArgument(f"crosscheck of {F.name}: op='derivative' takes a function of one scalar; "
                              f"{len(args)} arguments given (use op='grad' with argnums)")
    # NumPy scalars and arrays in the arguments' own floating dtype (float32 stays float32)
    args = [np.asarray(a, dtype=np.asarray(a).dtype if np.asarray(a).dtype.kind == "f" else np.float64)
            for a in args]
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
    f_time, _, _ = _time(lambda: F(*args), min(time_budget, 0.05))
    ref = reference(F, args, op, argnums, order, tangents, cotangent)
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
    for b in (backends if backends is not None else all_backends()):
        be = get_backend(b)
        rows.append(_check_backend(F, be, op, args, argnums, order, tangents, cotangent, ref, kinks, dtype,
                                   rtol, atol, time_budget, labels, deriv_scale))
    shape = list(out_shape) if op in ("jvp",) else []
    return Report(F.name, op, [argnums] if isinstance(argnums, (int, np.integer)) else list(argnums),
                  [np.asarray(a).tolist() for a in args], shape, labels, ref, rows, kinks, f_time, F.source)


def _check_backend(F: Function, be: Any, op: str, args: list[Any], argnums: Any, order: int, tangents: Any,
                   cotangent: Any, ref: Reference, kinks: list[str], dtype: Any, rtol: Any, atol: Any,
                   budget: float, labels: list[str], deriv_scale: float = 0.0) -> Row:
    row = Row(be.name, "ok")
    fn = _operator(F, op, be, argnums, order, tangents, cotangent)
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
        if kinks or _is_size_limit(e):
            row.verdict = "unsupported" if _is_size_limit(e) else "convention"
        else:
            row.verdict, row.cause = "error", "likely bug"
        row.message = f"{type(e).__name__}: {_one_line(e)}"
        return row
    row.value = value.tolist()
    if ref.value is None:
        if "forward and reverse disagree" in ref.note and be.name in ("forward", "reverse"):
            # no reference *because* the two AD backends disagree: that is a failure to report
            row.verdict, row.cause = "fail", ("convention" if kinks else "likely bug")
            row.message = f"{op} of {F.name}: forward and reverse disagree and SymPy cannot trace the function"
            if kinks:
                row.verdict = "convention"
        else:
            row.verdict, row.message = "ok", "no reference: the value is reported, not judged"
        return row
    if value.shape != ref.value.shape:
        row.verdict, row.cause = "fail", "likely bug"
        row.message = f"shape {value.shape} differs from the reference's {ref.value.shape}"
        return row
    tol, r, a = _tolerance(be.name, ref.value, estimate, dtype, rtol, atol, deriv_scale)
    row.rtol, row.atol = r, a
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.abs(value - ref.value)
        bad = ~(err <= tol)  # NaN counts as bad
        ratio = np.where(tol > 0, err / tol, np.inf)
    finite_err = err[np.isfinite(err)]
    row.abs_error = float(np.max(finite_err, initial=0.0)) if finite_err.size else math.inf
    nz = np.abs(ref.value) > 0
    row.rel_error = float(np.max(err[nz] / np.abs(ref.value[nz]), initial=0.0)) if nz.any() else row.abs_error
    row.tol_ratio = float(np.max(np.where(np.isnan(ratio), np.inf, ratio), initial=0.0))
    if not bad.any():
        return row
    i = int(np.argmax(np.where(bad, np.where(np.isnan(ratio), np.inf, ratio), -1.0)))
    row.worst_index = i
    if not np.isfinite(value[i]) or not np.isfinite(ref.value[i]):
        cause = "domain"
    elif kinks:
        cause = "convention"
    elif be.name == "numeric":
        cause = _numeric_cause(F, op, args, argnums, order, tangents, cotangent, ref.value,
                               result.step if result is not None else None)
    else:
        cause = "likely bug"
    row.cause = cause
    row.verdict = "convention" if cause == "convention" else "fail"
    row.message = _mismatch_message(F, op, be.name, i, value, ref.value, err, tol, dtype, result, cause, kinks,
                                    labels)
    return row


def _is_size_limit(e: BaseException) -> bool:
    return isinstance(e, SizeLimitError)


def _one_line(e: BaseException) -> str:
    return str(e).splitlines()[0][:400] if str(e) else type(e).__name__


def _mismatch_message(F: Function, op: str, backend: str, i: int, value: np.ndarray, ref: np.ndarray,
                      err: np.ndarray, tol: np.ndarray, dtype: Any, result: Any, cause: str,
                      kinks: list[str], labels: list[str]) -> str:
    how = f"{np.dtype(dtype).name}"
    if result is not None:
        step = np.asarray(result.step, dtype=float)
        h = float(np.ravel(step)[min(i, step.size - 1)]) if step.size else float("nan")
        how += f", {result.method}, h={h:.2g}"
    where = f"[{i}]" + (f" ({labels[i]})" if i < len(labels) else "")
    msg = (f"{op} of {F.name}: '{backend}' differs from the reference at {where}: {value[i]:.17g} vs "
           f"{ref[i]:.17g}, error {err[i]:.3g} > tol {tol[i]:.3g} ({how}); cause: {cause}")
    if cause == "convention":
        msg += f" (kink: {kinks[0]})"
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


