"""How each supported NumPy function is expressed in the primitive table.

Ufuncs map one-to-one to primitives. Other functions normalize their
arguments (axes to negative tuples, shapes resolved, indices expanded) and
bind a primitive, or are *composites*: a few lines of NumPy in terms of the
primitives (``mean`` is a ``sum`` divided by a count, ``clip`` a
``maximum`` then a ``minimum``), so they inherit the primitives' rules and
kink conventions on every backend.

Functions whose result is piecewise constant in the input (``argmax``,
``isclose``, ``zeros_like`` ...) run on the concrete values and return plain
arrays.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import numpy as np

from .core.values import (FUNCTION_HANDLERS, UFUNC_HANDLERS, Value, _numpy_name, bind, concrete, is_complex, pack,
                          register_foreign_ufuncs, register_function, register_index, register_reduce,
                          register_setitem, register_ufunc, shape_of, structure, ufunc_handler)
from .errors import InvalidArgument, TracingError, UnsupportedOperation
from .primitives import PRIMITIVES, P

# ---------------------------------------------------------------------------
# Ufuncs
# ---------------------------------------------------------------------------


def _ufunc_handler(prim: Any, name: str) -> Callable[..., Any]:
    return ufunc_handler(prim, f"numpy.{name}")


_OWN_HANDLER = frozenset({"conj"})
"""Ufunc primitives with a handler of their own below (np.conjugate of a real value is the value)."""

for _prim in PRIMITIVES.values():
    if _prim.name in _OWN_HANDLER:
        continue
    _ufunc = getattr(np, _prim.name, None)
    if isinstance(_ufunc, np.ufunc):
        register_ufunc(_ufunc, _ufunc_handler(_prim, _prim.name), _prim)
    for _alias in _prim.aliases:
        _u = getattr(np, _alias, None)
        if isinstance(_u, np.ufunc) and _u not in UFUNC_HANDLERS:
            register_ufunc(_u, _ufunc_handler(_prim, _alias), _prim)


def _scipy_ufunc(ufunc: Any) -> Any:
    """SciPy's special functions: their entries are defined (diffkit.scipy_special) the
    first time one of SciPy's ufuncs reaches the dispatch, so ``import diffkit`` never
    imports SciPy. A SciPy ufunc without an entry raises, naming ``scipy.special``."""
    import sys

    if "scipy.special" not in sys.modules:  # SciPy was never imported: the ufunc is not its
        return None
    from . import scipy_special

    return scipy_special.lookup(ufunc)


register_foreign_ufuncs(_scipy_ufunc)


def _scaled(factor: float) -> Callable[[Any], Any]:
    return lambda x: x * factor


def _conjugate(x: Any, **kwargs: Any) -> Any:
    if kwargs:
        raise UnsupportedOperation(f"numpy.conjugate with {', '.join(kwargs)}= is not supported on traced values")
    x = pack(x)
    return bind(P.conj, x) if is_complex(x) else x


for _u, _handler in {
    np.float_power: UFUNC_HANDLERS[np.power],
    np.conjugate: _conjugate,
    np.deg2rad: _scaled(math.pi / 180.0),
    np.radians: _scaled(math.pi / 180.0),
    np.rad2deg: _scaled(180.0 / math.pi),
    np.degrees: _scaled(180.0 / math.pi),
    np.matmul: lambda a, b, **kw: bind(P.matmul, a, b),
}.items():
    register_ufunc(_u, _handler)


def _reduce_handler(prim: Any) -> Callable[..., Any]:
    def handler(x: Any, axis: Any = 0, dtype: Any = None, keepdims: bool = False, **kw: Any) -> Any:
        if kw:
            raise UnsupportedOperation(f"ufunc.reduce with {', '.join(kw)}= on traced values; use np.sum, "
                                       "np.prod, np.max or np.min, which take where= and initial=")
        return _reduce(prim, x, axis, keepdims)

    return handler


def _nd(a: Any) -> int:
    """``np.ndim`` without a trip through NumPy's dispatch for traced values and arrays."""
    return len(_shape_of(a))


def _shape_of(a: Any) -> tuple[int, ...]:
    return a.shape if isinstance(a, Value) else shape_of(a)


def _reduce(prim: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    x = pack(x)
    return bind(prim, x, axis=_axes(axis, _nd(x)), keepdims=bool(keepdims))


for _u, _prim in ((np.add, P.sum), (np.multiply, P.prod), (np.maximum, P.max), (np.minimum, P.min)):
    register_reduce(_u, _reduce_handler(_prim))

# ---------------------------------------------------------------------------
# Argument normalization
# ---------------------------------------------------------------------------


def _axes(axis: Any, nd: int) -> tuple[int, ...]:
    """Reduction axes as a sorted tuple of negative integers."""
    if axis is None:
        return tuple(range(-nd, 0))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    out = []
    for a in axis:
        a = int(a)
        if not -nd <= a < nd:
            raise np.exceptions.AxisError(a, nd)
        out.append(a - nd if a >= 0 else a)
    return tuple(sorted(out))


def _axis(axis: int, nd: int) -> int:
    return _axes(axis, nd)[0]


def _register(*funcs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(handler: Callable[..., Any]) -> Callable[..., Any]:
        for f in funcs:
            register_function(f, handler)
        return handler

    return deco


def _no_out(out: Any, name: str) -> None:
    if out is not None:
        raise TracingError(f"numpy.{name}(..., out=...) writes in place; traced values are immutable")


# ---------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------


_NOTHING = object()


def _masked(a: Any, where: Any, fill: float) -> Any:
    """``a`` with the entries outside ``where`` replaced by the reduction's identity."""
    if where is _NOTHING or where is True:
        return pack(a)
    return np.where(concrete(where), pack(a), fill)


@_register(np.sum)
def _sum(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False,
         initial: Any = _NOTHING, where: Any = _NOTHING) -> Any:
    _no_out(out, "sum")
    total = _reduce(P.sum, _masked(a, where, 0.0), axis, keepdims)
    return total if initial is _NOTHING else total + initial


@_register(np.prod)
def _prod(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False,
          initial: Any = _NOTHING, where: Any = _NOTHING) -> Any:
    _no_out(out, "prod")
    total = _reduce(P.prod, _masked(a, where, 1.0), axis, keepdims)
    return total if initial is _NOTHING else total * initial


@_register(np.max, np.amax)
def _max(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False, initial: Any = _NOTHING,
         where: Any = _NOTHING) -> Any:
    _no_out(out, "max")
    m = _reduce(P.max, _masked(a, where, -np.inf), axis, keepdims)
    return m if initial is _NOTHING else bind(P.maximum, m, initial)


@_register(np.min, np.amin)
def _min(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False, initial: Any = _NOTHING,
         where: Any = _NOTHING) -> Any:
    _no_out(out, "min")
    m = _reduce(P.min, _masked(a, where, np.inf), axis, keepdims)
    return m if initial is _NOTHING else bind(P.minimum, m, initial)


def _count(a: Any, axis: Any) -> int:
    shape = np.shape(a)
    return int(np.prod([shape[i] for i in _axes(axis, len(shape))], dtype=np.int64))


@_register(np.mean)
def _mean(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False,
          where: Any = _NOTHING) -> Any:
    _no_out(out, "mean")
    a = pack(a)
    if where is not _NOTHING and where is not True:
        mask = np.broadcast_to(concrete(where), np.shape(a))
        return _sum(a, axis=axis, keepdims=keepdims, where=mask) / np.sum(mask, axis=axis, keepdims=keepdims)
    return _sum(a, axis=axis, keepdims=keepdims) / _count(a, axis)


@_register(np.var)
def _var(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, ddof: int = 0,
         keepdims: bool = False, **kw: Any) -> Any:
    _no_out(out, "var")
    a = pack(a)
    d = a - _mean(a, axis=axis, keepdims=True)
    return _sum(d * d, axis=axis, keepdims=keepdims) / (_count(a, axis) - ddof)


@_register(np.std)
def _std(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, ddof: int = 0,
         keepdims: bool = False, **kw: Any) -> Any:
    return np.sqrt(_var(a, axis=axis, out=out, ddof=ddof, keepdims=keepdims))


@_register(np.cumsum)
def _cumsum(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
    _no_out(out, "cumsum")
    a = pack(a)
    if axis is None:
        a, axis = _ravel(a), -1
    return bind(P.cumsum, a, axis=_axis(axis, int(np.ndim(a))))


# ---------------------------------------------------------------------------
# Shape and structure
# ---------------------------------------------------------------------------


def _resolve_shape(shape: Any, size: int) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    shape = tuple(int(s) for s in shape)
    if -1 in shape:
        known = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
        shape = tuple(size // known if s == -1 else s for s in shape)
    if int(np.prod(shape, dtype=np.int64)) != size:
        raise InvalidArgument(f"cannot reshape an array of size {size} into shape {shape}")
    return shape


@_register(np.reshape)
def _reshape(a: Any, shape: Any = None, order: str = "C", *, newshape: Any = None, **kw: Any) -> Any:
    a = pack(a)
    if order != "C":
        raise UnsupportedOperation(f"numpy.reshape(order={order!r}) on traced values; only 'C'")
    ashape = _shape_of(a)
    shape = _resolve_shape(shape if shape is not None else newshape, int(np.prod(ashape, dtype=np.int64)))
    if shape == ashape:
        return a
    return bind(P.reshape, a, shape=shape)


def concrete_shape_holder(a: Any) -> Any:
    """An object with ``a``'s shape, for size arithmetic (no data copied)."""
    return np.broadcast_to(np.empty(()), np.shape(a))


@_register(np.ravel)
def _ravel(a: Any, order: str = "C") -> Any:
    return _reshape(a, (-1,), order)


@_register(np.transpose)
def _transpose(a: Any, axes: Any = None) -> Any:
    a = pack(a)
    nd = _nd(a)
    axes = tuple(range(nd))[::-1] if axes is None else tuple(int(x) % nd for x in axes)
    if axes == tuple(range(nd)):
        return a
    return bind(P.transpose, a, axes=axes)


@_register(np.swapaxes)
def _swapaxes(a: Any, axis1: int, axis2: int) -> Any:
    nd = int(np.ndim(a))
    perm = list(range(nd))
    perm[axis1 % nd], perm[axis2 % nd] = perm[axis2 % nd], perm[axis1 % nd]
    return _transpose(a, perm)


@_register(np.moveaxis)
def _moveaxis(a: Any, source: Any, destination: Any) -> Any:
    nd = int(np.ndim(a))
    src = [int(s) % nd for s in np.atleast_1d(source)]
    dst = [int(d) % nd for d in np.atleast_1d(destination)]
    order = [i for i in range(nd) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return _transpose(a, order)


@_register(np.squeeze)
def _squeeze(a: Any, axis: Any = None) -> Any:
    shape = np.shape(a)
    if axis is None:
        drop = {i for i, s in enumerate(shape) if s == 1}
    else:
        drop = {a_ % len(shape) for a_ in np.atleast_1d(axis)}
    return _reshape(a, tuple(s for i, s in enumerate(shape) if i not in drop))


@_register(np.expand_dims)
def _expand_dims(a: Any, axis: Any) -> Any:
    shape = list(np.shape(a))
    axes = sorted(int(x) % (len(shape) + len(np.atleast_1d(axis))) for x in np.atleast_1d(axis))
    for ax in axes:
        shape.insert(ax, 1)
    return _reshape(a, tuple(shape))


@_register(np.atleast_1d)
def _atleast_1d(*arys: Any) -> Any:
    res = [_reshape(a, (1,)) if np.ndim(a) == 0 else a for a in arys]
    return res[0] if len(res) == 1 else res


@_register(np.atleast_2d)
def _atleast_2d(*arys: Any) -> Any:
    res = [_reshape(a, (1,) * (2 - int(np.ndim(a))) + np.shape(a)) if np.ndim(a) < 2 else a for a in arys]
    return res[0] if len(res) == 1 else res


@_register(np.broadcast_to)
def _broadcast_to(a: Any, shape: Any, subok: bool = False) -> Any:
    a = pack(a)
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    if shape == np.shape(a):
        return a
    return bind(P.broadcast_to, a, shape=shape)


def _arrays(seq: Any) -> list[Any]:
    if isinstance(seq, Value) or (isinstance(seq, np.ndarray) and seq.dtype != object):
        return [seq[i] for i in range(len(seq))]
    return [pack(x) for x in seq]


@_register(np.concatenate)
def _concatenate(arrays: Any, axis: Any = 0, out: Any = None, **kw: Any) -> Any:
    _no_out(out, "concatenate")
    xs = _arrays(arrays)
    if axis is None:
        xs, axis = [_ravel(x) for x in xs], 0
    return bind(P.concatenate, *xs, axis=_axis(axis, int(np.ndim(xs[0]))))


@_register(np.stack)
def _stack(arrays: Any, axis: int = 0, out: Any = None, **kw: Any) -> Any:
    _no_out(out, "stack")
    xs = _arrays(arrays)
    return bind(P.stack, *xs, axis=_axis(axis, int(np.ndim(xs[0])) + 1))


@_register(np.hstack)
def _hstack(tup: Any, **kw: Any) -> Any:
    xs = [_atleast_1d(x) for x in _arrays(tup)]
    return _concatenate(xs, axis=0 if np.ndim(xs[0]) == 1 else 1)


@_register(np.vstack)
def _vstack(tup: Any, **kw: Any) -> Any:
    return _concatenate([_atleast_2d(x) for x in _arrays(tup)], axis=0)


@_register(np.column_stack)
def _column_stack(tup: Any) -> Any:
    xs = [_reshape(x, (-1, 1)) if np.ndim(x) < 2 else x for x in _arrays(tup)]
    return _concatenate(xs, axis=1)


@_register(np.append)
def _append(arr: Any, values: Any, axis: Any = None) -> Any:
    arr, values = pack(arr), pack(values)
    if axis is None:
        return _concatenate([_ravel(arr), _ravel(values)], axis=0)
    return _concatenate([arr, values], axis=axis)


def _normalize_index(idx: Any, nd: int) -> tuple[Any, ...]:
    if not isinstance(idx, tuple):
        idx = (idx,)
    for i in idx:  # fast path: slices and integers need no work
        if type(i) is not slice and type(i) is not int:
            break
    else:
        return idx
    out: list[Any] = []
    for i in idx:
        if isinstance(i, Value) and i.dtype.kind in "bi":
            i = concrete(i)  # a mask or index computed from the values (the compiled backend's
            # comparisons are traced): its number, which makes that trace hold at this point only
        if isinstance(i, Value):
            raise TracingError("an index cannot be a traced value: keep indices independent of "
                               "differentiated values")
        if isinstance(i, list) or (isinstance(i, np.ndarray) and i.ndim > 0):
            i = np.asarray(i)
            if i.dtype == object:
                raise TracingError("an index array cannot hold traced values")
        out.append(i)
    consumed = sum(1 if not (isinstance(i, np.ndarray) and i.dtype == bool) else i.ndim
                   for i in out if i is not None and i is not Ellipsis)
    if Ellipsis in [i for i in out if not isinstance(i, np.ndarray)]:
        k = [j for j, i in enumerate(out) if not isinstance(i, np.ndarray) and i is Ellipsis][0]
        out[k:k + 1] = [slice(None)] * (nd - consumed)
    return tuple(out)


def getitem(x: Any, idx: Any) -> Any:
    """``x[idx]`` for a traced ``x``: basic and advanced indexing, with Ellipsis expanded."""
    return bind(P.getitem, x, idx=_normalize_index(idx, x.ndim if isinstance(x, Value) else np.ndim(x)))


register_index(getitem)


def setitem(x: Any, idx: Any, value: Any) -> Any:
    """``x`` with ``value`` written at ``idx``: what ``x[idx] = value`` on a traced ``x`` records.

    Positions written twice (a repeated index in an index array) are refused: NumPy keeps
    the last write, whose derivative is not the sum the rules give.
    """
    nd = x.ndim
    norm = _normalize_index(idx, nd)
    if any(isinstance(i, np.ndarray) and i.dtype != bool for i in norm):
        shape = x.shape
        positions = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)[norm]
        if np.unique(positions).size != positions.size:
            raise InvalidArgument(f"x[idx] = v on a traced array writes a position twice (idx={idx!r}); "
                                  "write each position once")
    return bind(P.index_update, x, value, idx=norm)


register_setitem(setitem)


@_register(np.flip)
def _flip(m: Any, axis: Any = None) -> Any:
    nd = int(np.ndim(m))
    axes = set(range(nd)) if axis is None else {int(a) % nd for a in np.atleast_1d(axis)}
    return getitem(m, tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(nd)))


@_register(np.take)
def _take(a: Any, indices: Any, axis: Any = None, **kw: Any) -> Any:
    if axis is None:
        return getitem(_ravel(a), np.asarray(indices))
    nd = int(np.ndim(a))
    return getitem(a, (slice(None),) * (int(axis) % nd) + (np.asarray(indices),))


@_register(np.diff)
def _diff(a: Any, n: int = 1, axis: int = -1, **kw: Any) -> Any:
    for _ in range(n):
        nd = int(np.ndim(a))
        ax = int(axis) % nd
        lead = (slice(None),) * ax
        a = getitem(a, lead + (slice(1, None),)) - getitem(a, lead + (slice(None, -1),))
    return a


@_register(np.diagonal)
def _diagonal(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    a = pack(a)
    nd = _nd(a)
    if nd < 2:
        raise InvalidArgument("diag requires an array of at least two dimensions")
    if int(axis1) % nd == int(axis2) % nd:
        raise InvalidArgument("axis1 and axis2 cannot be the same")
    if (int(axis1) % nd, int(axis2) % nd) != (nd - 2, nd - 1):
        a = _moveaxis(a, (axis1, axis2), (-2, -1))
    n, m = _shape_of(a)[-2:]
    i = np.arange(max(0, -offset), max(0, min(n, m - offset)))
    return getitem(a, (Ellipsis, i, i + offset))


@_register(np.trace)
def _trace(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1, **kw: Any) -> Any:
    return _sum(_diagonal(a, offset, axis1, axis2), axis=-1)


@_register(np.diag)
def _diag(v: Any, k: int = 0) -> Any:
    if np.ndim(v) == 2:
        return _diagonal(v, k)
    if np.ndim(v) != 1:
        raise InvalidArgument("Input must be 1- or 2-d.")
    m = _reshape(v, (-1, 1)) * np.eye(np.shape(v)[0])
    k = int(k)
    if k == 0:
        return m
    return _pad(m, ((0, k), (k, 0)) if k > 0 else ((-k, 0), (0, -k)))


@_register(np.tril)
def _tril(m: Any, k: int = 0) -> Any:
    return m * np.tril(np.ones(np.shape(m)[-2:]), k)


@_register(np.triu)
def _triu(m: Any, k: int = 0) -> Any:
    return m * np.triu(np.ones(np.shape(m)[-2:]), k)


@_register(np.sort)
def _sort(a: Any, axis: Any = -1, **kw: Any) -> Any:
    a = pack(a)
    _refuse_symbolic_order(a, "sort")
    if axis is None:
        a, axis = _ravel(a), -1
    order = np.argsort(concrete(a), axis=axis)
    return _take_along_axis(a, order, axis)


@_register(np.take_along_axis)
def _take_along_axis(arr: Any, indices: Any, axis: Any) -> Any:
    shape = np.shape(arr)
    ax = int(axis) % len(shape)
    grid = list(np.ogrid[tuple(slice(n) for n in np.shape(indices))])
    grid[ax] = np.asarray(indices)
    return getitem(arr, tuple(grid))


# ---------------------------------------------------------------------------
# Selection and kinks
# ---------------------------------------------------------------------------


@_register(np.where)
def _where(condition: Any, x: Any = None, y: Any = None) -> Any:
    if x is None and y is None:
        return np.where(concrete(condition))
    # On the AD backends the condition is already concrete (comparisons are);
    # on the symbolic backend it is a relational, and where becomes a Piecewise.
    return bind(P.where, condition, x, y)


@_register(np.clip)
def _clip(a: Any, a_min: Any = None, a_max: Any = None, out: Any = None, **kw: Any) -> Any:
    # A maximum then a minimum: at a bound the derivative is 1/2, a tie (API §7).
    _no_out(out, "clip")
    a_min = kw.pop("min", a_min)
    a_max = kw.pop("max", a_max)
    if a_min is not None:
        a = bind(P.maximum, a, a_min)
    if a_max is not None:
        a = bind(P.minimum, a, a_max)
    return a


# ---------------------------------------------------------------------------
# Products and linear algebra
# ---------------------------------------------------------------------------


@_register(np.dot)
def _dot(a: Any, b: Any, out: Any = None) -> Any:
    _no_out(out, "dot")
    a, b = pack(a), pack(b)
    na, nb = int(np.ndim(a)), int(np.ndim(b))
    if na == 0 or nb == 0:
        return a * b
    if na <= 2 and nb <= 2:
        return bind(P.matmul, a, b)
    return _tensordot(a, b, axes=([na - 1], [max(nb - 2, 0)]))


@_register(np.vdot)
def _vdot(a: Any, b: Any) -> Any:
    return _dot(_ravel(a), _ravel(b))


@_register(np.inner)
def _inner(a: Any, b: Any) -> Any:
    a, b = pack(a), pack(b)
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        return a * b
    return _tensordot(a, b, axes=([-1], [-1]))


@_register(np.outer)
def _outer(a: Any, b: Any, out: Any = None) -> Any:
    _no_out(out, "outer")
    return _reshape(pack(a), (-1, 1)) * _reshape(pack(b), (1, -1))


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@_register(np.tensordot)
def _tensordot(a: Any, b: Any, axes: Any = 2) -> Any:
    a, b = pack(a), pack(b)
    na, nb = int(np.ndim(a)), int(np.ndim(b))
    if isinstance(axes, (int, np.integer)):
        ax_a, ax_b = list(range(na - int(axes), na)), list(range(int(axes)))
    else:
        ax_a = [int(i) % na for i in np.atleast_1d(axes[0])]
        ax_b = [int(i) % nb for i in np.atleast_1d(axes[1])]
    sa = list(_LETTERS[:na])
    sb = list(_LETTERS[na:na + nb])
    for i, j in zip(ax_a, ax_b):
        sb[j] = sa[i]
    res = [c for k, c in enumerate(sa) if k not in ax_a] + [c for k, c in enumerate(sb) if k not in ax_b]
    return bind(P.einsum, a, b, subscripts=f"{''.join(sa)},{''.join(sb)}->{''.join(res)}")


@_register(np.einsum)
def _einsum(subscripts: Any, *operands: Any, out: Any = None, optimize: Any = False, **kw: Any) -> Any:
    _no_out(out, "einsum")
    if not isinstance(subscripts, str):
        raise UnsupportedOperation("numpy.einsum on traced values takes a subscripts string")
    ops = [pack(o) for o in operands]
    spec = _einsum_explicit(subscripts, [int(np.ndim(o)) for o in ops])
    ins, res = spec.split("->")
    parts = ins.split(",")
    for k, part in enumerate(parts):
        while len(set(part)) != len(part):  # a repeated index: take that diagonal first
            c = next(c for c in part if part.count(c) > 1)
            i, j = part.index(c), part.index(c, part.index(c) + 1)
            ops[k] = _diagonal(ops[k], 0, i, j)  # the diagonal axis goes last
            part = "".join(x for n, x in enumerate(part) if n not in (i, j)) + c
        parts[k] = part
    return bind(P.einsum, *ops, subscripts=",".join(parts) + "->" + res)


def _einsum_explicit(subscripts: str, ndims: list[int]) -> str:
    """Subscripts with '...' written out as letters and the output made explicit (NumPy's rules)."""
    spec = subscripts.replace(" ", "")
    ins, arrow, res = spec.partition("->")
    parts = ins.split(",")
    if len(parts) != len(ndims):
        raise InvalidArgument(f"numpy.einsum('{subscripts}'): {len(parts)} operands in the subscripts, "
                         f"{len(ndims)} given")
    used = set(spec) - {".", ",", "-", ">"}
    free = [c for c in _LETTERS if c not in used]
    n_ell = max((nd - len(p.replace("...", "")) for p, nd in zip(parts, ndims) if "..." in p), default=0)
    ell = "".join(free[:n_ell])
    parts = [p.replace("...", ell[n_ell - (nd - len(p.replace("...", ""))):]) if "..." in p else p
             for p, nd in zip(parts, ndims)]
    if arrow:
        res = res.replace("...", ell)
    else:
        counts = {c: "".join(parts).count(c) for c in "".join(parts)}
        res = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    return ",".join(parts) + "->" + res


@_register(np.linalg.inv)
def _inv(a: Any) -> Any:
    return bind(P.inv, pack(a))


@_register(np.linalg.solve)
def _solve(a: Any, b: Any) -> Any:
    return bind(P.solve, pack(a), pack(b))


@_register(np.linalg.det)
def _det(a: Any) -> Any:
    return bind(P.det, pack(a))


class SlogdetResult(NamedTuple):
    """``numpy.linalg.slogdet``'s result: the sign is piecewise constant, only logabsdet is traced."""

    sign: Any
    logabsdet: Any


@_register(np.linalg.slogdet)
def _slogdet(a: Any) -> Any:
    a = pack(a)
    base = concrete(a)
    if np.asarray(base).dtype == object:  # symbolic: the sign is an expression too
        sign = np.sign(bind(P.det, a))
    else:
        sign = np.linalg.slogdet(base)[0]  # piecewise constant: no derivative
    return SlogdetResult(sign, bind(P.logabsdet, a))


@_register(np.linalg.cholesky)
def _cholesky(a: Any, **kw: Any) -> Any:
    if kw.get("upper"):
        return _swap_last(bind(P.cholesky, pack(a)))
    return bind(P.cholesky, pack(a))


def _swap_last(a: Any) -> Any:
    return _swapaxes(a, -1, -2)


@_register(np.linalg.eigh)
def _eigh(a: Any, UPLO: str = "L") -> Any:
    a = pack(a)
    if UPLO not in ("L", "U"):
        raise InvalidArgument("UPLO argument must be 'L' or 'U'")
    # NumPy reads one triangle: the upper one of a is the lower one of its transpose
    packed = bind(P.eigh_packed, _swap_last(a) if UPLO == "U" else a)
    w = getitem(packed, (Ellipsis, 0, slice(None)))
    v = getitem(packed, (Ellipsis, slice(1, None), slice(None)))
    return w, v


@_register(np.linalg.eigvalsh)
def _eigvalsh(a: Any, UPLO: str = "L") -> Any:
    return _eigh(a, UPLO)[0]


def _lower_symmetric(a: Any) -> Any:
    """The symmetric matrix of a's lower triangle: what NumPy's eigh-based paths
    (``hermitian=True``) read."""
    n = _shape_of(a)[-1]
    return a * np.tril(np.ones((n, n))) + _swap_last(a * np.tril(np.ones((n, n)), -1))


class SVDResult(NamedTuple):
    """``numpy.linalg.svd``'s result on traced values."""

    U: Any
    S: Any
    Vh: Any


class QRResult(NamedTuple):
    """``numpy.linalg.qr``'s result on traced values."""

    Q: Any
    R: Any


@_register(np.linalg.svd)
def _svd(a: Any, full_matrices: bool = True, compute_uv: bool = True, hermitian: bool = False) -> Any:
    a = pack(a)
    if _nd(a) < 2:
        raise InvalidArgument("numpy.linalg.svd needs an array of at least two dimensions")
    if not compute_uv:
        if hermitian:  # NumPy reads the lower triangle (through eigvalsh)
            a = _lower_symmetric(a)
        return bind(P.svd_values, a)
    if hermitian:
        raise UnsupportedOperation(
            "numpy.linalg.svd(hermitian=True) of a traced matrix: NumPy builds U and Vh from eigh's "
            "eigenvectors, with other signs than the SVD's; use np.linalg.eigh, or hermitian=False")
    m, n = _shape_of(a)[-2:]
    if full_matrices and m != n:
        raise UnsupportedOperation(
            "numpy.linalg.svd(full_matrices=True) of a non-square traced matrix: the completion of U or "
            "V beyond min(m, n) columns is arbitrary and has no derivative; pass full_matrices=False")
    packed = bind(P.svd_packed, a)
    u = _swap_last(getitem(packed, (Ellipsis, slice(None), slice(0, m))))
    s = getitem(packed, (Ellipsis, slice(None), m))
    vt = getitem(packed, (Ellipsis, slice(None), slice(m + 1, None)))
    return SVDResult(u, s, vt)


if hasattr(np.linalg, "svdvals"):
    register_function(np.linalg.svdvals, lambda x: bind(P.svd_values, pack(x)))


@_register(np.linalg.eigvals)
def _eigvals(a: Any) -> Any:
    return bind(P.eigvals, pack(a))


class EigResult(NamedTuple):
    """``numpy.linalg.eig``'s result on traced values."""

    eigenvalues: Any
    eigenvectors: Any


@_register(np.linalg.eig)
def _eig(a: Any) -> Any:
    a = pack(a)
    shape = _shape_of(a)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise InvalidArgument("numpy.linalg.eig needs a (stack of) square matrices")
    if np.asarray(concrete(a)).dtype == object:
        raise UnsupportedOperation("numpy.linalg.eig on the symbolic backend: its eigenvectors follow "
                                   "LAPACK's normalisation, which has no SymPy form")
    packed = bind(P.eig_packed, a)
    w = getitem(packed, (Ellipsis, 0, slice(None)))
    v = getitem(packed, (Ellipsis, slice(1, None), slice(None)))
    return EigResult(w, v)


_NO_RTOL = object()


@_register(np.linalg.pinv)
def _pinv(a: Any, rcond: Any = None, hermitian: bool = False, *, rtol: Any = _NO_RTOL) -> Any:
    a = pack(a)
    if is_complex(a):
        raise UnsupportedOperation("numpy.linalg.pinv of a complex traced matrix: the rules here are for "
                                   "real matrices")
    if hermitian:  # NumPy reads the lower triangle (through eigh): the symmetric matrix it sees
        a = _lower_symmetric(a)
    if rcond is None and rtol is _NO_RTOL:
        return bind(P.pinv, a)  # NumPy's default cutoff, 1e-15
    if rcond is not None and rtol is not _NO_RTOL:
        raise InvalidArgument("numpy.linalg.pinv: `rtol` and `rcond` can't be both set")
    if rcond is None:  # NumPy's rtol: None means max(m, n) * eps
        rcond = max(_shape_of(a)[-2:]) * np.finfo(float).eps if rtol is None else rtol
    if np.ndim(rcond) != 0:
        raise UnsupportedOperation("numpy.linalg.pinv of traced values: one scalar rcond=/rtol= only")
    if np.asarray(concrete(a)).dtype == object:
        raise UnsupportedOperation("numpy.linalg.pinv(rcond=/rtol=) on the symbolic backend: SymPy's pinv "
                                   "has no cutoff; use the default one")
    return bind(P.pinv_cut, a, rcond=float(rcond))


@_register(np.linalg.qr)
def _qr(a: Any, mode: str = "reduced") -> Any:
    a = pack(a)
    if _nd(a) < 2:
        raise InvalidArgument("numpy.linalg.qr needs an array of at least two dimensions")
    m, n = _shape_of(a)[-2:]
    if is_complex(a):
        raise UnsupportedOperation("numpy.linalg.qr of a complex traced matrix: the rules here are for "
                                   "real matrices")
    if mode not in ("reduced", "r") and not (mode == "complete" and m <= n):
        raise UnsupportedOperation(f"numpy.linalg.qr(mode={mode!r}) of a traced {m} x {n} matrix: "
                                   "'reduced' and 'r' (and 'complete' where m <= n, where it is 'reduced')")
    if np.asarray(concrete(a)).dtype == object:
        return _qr_householder(a, mode)
    packed = bind(P.qr_packed, a)
    if m < n:  # Q (m x m) and R (m x n) side by side
        q = getitem(packed, (Ellipsis, slice(None), slice(0, m)))
        r = getitem(packed, (Ellipsis, slice(None), slice(m, None)))
    else:
        q = getitem(packed, (Ellipsis, slice(0, m), slice(None)))
        r = getitem(packed, (Ellipsis, slice(m, None), slice(None)))
    return r if mode == "r" else QRResult(q, r)


def _qr_householder(a: Any, mode: str) -> Any:
    """QR of a traced matrix by LAPACK's own algorithm (geqrf's Householder reflections, dlarfg's
    sign: R_jj = -sign(alpha) * norm; where the column below is already zero NumPy's QR jumps), for
    the symbolic backend: the branches are Python control flow, so a trace at a point takes
    NumPy's and keeps them as guards."""
    if _nd(a) != 2:
        raise UnsupportedOperation("numpy.linalg.qr on the symbolic backend: one matrix at a time, not a stack")
    m, n = _shape_of(a)
    k = min(m, n)
    r, q = a, np.eye(m)
    for j in range(min(m - 1, n)):              # the last row needs no reflection (dlarfg with n = 1)
        col = getitem(r, (slice(j, None), j))
        alpha, below = getitem(col, 0), getitem(col, slice(1, None))
        xs = _sum(below * below)
        if not xs > 0:  # dlarfg: nothing below the diagonal, H = I; any perturbation reflects
            raise UnsupportedOperation(
                "numpy.linalg.qr: NumPy's factors jump here (a column already zero below the "
                "diagonal, as in a triangular matrix: LAPACK skips its reflection, any perturbation "
                "makes one and flips the signs of R's row and Q's column); no derivative")
        norm = np.sqrt(alpha * alpha + xs)
        beta = -norm if alpha >= 0 else norm
        v = np.concatenate([np.zeros(j), _reshape(alpha - beta, (1,)), below])
        vv = _sum(v * v)
        r = r - _outer(v, bind(P.matmul, v, r)) * (2 / vv)           # H r, H = I - 2 v v^T / v^T v
        q = q - _outer(bind(P.matmul, q, v), v) * (2 / vv)           # q H
    r = getitem(r, (slice(0, k), slice(None))) * np.triu(np.ones((k, n)))   # exact zeros below
    q = getitem(q, (slice(None), slice(0, k)))
    return r if mode == "r" else QRResult(q, r)


@_register(np.linalg.matrix_power)
def _matrix_power(a: Any, n: int) -> Any:
    a = pack(a)
    n = int(n)
    shape = _shape_of(a)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise InvalidArgument("numpy.linalg.matrix_power needs a (stack of) square matrices")
    if n == 0:
        return np.broadcast_to(np.eye(shape[-1], dtype=_real_dtype(a)), shape).copy()
    if n < 0:
        a, n = _inv(a), -n
    result = None
    base = a
    while n:  # binary powering, as NumPy
        if n & 1:
            result = base if result is None else bind(P.matmul, result, base)
        n >>= 1
        if n:
            base = bind(P.matmul, base, base)
    return result


class LstsqResult(NamedTuple):
    """``numpy.linalg.lstsq``'s result on traced values."""

    x: Any
    residuals: Any
    rank: Any
    s: Any


@_register(np.linalg.lstsq)
def _lstsq(a: Any, b: Any, rcond: Any = None) -> Any:
    a, b = pack(a), pack(b)
    if _nd(a) != 2:
        raise InvalidArgument("numpy.linalg.lstsq needs a 2-D coefficient matrix")
    m, n = _shape_of(a)
    base = concrete(a)
    if np.asarray(base).dtype == object:
        raise UnsupportedOperation("numpy.linalg.lstsq on the symbolic backend: use np.linalg.pinv(a) @ b")
    if rcond is None:  # NumPy's default: eps * max(m, n)
        rcond = np.finfo(float).eps * max(m, n)
    elif rcond < 0:    # LAPACK's gelsd: machine precision
        rcond = np.finfo(float).eps
    s = np.linalg.svd(base, compute_uv=False)
    rank = int(np.sum(s > rcond * np.max(s))) if s.size else 0   # LAPACK's gelsd: s <= rcond * s_max is 0
    # the minimum-norm least-squares solution at NumPy's cutoff; where it drops nothing, the
    # pseudo-inverse with NumPy's default cutoff is the same matrix (with second derivatives)
    dropped = s.size and np.any(s <= max(rcond, 1e-15) * np.max(s))
    x = bind(P.matmul, _pinv(a, rcond=rcond) if dropped else _pinv(a), b)
    if rank == n and m > n:
        r = b - bind(P.matmul, a, x)
        residuals = _sum(r * r, axis=0)
        if _nd(b) == 1:
            residuals = _reshape(residuals, (1,))
    else:
        residuals = np.zeros((0,), dtype=_real_dtype(a))
    return LstsqResult(x, residuals, rank, bind(P.svd_values, a))


def _matrix_norm(x: Any, ord: Any, axis: tuple[int, int]) -> Any:
    """The matrix norms of ``x`` over ``axis`` (a row axis, a column axis); None for other orders."""
    nd = _nd(x)
    row, col = int(axis[0]) % nd, int(axis[1]) % nd
    if ord in ("nuc", 2, -2):
        s = bind(P.svd_values, _moveaxis(x, (row, col), (-2, -1)))
        if ord == "nuc":
            return _sum(s, axis=-1)
        return getitem(s, (Ellipsis, 0 if ord == 2 else -1))
    if ord in (1, -1, np.inf, -np.inf):
        # 1: the largest column sum of |x| (a sum over the rows); inf: the largest row sum
        over, then = (row, col) if ord in (1, -1) else (col, row)
        sums = _sum(np.abs(x), axis=over)
        then = then - 1 if then > over else then
        return _max(sums, axis=then) if ord in (1, np.inf) else _min(sums, axis=then)
    return None


@_register(np.linalg.norm)
def _norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    x = pack(x)
    nd = int(np.ndim(x))
    vector = (axis is None and (nd == 1 or ord is None)) or isinstance(axis, (int, np.integer)) or (
        isinstance(axis, tuple) and len(axis) == 1)
    if vector or (ord in (None, "fro")):
        if ord in (None, 2, "fro"):
            return np.sqrt(_sum(x * x, axis=axis, keepdims=keepdims))
        if ord == 1:
            return _sum(np.abs(x), axis=axis, keepdims=keepdims)
        if ord == np.inf:
            return _max(np.abs(x), axis=axis, keepdims=keepdims)
        if ord == -np.inf:
            return _min(np.abs(x), axis=axis, keepdims=keepdims)
        if isinstance(ord, (int, float)) and ord > 0:
            return _sum(np.abs(x) ** ord, axis=axis, keepdims=keepdims) ** (1.0 / ord)
    if not vector and (axis is None or (isinstance(axis, tuple) and len(axis) == 2)):
        r = _matrix_norm(x, ord, (-2, -1) if axis is None else axis)
        if r is not None:
            if keepdims:
                ax = [int(i) % nd for i in ((-2, -1) if axis is None else axis)]
                r = _expand_dims(r, tuple(sorted(ax)))
            return r
    what = "a vector" if vector else "a matrix"
    raise UnsupportedOperation(f"numpy.linalg.norm(ord={ord!r}) of {what} on traced values; supported: "
                               "vector norms of order > 0 and inf/-inf; matrix norms 'fro', 'nuc', 1, -1, 2, -2, inf, -inf")


# ---------------------------------------------------------------------------
# More array manipulation (docs/numpy-coverage.md): compositions of reshape,
# broadcast_to, getitem and concatenate, exact on every backend
# ---------------------------------------------------------------------------


def _symbolic(a: Any) -> bool:
    """Whether ``a``'s concrete value is a SymPy object array (the symbolic backend's)."""
    return np.asarray(structure(pack(a))).dtype == object


@_register(np.tile)
def _tile(A: Any, reps: Any) -> Any:
    A = pack(A)
    reps = (int(reps),) if isinstance(reps, (int, np.integer)) else tuple(int(r) for r in reps)
    d = max(len(reps), _nd(A))
    shape = (1,) * (d - _nd(A)) + _shape_of(A)
    reps = (1,) * (d - len(reps)) + reps
    inter = tuple(x for s in shape for x in (1, s))
    wide = _broadcast_to(_reshape(A, inter), tuple(x for r, s in zip(reps, shape) for x in (r, s)))
    return _reshape(wide, tuple(r * s for r, s in zip(reps, shape)))


@_register(np.repeat)
def _repeat(a: Any, repeats: Any, axis: Any = None) -> Any:
    a = pack(a)
    if axis is None:
        a, axis = _ravel(a), 0
    n = _shape_of(a)[int(axis)]
    return _take(a, np.repeat(np.arange(n), concrete(repeats)), axis=axis)


@_register(np.roll)
def _roll(a: Any, shift: Any, axis: Any = None) -> Any:
    a = pack(a)
    if axis is None:
        return _reshape(_roll(_ravel(a), shift, 0), _shape_of(a))
    shifts = np.broadcast_to(np.atleast_1d(shift), np.atleast_1d(axis).shape)
    for s, ax in zip(shifts, np.atleast_1d(axis)):
        n = _shape_of(a)[int(ax)]
        a = _take(a, (np.arange(n) - int(s)) % n, axis=int(ax))
    return a


@_register(np.flipud)
def _flipud(m: Any) -> Any:
    return _flip(m, 0)


@_register(np.fliplr)
def _fliplr(m: Any) -> Any:
    return _flip(m, 1)


@_register(np.rot90)
def _rot90(m: Any, k: int = 1, axes: Any = (0, 1)) -> Any:
    m = pack(m)
    nd = _nd(m)
    a0, a1 = int(axes[0]) % nd, int(axes[1]) % nd
    k = int(k) % 4
    if k == 0:
        return m
    if k == 2:
        return _flip(_flip(m, a0), a1)
    perm = list(range(nd))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    return _transpose(_flip(m, a1), perm) if k == 1 else _flip(_transpose(m, perm), a1)


@_register(np.array_split)
def _array_split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
    ary = pack(ary)
    nd = _nd(ary)
    ax = int(axis) % nd
    total = _shape_of(ary)[ax]
    if isinstance(indices_or_sections, (int, np.integer)):
        sections = int(indices_or_sections)
        if sections <= 0:
            raise InvalidArgument("number sections must be larger than 0.")
        each, extras = divmod(total, sections)
        sizes = [0] + extras * [each + 1] + (sections - extras) * [each]
        points = np.cumsum(sizes).tolist()
    else:
        points = [0] + [int(i) for i in indices_or_sections] + [total]
    lead = (slice(None),) * ax
    return [getitem(ary, lead + (slice(points[i], points[i + 1]),)) for i in range(len(points) - 1)]


@_register(np.split)
def _split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
    if isinstance(indices_or_sections, (int, np.integer)):
        total = _shape_of(pack(ary))[int(axis)]
        if total % int(indices_or_sections):
            raise InvalidArgument("array split does not result in an equal division")
    return _array_split(ary, indices_or_sections, axis)


@_register(np.hsplit)
def _hsplit(ary: Any, indices_or_sections: Any) -> list[Any]:
    if _nd(pack(ary)) == 0:
        raise InvalidArgument("hsplit only works on arrays of 1 or more dimensions")
    return _split(ary, indices_or_sections, 1 if _nd(pack(ary)) > 1 else 0)


@_register(np.vsplit)
def _vsplit(ary: Any, indices_or_sections: Any) -> list[Any]:
    if _nd(pack(ary)) < 2:
        raise InvalidArgument("vsplit only works on arrays of 2 or more dimensions")
    return _split(ary, indices_or_sections, 0)


@_register(np.dsplit)
def _dsplit(ary: Any, indices_or_sections: Any) -> list[Any]:
    if _nd(pack(ary)) < 3:
        raise InvalidArgument("dsplit only works on arrays of 3 or more dimensions")
    return _split(ary, indices_or_sections, 2)


_INDEX_PAD_MODES = ("edge", "wrap", "reflect", "symmetric")


@_register(np.pad)
def _pad(array: Any, pad_width: Any, mode: Any = "constant", **kw: Any) -> Any:
    a = pack(array)
    nd = _nd(a)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (nd, 2))
    if mode in _INDEX_PAD_MODES and not kw:
        # These modes copy entries: NumPy's own padding of the index vector says which.
        for ax in range(nd):
            idx = np.pad(np.arange(_shape_of(a)[ax]), tuple(widths[ax]), mode=mode)
            a = _take(a, idx, axis=ax)
        return a
    if mode != "constant" or set(kw) - {"constant_values"}:
        raise UnsupportedOperation(f"numpy.pad(mode={mode!r}) on traced values; supported: 'constant' "
                                   f"(with constant_values=), {', '.join(map(repr, _INDEX_PAD_MODES))}")
    values = kw.get("constant_values", 0)
    cv = values if isinstance(values, Value) else np.broadcast_to(np.asarray(values, dtype=object), (nd, 2))
    for ax in range(nd):
        shape = list(_shape_of(a))
        parts = []
        for side in (0, 1):
            w = int(widths[ax, side])
            if w:
                shape[ax] = w
                c = cv if isinstance(cv, Value) else cv[ax, side]
                parts.append(np.zeros(tuple(shape), dtype=_real_dtype(a)) + c)
        if parts:
            parts.insert(1 if widths[ax, 0] else 0, a)
            a = _concatenate(parts, axis=ax)
    return a


@_register(np.atleast_3d)
def _atleast_3d(*arys: Any) -> Any:
    res = []
    for a in arys:
        a = pack(a)
        shape = _shape_of(a)
        if len(shape) == 0:
            a = _reshape(a, (1, 1, 1))
        elif len(shape) == 1:
            a = _reshape(a, (1, shape[0], 1))
        elif len(shape) == 2:
            a = _reshape(a, shape + (1,))
        res.append(a)
    return res[0] if len(res) == 1 else res


@_register(np.kron)
def _kron(a: Any, b: Any) -> Any:
    a, b = pack(a), pack(b)
    d = max(_nd(a), _nd(b))
    sa = (1,) * (d - _nd(a)) + _shape_of(a)
    sb = (1,) * (d - _nd(b)) + _shape_of(b)
    ai = _reshape(a, tuple(x for s in sa for x in (s, 1)))
    bi = _reshape(b, tuple(x for s in sb for x in (1, s)))
    return _reshape(ai * bi, tuple(x * y for x, y in zip(sa, sb)))


@_register(np.cross)
def _cross(a: Any, b: Any, axisa: int = -1, axisb: int = -1, axisc: int = -1, axis: Any = None) -> Any:
    a, b = pack(a), pack(b)
    if axis is not None:
        axisa = axisb = axisc = axis
    a = _moveaxis(a, axisa, -1)
    b = _moveaxis(b, axisb, -1)
    na, nb = _shape_of(a)[-1], _shape_of(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise InvalidArgument("incompatible dimensions for cross product (dimension must be 2 or 3)")
    ac = [getitem(a, (Ellipsis, i)) for i in range(na)] + ([0.0] if na == 2 else [])
    bc = [getitem(b, (Ellipsis, i)) for i in range(nb)] + ([0.0] if nb == 2 else [])
    z = ac[0] * bc[1] - ac[1] * bc[0]
    if na == 2 and nb == 2:
        return z
    x = ac[1] * bc[2] - ac[2] * bc[1]
    y = ac[2] * bc[0] - ac[0] * bc[2]
    parts = [np.broadcast_to(concrete(p), np.shape(concrete(z))) if not isinstance(p, Value) else p
             for p in (x, y, z)]
    shape = np.broadcast_shapes(*[_shape_of(p) for p in parts])
    c = _stack([_broadcast_to(p, shape) for p in parts], axis=-1)
    return _moveaxis(c, -1, axisc)


@_register(np.select)
def _select(condlist: Any, choicelist: Any, default: Any = 0) -> Any:
    if len(condlist) != len(choicelist):
        raise InvalidArgument("list of cases must be same length as list of conditions")
    out = default
    for cond, choice in reversed(list(zip(condlist, choicelist))):
        out = _where(cond, choice, out)
    return out


@_register(np.nan_to_num)
def _nan_to_num(x: Any, copy: bool = True, nan: float = 0.0, posinf: Any = None, neginf: Any = None) -> Any:
    x = pack(x)
    base = np.asarray(concrete(x))
    if base.dtype == object:
        # symbolic: the elements that are nan or infinite whatever the point (x + nan); a finite
        # expression that overflows at one point keeps its formula (its derivative does not exist there)
        from .core.lazy import sympy

        bad_atoms = (sympy.nan, sympy.zoo, sympy.oo, -sympy.oo)
        base = np.array([complex(e) if getattr(e, "is_number", True) and (e in bad_atoms or e.has(*bad_atoms))
                         else 0.0 for e in base.ravel()]).reshape(base.shape).real
    if base.dtype.kind == "c":
        raise UnsupportedOperation("numpy.nan_to_num of a complex traced value")
    info = np.finfo(base.dtype if base.dtype.kind == "f" else np.float64)
    posinf = info.max if posinf is None else posinf
    neginf = info.min if neginf is None else neginf
    bad = ~np.isfinite(base)
    if not bad.any():
        return x
    fill = np.where(np.isnan(base), nan, np.where(base > 0, posinf, neginf))
    return bind(P.where, bad, fill, x)


@_register(np.real_if_close)
def _real_if_close(a: Any, tol: float = 100) -> Any:
    a = pack(a)
    if not is_complex(a):
        return a
    base = np.asarray(concrete(a))
    if base.dtype == object:  # symbolic: the imaginary part is an expression, not a number
        raise UnsupportedOperation("numpy.real_if_close of a complex value on the symbolic backend: "
                                   "whether it is close to real depends on the point; use np.real")
    eps = np.finfo(base.real.dtype).eps
    if np.all(np.abs(base.imag) < (tol * eps if tol > 1 else tol)):
        return bind(P.real, a)
    return a


@_register(np.sinc)
def _sinc(x: Any) -> Any:
    # sin(pi x)/(pi x), 1 at 0; the derivative at exactly 0 is the constant branch's, 0 (exact)
    x = pack(x)
    zero = x == 0
    y = np.pi * _where(zero, 1.0, x)
    return _where(zero, 1.0, np.sin(y) / y)


@_register(np.cumprod)
def _cumprod(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
    _no_out(out, "cumprod")
    a = pack(a)
    if axis is None:
        a, axis = _ravel(a), -1
    ax = _axis(axis, _nd(a))
    n = _shape_of(a)[ax]
    lead = (slice(None),) * (_nd(a) + ax)
    prods = [getitem(a, lead + (0,))]
    for i in range(1, n):  # one product per entry: no division, exact at zeros
        prods.append(prods[-1] * getitem(a, lead + (i,)))
    return _stack(prods, axis=ax) if prods else a


@_register(np.ptp)
def _ptp(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
    _no_out(out, "ptp")
    return _max(a, axis=axis, keepdims=keepdims) - _min(a, axis=axis, keepdims=keepdims)


@_register(np.average)
def _average(a: Any, axis: Any = None, weights: Any = None, returned: bool = False,
              keepdims: bool = False) -> Any:
    a = pack(a)
    if weights is None:
        avg = _mean(a, axis=axis, keepdims=keepdims)
        scl = np.broadcast_to(np.asarray(_count(a, axis), dtype=float), _shape_of(avg))
    else:
        w = pack(weights)
        if _shape_of(w) != _shape_of(a):
            if axis is None or _nd(w) != 1:
                raise InvalidArgument("numpy.average: 1-D weights need an axis; else they take a's shape")
            ax = int(axis) % _nd(a)
            w = _reshape(w, tuple(-1 if i == ax else 1 for i in range(_nd(a))))
            w = _broadcast_to(w, _shape_of(a))
        scl = _sum(w, axis=axis, keepdims=keepdims)
        avg = _sum(a * w, axis=axis, keepdims=keepdims) / scl
    return (avg, scl) if returned else avg


@_register(np.linspace)
def _linspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True, retstep: bool = False,
              dtype: Any = None, axis: int = 0) -> Any:
    start, stop = pack(start), pack(stop)
    num = int(num)
    div = (num - 1) if endpoint else num
    delta = stop - start
    nd = max(_nd(start), _nd(stop))
    t = np.arange(num, dtype=float).reshape((-1,) + (1,) * nd)
    step = delta / div if div > 0 else delta * np.nan
    y = start + t * step if div > 0 else start + t * delta
    if endpoint and num > 1:
        y = _concatenate([getitem(y, (slice(None, -1),)), _reshape(stop + 0.0 * delta, (1,) + _shape_of(delta))])
    if axis != 0:
        y = _moveaxis(y, 0, axis)
    return (y, step) if retstep else y


@_register(np.gradient)
def _gradient(f: Any, *varargs: Any, axis: Any = None, edge_order: int = 1) -> Any:
    f = pack(f)
    nd = _nd(f)
    axes = list(range(nd)) if axis is None else [int(a) % nd for a in np.atleast_1d(axis)]
    if len(varargs) == 0:
        spacing = [1.0] * len(axes)
    elif len(varargs) == 1 and np.ndim(concrete(varargs[0])) == 0:
        spacing = [varargs[0]] * len(axes)
    elif len(varargs) == len(axes) and all(np.ndim(concrete(v)) == 0 for v in varargs):
        spacing = list(varargs)
    else:
        raise UnsupportedOperation("numpy.gradient of traced values: scalar spacings only")
    out = []
    for ax, h in zip(axes, spacing):
        n = _shape_of(f)[ax]
        if n < edge_order + 1:
            raise InvalidArgument("Shape of array too small to calculate a numerical gradient, "
                                  "at least (edge_order + 1) elements are required.")
        lead = (slice(None),) * ax

        def at(s: Any, lead: tuple[Any, ...] = lead) -> Any:
            return getitem(f, lead + (s,))

        inner = (at(slice(2, None)) - at(slice(None, -2))) / (2.0 * h)
        if edge_order == 1:
            first = (at(slice(1, 2)) - at(slice(0, 1))) / h
            last = (at(slice(-1, None)) - at(slice(-2, -1))) / h
        else:
            first = (-1.5 * at(slice(0, 1)) + 2.0 * at(slice(1, 2)) - 0.5 * at(slice(2, 3))) / h
            last = (0.5 * at(slice(-3, -2)) - 2.0 * at(slice(-2, -1)) + 1.5 * at(slice(-1, None))) / h
        out.append(_concatenate([first, inner, last], axis=ax))
    return out[0] if len(out) == 1 else tuple(out)


@_register(np.convolve)
def _convolve(a: Any, v: Any, mode: str = "full") -> Any:
    a, v = pack(a), pack(v)
    if _nd(a) != 1 or _nd(v) != 1:
        raise InvalidArgument("numpy.convolve takes two 1-D arrays")
    n, m = _shape_of(a)[0], _shape_of(v)[0]
    if n == 0 or m == 0:
        raise InvalidArgument("v cannot be empty" if m == 0 else "a cannot be empty")
    if m > n:  # convolution commutes; NumPy slides the shorter one
        a, v, n, m = v, a, m, n
    # full[k] = sum_i a[i] v[k - i]: a Toeplitz matrix of v (an index into v padded with zeros) times a
    vp = _pad(v, (n - 1, n - 1))
    k, i = np.ogrid[: n + m - 1, :n]
    full = bind(P.matmul, getitem(vp, (k - i + n - 1,)), a)
    if mode == "full":
        return full
    if mode == "same":
        start = (m - 1) // 2
        return getitem(full, (slice(start, start + n),))
    if mode == "valid":
        return getitem(full, (slice(m - 1, n),))
    raise InvalidArgument(f"numpy.convolve: mode must be 'full', 'same' or 'valid', not {mode!r}")


@_register(np.correlate)
def _correlate(a: Any, v: Any, mode: str = "valid") -> Any:
    a, v = pack(a), pack(v)
    if is_complex(v):
        v = _conjugate(v)
    if _shape_of(v)[0] > _shape_of(a)[0]:  # NumPy's result for the swapped pair, reversed
        return _flip(_convolve(v, _flip(a), mode) if not is_complex(a) else _conjugate(
            _convolve(v, _flip(_conjugate(a)), mode)), None)
    return _convolve(a, _flip(v), mode)


@_register(np.polyval)
def _polyval(p: Any, x: Any) -> Any:
    p = pack(p)
    if isinstance(p, Value) or (type(p) is np.ndarray):
        coeffs = [getitem(p, (i,)) if isinstance(p, Value) else p[i] for i in range(_shape_of(p)[0])]
    else:
        coeffs = list(p)
    y = x * 0.0
    for c in coeffs:  # Horner, as NumPy
        y = y * x + c
    return y


@_register(np.cov)
def _cov(m: Any, y: Any = None, rowvar: bool = True, bias: bool = False, ddof: Any = None,
         fweights: Any = None, aweights: Any = None, **kw: Any) -> Any:
    if fweights is not None or aweights is not None:
        raise UnsupportedOperation("numpy.cov with fweights=/aweights= on traced values")
    x = _atleast_2d(pack(m))
    if not rowvar and _shape_of(x)[0] != 1:
        x = _transpose(x)
    if y is not None:
        yy = _atleast_2d(pack(y))
        if not rowvar and _shape_of(yy)[0] != 1:
            yy = _transpose(yy)
        x = _concatenate([x, yy], axis=0)
    ddof = (0 if bias else 1) if ddof is None else int(ddof)
    n = _shape_of(x)[1]
    d = x - _mean(x, axis=1, keepdims=True)
    c = bind(P.matmul, d, _transpose(d)) / (n - ddof)
    return _reshape(c, ()) if _shape_of(c) == (1, 1) else c


@_register(np.corrcoef)
def _corrcoef(x: Any, y: Any = None, rowvar: bool = True, **kw: Any) -> Any:
    c = _cov(x, y, rowvar)
    if _nd(c) == 0:
        return c / c
    d = np.sqrt(_diagonal(c))
    return c / _reshape(d, (-1, 1)) / _reshape(d, (1, -1))


def _nan_filled(a: Any, fill: float, name: str) -> Any:
    a = pack(a)
    if _symbolic(a):
        raise UnsupportedOperation(
            f"numpy.{name} on the symbolic backend: which entries are NaN depends on the values, and "
            "the symbolic backend traces without them; use backend='forward' or 'reverse'")
    mask = np.isnan(np.asarray(concrete(a)))
    return bind(P.where, mask, fill, a) if mask.any() else a


@_register(np.nansum)
def _nansum(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False, **kw: Any) -> Any:
    return _sum(_nan_filled(a, 0.0, "nansum"), axis=axis, out=out, keepdims=keepdims)


@_register(np.nanmean)
def _nanmean(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False, **kw: Any) -> Any:
    filled = _nan_filled(a, 0.0, "nanmean")
    count = np.sum(~np.isnan(np.asarray(concrete(pack(a)))), axis=axis, keepdims=keepdims)
    return _sum(filled, axis=axis, out=out, keepdims=keepdims) / count


@_register(np.nanmax)
def _nanmax(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False, **kw: Any) -> Any:
    return _max(_nan_filled(a, -np.inf, "nanmax"), axis=axis, out=out, keepdims=keepdims)


@_register(np.nanmin)
def _nanmin(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False, **kw: Any) -> Any:
    return _min(_nan_filled(a, np.inf, "nanmin"), axis=axis, out=out, keepdims=keepdims)


@_register(np.interp)
def _interp(x: Any, xp: Any, fp: Any, left: Any = None, right: Any = None, period: Any = None) -> Any:
    if period is not None:
        raise UnsupportedOperation("numpy.interp(period=...) of traced values")
    x, xp, fp = pack(x), pack(xp), pack(fp)
    if any(_symbolic(v) for v in (x, xp)):
        raise UnsupportedOperation(
            "numpy.interp on the symbolic backend: the segment a point falls in depends on the values, "
            "and the symbolic backend traces without them; use backend='forward' or 'reverse'")
    cxp = np.asarray(np.real(concrete(xp)), dtype=float)  # real parts: the numeric backend may step in i
    if cxp.ndim != 1 or _nd(fp) != 1 or cxp.size != _shape_of(fp)[0]:
        raise InvalidArgument("numpy.interp: xp and fp must be 1-D sequences of the same length")
    cx = np.asarray(np.real(concrete(x)), dtype=float)
    n = cxp.size
    if n == 1:
        return np.zeros_like(cx) + fp[0] if not isinstance(x, Value) else x * 0.0 + getitem(fp, (0,))
    # the segment [xp[i], xp[i + 1]] of each point; a point on a knot takes the segment to its right
    i = np.clip(np.searchsorted(cxp, cx, side="right") - 1, 0, n - 2)
    x0, x1 = getitem(xp, (i,)), getitem(xp, (i + 1,))
    f0, f1 = getitem(fp, (i,)), getitem(fp, (i + 1,))
    y = (f1 - f0) / (x1 - x0) * (x - x0) + f0
    first, last = getitem(fp, (0,)), getitem(fp, (n - 1,))
    y = _where(cx >= cxp[-1], last if right is None else right, y)
    return _where(cx < cxp[0], first if left is None else left, y)


def _refuse_symbolic_order(a: Any, name: str) -> None:
    if _symbolic(a):
        raise UnsupportedOperation(
            f"numpy.{name} on the symbolic backend: the order depends on the values, and the "
            "symbolic backend traces without them; use backend='forward' or 'reverse'")


@_register(np.median)
def _median(a: Any, axis: Any = None, out: Any = None, overwrite_input: bool = False,
            keepdims: bool = False) -> Any:
    _no_out(out, "median")
    a = pack(a)
    if axis is None:
        flat = _ravel(a)
        m = _median(flat, axis=0)
        return _reshape(m, (1,) * _nd(a)) if keepdims else m
    if not isinstance(axis, (int, np.integer)):
        raise UnsupportedOperation("numpy.median of traced values: axis None or one integer")
    ax = int(axis) % _nd(a)
    s = _sort(a, axis=ax)
    n = _shape_of(a)[ax]
    lead = (slice(None),) * ax
    if n % 2:
        m = getitem(s, lead + (n // 2,))
    else:
        m = (getitem(s, lead + (n // 2 - 1,)) + getitem(s, lead + (n // 2,))) * 0.5
    return _expand_dims(m, ax) if keepdims else m


@_register(np.partition)
def _partition(a: Any, kth: Any, axis: Any = -1, kind: str = "introselect", order: Any = None) -> Any:
    a = pack(a)
    _refuse_symbolic_order(a, "partition")
    if axis is None:
        a, axis = _ravel(a), -1
    order_ = np.argpartition(concrete(a), kth, axis=axis)
    return _take_along_axis(a, order_, axis)


# ---------------------------------------------------------------------------
# Discrete Fourier transforms (numpy.fft)
# ---------------------------------------------------------------------------


def _resized(a: Any, n: Any, axis: int) -> Any:
    """``a`` cropped or zero-padded to length ``n`` along ``axis``, as numpy.fft does."""
    if n is None:
        return a
    size = _shape_of(a)[axis]
    n = int(n)
    if n < 1:
        raise InvalidArgument(f"Invalid number of FFT data points ({n}) specified.")
    if n < size:
        return getitem(a, (slice(None),) * (axis % _nd(a)) + (slice(0, n),))
    if n > size:
        widths = [(0, 0)] * _nd(a)
        widths[axis % _nd(a)] = (0, n - size)
        return _pad(a, widths)
    return a


def _fft_axes(a: Any, s: Any, axes: Any) -> tuple[Any, tuple[int, ...]]:
    nd = _nd(a)
    if axes is None:
        axes = tuple(range(nd)) if s is None else tuple(range(nd - len(s), nd))
    axes = tuple(int(x) % nd - nd for x in axes)
    if s is not None:
        for n, ax in zip(s, axes):
            a = _resized(a, n, ax)
    return a, axes


def _fftn_handler(inverse: bool, default_axes: Any) -> Callable[..., Any]:
    def handler(a: Any, s: Any = None, axes: Any = default_axes, norm: Any = None, out: Any = None) -> Any:
        _no_out(out, "fft")
        a, axes = _fft_axes(pack(a), s, axes)
        return bind(P.fftn, a, axes=axes, norm=norm, inverse=inverse)

    return handler


def _fft1_handler(inverse: bool) -> Callable[..., Any]:
    def handler(a: Any, n: Any = None, axis: int = -1, norm: Any = None, out: Any = None) -> Any:
        _no_out(out, "fft")
        return _fftn_handler(inverse, None)(a, None if n is None else (n,), (axis,), norm)

    return handler


register_function(np.fft.fft, _fft1_handler(False))
register_function(np.fft.ifft, _fft1_handler(True))
register_function(np.fft.fft2, _fftn_handler(False, (-2, -1)))
register_function(np.fft.ifft2, _fftn_handler(True, (-2, -1)))
register_function(np.fft.fftn, _fftn_handler(False, None))
register_function(np.fft.ifftn, _fftn_handler(True, None))


@_register(np.fft.rfft)
def _rfft(a: Any, n: Any = None, axis: int = -1, norm: Any = None, out: Any = None) -> Any:
    _no_out(out, "rfft")
    a = _resized(pack(a), n, axis)
    if is_complex(a):
        raise UnsupportedOperation("numpy.fft.rfft of a complex traced value: NumPy drops the imaginary "
                                   "part; pass np.real(a)")
    return _moveaxis(bind(P.rfft, _moveaxis(a, axis, -1), norm=norm), -1, axis)


@_register(np.fft.irfft)
def _irfft(a: Any, n: Any = None, axis: int = -1, norm: Any = None, out: Any = None) -> Any:
    _no_out(out, "irfft")
    a = pack(a)
    n = 2 * (_shape_of(a)[axis] - 1) if n is None else int(n)
    a = _resized(a, n // 2 + 1, axis)
    return _moveaxis(bind(P.irfft, _moveaxis(a, axis, -1), n=n, norm=norm), -1, axis)


def _rfftn_handler(default_axes: Any) -> Callable[..., Any]:
    def handler(a: Any, s: Any = None, axes: Any = default_axes, norm: Any = None, out: Any = None) -> Any:
        _no_out(out, "rfftn")
        a, axes = _fft_axes(pack(a), s, axes)
        y = _rfft(a, None, axes[-1], norm)  # the real transform along the last axis, then the others
        return bind(P.fftn, y, axes=axes[:-1], norm=norm, inverse=False) if len(axes) > 1 else y

    return handler


def _irfftn_handler(default_axes: Any) -> Callable[..., Any]:
    def handler(a: Any, s: Any = None, axes: Any = default_axes, norm: Any = None, out: Any = None) -> Any:
        _no_out(out, "irfftn")
        a = pack(a)
        nd = _nd(a)
        if axes is None:
            axes = tuple(range(nd)) if s is None else tuple(range(nd - len(s), nd))
        axes = tuple(int(x) % nd - nd for x in axes)
        if s is not None:
            for n, ax in zip(s[:-1], axes[:-1]):
                a = _resized(a, n, ax)
        if len(axes) > 1:
            a = bind(P.fftn, a, axes=axes[:-1], norm=norm, inverse=True)
        return _irfft(a, None if s is None else s[-1], axes[-1], norm)

    return handler


_SWAPPED_NORM = {None: "forward", "backward": "forward", "forward": "backward", "ortho": "ortho"}


def _swapped_norm(norm: Any) -> Any:
    if norm not in _SWAPPED_NORM:
        raise InvalidArgument(f"Invalid norm value {norm}; should be 'backward', 'ortho' or 'forward'.")
    return _SWAPPED_NORM[norm]


@_register(np.fft.hfft)
def _hfft(a: Any, n: Any = None, axis: int = -1, norm: Any = None, out: Any = None) -> Any:
    # NumPy's definition: the inverse real transform of the conjugate, with the normalization's
    # direction swapped; its derivative follows from irfft's and conjugate's
    _no_out(out, "hfft")
    a = pack(a)
    return _irfft(_conjugate(a) if is_complex(a) else a, n, axis, _swapped_norm(norm))


@_register(np.fft.ihfft)
def _ihfft(a: Any, n: Any = None, axis: int = -1, norm: Any = None, out: Any = None) -> Any:
    # the conjugate of the real transform, the normalization's direction swapped (NumPy's definition)
    _no_out(out, "ihfft")
    return _conjugate(_rfft(a, n, axis, _swapped_norm(norm)))


register_function(np.fft.rfft2, _rfftn_handler((-2, -1)))
register_function(np.fft.rfftn, _rfftn_handler(None))
register_function(np.fft.irfft2, _irfftn_handler((-2, -1)))
register_function(np.fft.irfftn, _irfftn_handler(None))


def _shift_handler(sign: int) -> Callable[..., Any]:
    def handler(x: Any, axes: Any = None) -> Any:
        x = pack(x)
        axes = tuple(range(_nd(x))) if axes is None else tuple(np.atleast_1d(axes))
        shifts = [sign * (_shape_of(x)[int(ax)] // 2) for ax in axes]
        return _roll(x, shifts, axes)

    return handler


register_function(np.fft.fftshift, _shift_handler(1))
register_function(np.fft.ifftshift, _shift_handler(-1))


@_register(np.dstack)
def _dstack(tup: Any) -> Any:
    return _concatenate([_atleast_3d(x) for x in _arrays(tup)], axis=2)


@_register(np.rollaxis)
def _rollaxis(a: Any, axis: int, start: int = 0) -> Any:
    nd = _nd(pack(a))
    axis, start = int(axis) % nd, int(start) + nd if int(start) < 0 else int(start)
    if axis < start:
        start -= 1
    return _moveaxis(a, axis, start) if axis != start else pack(a)


@_register(np.meshgrid)
def _meshgrid(*xi: Any, copy: bool = True, sparse: bool = False, indexing: str = "xy") -> Any:
    xs = [pack(x) for x in xi]
    n = len(xs)
    shapes = [_shape_of(x)[0] if _nd(x) else 1 for x in xs]
    out = []
    for k, x in enumerate(xs):
        shape = [1] * n
        shape[k] = shapes[k]
        if indexing == "xy" and n > 1:
            shape[0], shape[1] = shape[1], shape[0]
        out.append(_reshape(x, tuple(shape)))
    if not sparse:
        full = np.broadcast_shapes(*[_shape_of(o) for o in out])
        out = [_broadcast_to(o, full) for o in out]
    return tuple(out)


@_register(np.vander)
def _vander(x: Any, N: Any = None, increasing: bool = False) -> Any:
    x = pack(x)
    n = _shape_of(x)[0] if N is None else int(N)
    powers = np.arange(n) if increasing else np.arange(n)[::-1]
    col = _reshape(x, (-1, 1))
    cols = [col ** int(p) if p else col * 0.0 + 1.0 for p in powers]
    return _concatenate(cols, axis=1) if cols else _reshape(col, (-1, 0))


def _trapezoid(y: Any, x: Any = None, dx: float = 1.0, axis: int = -1) -> Any:
    y = pack(y)
    ax = int(axis) % _nd(y)
    lead = (slice(None),) * ax
    upper, lower = getitem(y, lead + (slice(1, None),)), getitem(y, lead + (slice(None, -1),))
    if x is None:
        d = dx
    else:
        x = pack(x)
        d = _diff(x, axis=-1 if _nd(x) == 1 else axis)
        if _nd(x) == 1 and _nd(y) > 1:
            d = _reshape(d, tuple(-1 if i == ax else 1 for i in range(_nd(y))))
    return _sum(d * (upper + lower) * 0.5, axis=ax)


for _name in ("trapezoid", "trapz"):
    if hasattr(np, _name):
        register_function(getattr(np, _name), _trapezoid)


@_register(np.ediff1d)
def _ediff1d(ary: Any, to_end: Any = None, to_begin: Any = None) -> Any:
    d = _diff(_ravel(pack(ary)))
    parts = ([_ravel(pack(to_begin))] if to_begin is not None else []) + [d] + (
        [_ravel(pack(to_end))] if to_end is not None else [])
    return _concatenate(parts, axis=0) if len(parts) > 1 else d


@_register(np.logspace)
def _logspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True, base: Any = 10.0,
              dtype: Any = None, axis: int = 0) -> Any:
    return np.power(base, _linspace(start, stop, num, endpoint, axis=axis))


def _cumulative(prim_fn: Callable[..., Any]) -> Callable[..., Any]:
    def handler(x: Any, /, *, axis: Any = None, dtype: Any = None, out: Any = None,
                include_initial: bool = False) -> Any:
        _no_out(out, "cumulative")
        x = pack(x)
        if axis is None:
            if _nd(x) > 1:
                raise InvalidArgument("axis must be specified for multi-dimensional arrays")
            axis = -1
        r = prim_fn(x, axis=axis)
        if include_initial:
            shape = list(_shape_of(r))
            shape[int(axis) % len(shape)] = 1
            first = np.full(tuple(shape), 0.0 if prim_fn is _cumsum else 1.0)
            r = _concatenate([first, r], axis=axis)
        return r

    return handler


if hasattr(np, "cumulative_sum"):
    register_function(np.cumulative_sum, _cumulative(_cumsum))
    register_function(np.cumulative_prod, _cumulative(_cumprod))
if hasattr(np, "matrix_transpose"):
    register_function(np.matrix_transpose, lambda x: _swap_last(pack(x)))
    register_function(np.linalg.matrix_transpose, lambda x: _swap_last(pack(x)))


def _vecdot(x1: Any, x2: Any, axis: int = -1, **kw: Any) -> Any:
    x1, x2 = pack(x1), pack(x2)
    return _sum((_conjugate(x1) if is_complex(x1) else x1) * x2, axis=axis)


if hasattr(np, "vecdot"):
    if isinstance(np.vecdot, np.ufunc):  # a generalized ufunc in NumPy 2
        register_ufunc(np.vecdot, _vecdot)
    else:
        register_function(np.vecdot, _vecdot)
    register_function(np.linalg.vecdot, lambda x1, x2, /, *, axis=-1: _vecdot(x1, x2, axis))
if hasattr(np.linalg, "outer"):
    register_function(np.linalg.outer, lambda x1, x2: _outer(x1, x2))
if hasattr(np.linalg, "matmul"):
    register_function(np.linalg.matmul, lambda x1, x2: bind(P.matmul, pack(x1), pack(x2)))
if hasattr(np.linalg, "trace"):
    register_function(np.linalg.trace, lambda x, offset=0, dtype=None: _trace(x, offset, -2, -1))
    register_function(np.linalg.diagonal, lambda x, offset=0: _diagonal(x, offset, -2, -1))
if hasattr(np.linalg, "vector_norm"):
    register_function(np.linalg.vector_norm, lambda x, axis=None, keepdims=False, ord=2: _vector_norm(
        x, axis, keepdims, ord))
    register_function(np.linalg.matrix_norm, lambda x, keepdims=False, ord="fro": _norm(
        x, ord, (-2, -1), keepdims))


def _vector_norm(x: Any, axis: Any, keepdims: bool, ord: Any) -> Any:
    x = pack(x)
    if axis is None:
        r = _norm(_ravel(x), ord)
        return _reshape(r, (1,) * _nd(x)) if keepdims else r
    if isinstance(axis, tuple) and len(axis) > 1:
        moved = _moveaxis(x, axis, tuple(range(-len(axis), 0)))
        shape = _shape_of(moved)
        x, axis = _reshape(moved, shape[:-len(axis)] + (-1,)), -1
        if keepdims:
            raise UnsupportedOperation("numpy.linalg.vector_norm over several axes with keepdims=True")
    return _norm(x, ord, axis, keepdims)


# ---------------------------------------------------------------------------
# Structure queries and piecewise-constant functions: run on concrete values
# ---------------------------------------------------------------------------


def _on_concrete(func: Callable[..., Any], *, by_value: bool = True) -> Callable[..., Any]:
    """``func`` run on the plain values: its result is constant near the point (an index,
    a truth value, a rounded number). ``by_value``: the result depends on the numbers, which
    the symbolic backend does not have, so it refuses there (rather than compile a derivative
    whose constant holds at one point only)."""
    def handler(*args: Any, **kwargs: Any) -> Any:
        plain = [concrete(pack(a)) for a in args]
        if by_value and any(np.asarray(a).dtype == object for a in plain):
            raise UnsupportedOperation(
                f"{_numpy_name(func)} on the symbolic backend: its result depends on the values, which an "
                "expression does not fix; write the choice with np.where(condition, a, b), or use an AD "
                "backend (backend='reverse')")
        return func(*plain, **{k: concrete(v) for k, v in kwargs.items()})

    return handler


for _f in (np.argmax, np.argmin, np.argsort, np.nonzero, np.count_nonzero, np.any, np.all,
           np.isclose, np.allclose, np.array_equal, np.round, np.around, np.searchsorted, np.unique,
           np.argwhere, np.flatnonzero, np.argpartition, np.array_equiv, np.fix, np.iscomplex, np.isreal,
           np.isneginf, np.isposinf):
    register_function(_f, _on_concrete(_f))
for _f in (np.iscomplexobj, np.isrealobj):  # questions about the type, not the values
    register_function(_f, _on_concrete(_f, by_value=False))


@_register(np.shape)
def _shape(a: Any) -> tuple[int, ...]:
    return tuple(pack(a).shape) if isinstance(a, Value) else np.shape(concrete(pack(a)))


@_register(np.ndim)
def _ndim(a: Any) -> int:
    return len(_shape(a))


@_register(np.size)
def _size(a: Any, axis: Any = None) -> int:
    shape = _shape(a)
    return int(np.prod(shape, dtype=np.int64)) if axis is None else shape[axis]


@_register(np.result_type)
def _result_type(*args: Any) -> Any:
    return np.result_type(*[structure(a) for a in args])


def _like(maker: Callable[..., Any]) -> Callable[..., Any]:
    def handler(a: Any, *args: Any, dtype: Any = None, **kw: Any) -> Any:
        base = structure(pack(a))
        return maker(np.shape(base), *args, dtype=dtype or np.result_type(base))

    return handler


register_function(np.zeros_like, _like(lambda shape, dtype: np.zeros(shape, dtype)))
register_function(np.ones_like, _like(lambda shape, dtype: np.ones(shape, dtype)))
register_function(np.empty_like, _like(lambda shape, dtype: np.zeros(shape, dtype)))
register_function(np.full_like, _like(lambda shape, fill, dtype: np.full(shape, concrete(fill), dtype)))


@_register(np.copy)
def _copy(a: Any, *args: Any, **kw: Any) -> Any:
    return pack(a)


# Complex numbers (docs/complex.md). Of a real value the real part and the conjugate
# are the value, the imaginary part 0 and the angle 0 or pi (piecewise constant), as in
# JAX: the table's real, imag, conj and angle see complex values only.


@_register(np.real)
def _real(val: Any) -> Any:
    val = pack(val)
    return bind(P.real, val) if is_complex(val) else val


def _real_dtype(val: Any) -> Any:
    dt = np.asarray(structure(val)).dtype
    return dt if dt.kind == "f" else np.dtype(np.float64)


@_register(np.imag)
def _imag(val: Any) -> Any:
    val = pack(val)
    if is_complex(val):
        return bind(P.imag, val)
    return np.zeros(_shape_of(val), dtype=_real_dtype(val))


@_register(np.angle)
def _angle(z: Any, deg: bool = False) -> Any:
    z = pack(z)
    if is_complex(z):
        a = bind(P.angle, z)
    else:  # 0 or pi: a constant (on the symbolic backend a Piecewise), in z's precision
        a = np.where(z < 0, math.pi, 0.0)
        if type(a) is np.ndarray:
            a = a.astype(_real_dtype(z), copy=False)
    return a * (180.0 / math.pi) if deg else a


SUPPORTED_FUNCTIONS: tuple[str, ...] = tuple(sorted(
    {getattr(f, "__name__", str(f)) for f in FUNCTION_HANDLERS} | {u.__name__ for u in UFUNC_HANDLERS}))
"""Names of the NumPy functions and ufuncs diffkit differentiates or passes through."""

