"""A reference where SymPy has none: the function in mpmath, differentiated numerically.

The function runs on 60-digit numbers through diffkit's dispatch (an
observing trace): each primitive is evaluated by its SymPy form on
high-precision SymPy floats, or, where it has none (``eigh``), by an mpmath
implementation. Derivatives come from :func:`mpmath.diff` (differences with
steps far below float64's resolution, whose truncation and rounding errors
are both some 30 digits down), computed at two working precisions: their
difference bounds the error. No derivative rule of the table is read.

Example:
    >>> import numpy as np, diffkit as dk
    >>> F = dk.Function(lambda a: np.linalg.eigh(a)[0][-1])     # no SymPy form for eigh
    >>> a = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> flat, err = numeric_derivative(F, (a,), "grad", (0,))
    >>> [round(float(v), 12) for v in flat]      # eigh reads the lower triangle, as NumPy's
    [0.27639320225, 0.0, 0.894427191, 0.72360679775]
    >>> bool(float(max(err)) < 1e-25)
    True
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np
from ..core.lazy import sympy

from ..core.function import Function
from ..core.observe import ObservingTrace, Observed
from ..core.primitive import Primitive
from ..core.values import Value, pack
from ..errors import SizeLimitError, UnsupportedOperation

DPS = 60
"""Working digits; the second evaluation, for the error bound, uses ``DPS + 15``."""

BUDGET = 10.0
"""Seconds the reference may spend, estimated from one evaluation before it starts:
a differentiation costs a few evaluations per input element (per pair for a Hessian)
in 60-digit arithmetic, hours for a network with thousands of weights."""


def _eigh_mp(a: Any) -> Any:
    """``eigh_packed`` in mpmath: eigenvalues (row 0) and eigenvectors (rows 1..n), ascending,
    each eigenvector's sign fixed (largest component positive). Like NumPy's default
    (``UPLO='L'``) it reads the lower triangle: the function as NumPy computes it."""
    import mpmath

    arr = np.asarray(a, dtype=object)
    n = arr.shape[-1]
    # the lower triangle mirrored (mpmath.eigsy reads the upper one)
    m = mpmath.matrix([[mpmath.mpf(arr[max(i, j), min(i, j)]) for j in range(n)] for i in range(n)])
    w, v = mpmath.eigsy(m)
    order = sorted(range(n), key=lambda k: w[k])
    out = np.empty((n + 1, n), dtype=object)
    for col, k in enumerate(order):
        out[0, col] = sympy.Float(w[k], mpmath.mp.dps)
        vec = [v[i, k] for i in range(n)]
        big = max(range(n), key=lambda i: abs(vec[i]))
        sign = -1 if vec[big] < 0 else 1
        for i in range(n):
            out[i + 1, col] = sympy.Float(sign * vec[i], mpmath.mp.dps)
    return out


def _svd_values_mp(a: Any) -> Any:
    """``svd_values`` in mpmath: the singular values of a matrix, descending, as NumPy's."""
    import mpmath

    arr = np.asarray(a, dtype=object)
    m = mpmath.matrix([[mpmath.mpf(v) for v in row] for row in arr])
    s = mpmath.svd_r(m, compute_uv=False)
    return np.array(sorted((sympy.Float(s[i], mpmath.mp.dps) for i in range(len(s))), reverse=True), dtype=object)


# Primitives without a SymPy form, in mpmath. Eigenvectors are defined up to sign:
# only functions invariant to it (eigenvalues, projectors) have a reference here.
MPMATH_FORMS: dict[str, Callable[..., Any]] = {"eigh_packed": _eigh_mp, "svd_values": _svd_values_mp}


class _MpValue(Observed):
    """A high-precision value: branches may follow it, but ``float()`` would lose its digits."""

    __slots__ = ()
    __float__ = Value.__float__


class _MpTrace(ObservingTrace):
    """Runs a function on high-precision SymPy floats (object arrays of them for arrays)."""

    backend_name = "mpmath reference"
    value_type = _MpValue

    def evaluate(self, prim: Primitive, vals: list[Any], traced: list[bool], params: dict[str, Any]) -> Any:
        if prim.sympy is not None:
            if prim.elementwise:
                return np.frompyfunc(prim.sympy, len(vals), 1)(*vals)
            return prim.sympy(*vals, **params)
        form = MPMATH_FORMS.get(prim.name)
        if form is None:
            raise UnsupportedOperation(f"numpy.{prim.name} has neither a SymPy form nor an mpmath one")
        return form(*vals, **params)


def _evaluate(F: Function, args: Sequence[Any], nums: Sequence[int], flat: Sequence[Any], dps: int) -> list[Any]:
    """``F`` with the arguments ``nums`` replaced by ``flat`` (mpmath numbers), as mpmath numbers.

    At mpmath's working precision when that is higher than ``dps``: :func:`mpmath.diff`
    raises it for its steps, which are below ``dps`` digits.
    """
    import mpmath

    dps = max(dps, mpmath.mp.dps)

    trace = _MpTrace()
    call = list(args)
    start = 0
    for i in nums:
        shape = np.shape(args[i])
        n = int(np.prod(shape, dtype=int))
        vals = [sympy.Float(v, dps) for v in flat[start:start + n]]
        call[i] = trace.value_type(trace, vals[0] if shape == () else np.array(vals, dtype=object).reshape(shape))
        start += n
    out = np.asarray(trace.unwrap(pack(F.fn(*call))), dtype=object)
    return [mpmath.mpf(sympy.Float(v, dps)) if not isinstance(v, mpmath.mpf) else v for v in out.ravel()]


class _Count(ObservingTrace):
    """Runs a function on its float64 values and counts its scalar operations."""

    backend_name = "operation count"

    def __init__(self) -> None:
        super().__init__()
        self.operations = 0

    def evaluate(self, prim: Primitive, vals: list[Any], traced: list[bool], params: dict[str, Any]) -> Any:
        out = prim.numpy(*vals, **params)
        sizes = [int(np.size(v)) for v in vals]
        inner = int(np.shape(vals[0])[-1]) if prim.name in ("matmul", "dot") and np.ndim(vals[0]) else 1
        self.operations += max([int(np.size(out)) * inner, *sizes])
        return out


PER_OPERATION = 2e-5
"""Seconds a scalar operation takes at least on 60-digit SymPy floats: with the
count of :class:`_Count`, a lower bound of one evaluation's time known before any."""


def evaluations(op: str, n: int, order: int = 1) -> int:
    """How many evaluations :func:`mpmath.diff` makes for ``op`` in ``n`` variables, at one
    precision: central differences, two points per first partial, three for a second
    one in a single variable, four for a mixed one."""
    if op in ("grad", "jacobian"):
        return 2 * n
    if op == "hessian":
        return 3 * n + 4 * n * (n - 1) // 2
    return order + 1


def numeric_derivative(F: Function, args: Sequence[Any], op: str, nums: Sequence[int],
                       order: int = 1, budget: float = BUDGET) -> tuple[list[Any], np.ndarray]:
    """The derivative of ``F`` at ``args`` in mpmath, flat in the operator's order, and an
    error bound per element (the difference of two working precisions, times 10).

    Raises :class:`~diffkit.errors.SizeLimitError` before the work when one evaluation
    times the evaluations needed (:func:`evaluations`, at two precisions) exceeds
    ``budget`` seconds.
    """
    import mpmath

    point = [float(v) for i in nums for v in np.ravel(np.asarray(args[i], dtype=float))]
    n = len(point)
    count = 2 * evaluations(op, n, order)

    def refuse_over_budget(once: float, at_least: str) -> None:
        if once * count > budget:
            raise SizeLimitError(
                f"{at_least}{once * count:,.0f} s over mp_numeric.BUDGET = {budget:g} s: "
                f"{count:,} evaluations of {F.name} in {DPS} digits ({op} in {n:,} variables)")

    counter = _Count()
    counter.run(F.fn, list(args))
    refuse_over_budget(counter.operations * PER_OPERATION, "at least ")
    with mpmath.workdps(DPS):
        start = time.perf_counter()
        _evaluate(F, args, nums, [mpmath.mpf(v) for v in point], DPS)
        refuse_over_budget(time.perf_counter() - start, "about ")

    def derivs(dps: int) -> list[Any]:
        with mpmath.workdps(dps):
            x0 = [mpmath.mpf(v) for v in point]
            cache: dict[tuple[Any, ...], list[Any]] = {}

            def f(*xs: Any) -> list[Any]:
                key = (mpmath.mp.prec,) + tuple(xs)  # a value at lower precision would spoil a difference
                if key not in cache:
                    cache[key] = _evaluate(F, args, nums, xs, dps)
                return cache[key]

            m = len(f(*x0))

            def partial(k: int, orders: tuple[int, ...]) -> Any:
                return mpmath.diff(lambda *xs: f(*xs)[k], x0, orders)

            def unit(*ks: int) -> tuple[int, ...]:
                o = [0] * n
                for k in ks:
                    o[k] += 1
                return tuple(o)

            if op in ("grad", "jacobian"):
                return [partial(k, unit(c)) for k in range(m) for c in range(n)]
            if op == "hessian":
                return [partial(0, unit(r, c)) for r in range(n) for c in range(n)]
            if op == "derivative":
                return [partial(0, (order,))]
            raise UnsupportedOperation(f"mpmath reference of op {op!r}")

    first = derivs(DPS)
    second = derivs(DPS + 15)
    with mpmath.workdps(DPS):
        err = np.array([float(10 * abs(a - b)) for a, b in zip(first, second)])
    return _regroup(second, op, args, nums), _regroup_array(err, op, args, nums)


def _regroup(flat: list[Any], op: str, args: Sequence[Any], nums: Sequence[int]) -> list[Any]:
    """From (out element, input element) order to the operators' per-argument blocks."""
    if op not in ("grad", "jacobian") or len(nums) == 1:
        if op == "hessian" and len(nums) > 1:
            return _hessian_blocks(flat, args, nums)
        return list(flat)
    sizes = [int(np.size(args[i])) for i in nums]
    n = sum(sizes)
    m = len(flat) // n
    mat = np.array(flat, dtype=object).reshape(m, n)
    out: list[Any] = []
    start = 0
    for s in sizes:
        out.extend(mat[:, start:start + s].ravel().tolist())
        start += s
    return out


def _hessian_blocks(flat: list[Any], args: Sequence[Any], nums: Sequence[int]) -> list[Any]:
    sizes = [int(np.size(args[i])) for i in nums]
    n = sum(sizes)
    mat = np.array(flat, dtype=object).reshape(n, n)
    bounds = np.cumsum([0] + sizes)
    out: list[Any] = []
    for r in range(len(sizes)):
        for c in range(len(sizes)):
            out.extend(mat[bounds[r]:bounds[r + 1], bounds[c]:bounds[c + 1]].ravel().tolist())
    return out


def _regroup_array(err: np.ndarray, op: str, args: Sequence[Any], nums: Sequence[int]) -> np.ndarray:
    return np.array([float(v) for v in _regroup(list(err), op, args, nums)])
