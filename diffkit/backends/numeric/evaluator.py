"""Evaluating the user's function at many points, and what is learnt about it.

:class:`_Evaluator` runs the function at rows of points in the flattened
space of the differentiated arguments, real or complex (through the probe),
batched over a leading axis when the function broadcasts that way. The facts
found out on the way (does it broadcast, why was complex step refused, does it
meet kinks) are kept per function object, weakly.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Hashable, Sequence

import numpy as np

from ...core.values import Value, pack
from ...errors import ShapeError, TracingError, UnsupportedOperation
from ..base import check_output
from .probe import _complex_call, _ProbeTrace, _Refused

_CHUNK = 1 << 22
"""Floats per batched call at most, so a batch never needs more than ~32 MB per array."""


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
                raise UnsupportedOperation(f"the numeric backend differentiates real arguments; argument {i} is "
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
        check_output(out, "numeric")  # None, a bool, an integer: no derivative, not a zero one
        arr = np.asarray(out)
        if arr.dtype.kind == "c":
            raise UnsupportedOperation("the numeric backend differentiates real-valued functions; the function "
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

    def kink_distance(self, U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per direction, how far (in units of t) ``x`` may move before a primitive reaches a kink,
        and whether ``x`` sits on a kink that moves along the direction.

        One probe evaluation per direction, to first order (the first direction
        alone first: a function that meets no primitive with a kink costs one
        evaluation, and is remembered and not probed again); inf where no kink
        is near or none can be measured. The distance counts kinks away from
        ``x`` only; one at ``x`` itself (a gap of exactly 0, ``abs`` at 0, the
        comparison of ``np.where(abs(r) <= d, ...)`` at ``|r| = d``) is the second
        array.
        """
        k = U.shape[0]
        far = np.full(k, np.inf)
        at = np.zeros(k, dtype=bool)
        if k == 0 or self.facts.get("kinks") is False:
            return far, at
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
            far[0], at[0] = first.kink[0] * h, first.at_kink[0]
            if met and k > 1:
                if self.facts.get("batch") is True:
                    rest = probe(Z[1:], k - 1)
                    far[1:], at[1:] = rest.kink * h, rest.at_kink
                else:
                    for r in range(1, k):
                        one = probe(Z[r], None)
                        far[r], at[r] = one.kink[0] * h, one.at_kink[0]
        except _Refused:  # the function does not run on probe values: nothing to measure
            met = False
            far[:] = np.inf
            at[:] = False
        self.facts["kinks"] = met
        return far, at

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
        known = self.vectorize is True or self.facts.get("batch") is True
        # finding out whether the function broadcasts costs one evaluation more than the batch:
        # for two points a loop is cheaper
        if (P >= 3 or (P == 2 and known)) and self.vectorize is not False and self.facts.get("batch", True):
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
