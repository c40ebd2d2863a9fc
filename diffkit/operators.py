"""The operators: derivative, grad, value_and_grad, jacobian, hessian, jvp, vjp.

Each takes a function (callable, :class:`~diffkit.Function`, expression string
or SymPy expression) and returns a function. This module does no calculus:
it chooses the differentiated arguments (``argnums``), promotes integer
inputs to floating point, hands the work to the backend, and shapes the
results as JAX does.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .backends import get_backend
from .backends.arguments import Argnums, _argnums, _canon, _prepare
from .backends.complex_args import (Split, check_holomorphic, check_output_dtype, complex_argnums, native,
                                    real_cotangents, refuse_complex)
from .core.function import Function, as_function
from .core.values import Value, is_complex, shape_of
from .errors import DiffkitError, InvalidArgument, InvalidType, ShapeError, TracingError
from .pytree import PyTreeDef, is_leaf, tree_flatten, tree_flatten_with_paths, tree_unflatten


def _argnums_cache(argnums: Argnums, F: Function, op: str) -> Callable[[int], tuple[tuple[int, ...], bool]]:
    """:func:`_argnums` for a number of arguments, worked out once per number."""
    seen: dict[int, tuple[tuple[int, ...], bool]] = {}

    def nums_of(nargs: int) -> tuple[tuple[int, ...], bool]:
        try:
            return seen[nargs]
        except KeyError:
            res = seen[nargs] = _argnums(argnums, nargs, F, op)
            return res

    return nums_of


_PLAIN_CONSTANTS = (int, float, complex, bool, str, bytes, type(None), np.number, np.bool_)


class _WithKeywords:
    """A function with its keyword arguments fixed: constants, never differentiated (as in
    JAX). The backends see a function of the positional arguments only."""

    __slots__ = ("_fn", "kwargs", "variables", "__name__", "__weakref__")

    def __init__(self, fn: Callable[..., Any], kwargs: dict[str, Any], variables: Sequence[str], name: str,
                 weak: bool) -> None:
        # held weakly when kept in _BOUND (whose key is fn): the entry must not keep fn alive
        self._fn = weakref.ref(fn) if weak else (lambda: fn)
        self.kwargs = kwargs
        self.variables = tuple(variables)
        self.__name__ = name

    def __call__(self, *args: Any) -> Any:
        return self._fn()(*args, **self.kwargs)


_BOUND: weakref.WeakKeyDictionary[Any, dict[Any, _WithKeywords]] = weakref.WeakKeyDictionary()
"""function -> {keyword arguments (by value): the function with them fixed}. The same
keywords give the same object, so caches keyed by the function (the symbolic
backend's compiled derivatives, the numeric backend's facts) work with keywords too."""


def _keywords_key(kwargs: dict[str, Any]) -> Any:
    """Keyword arguments as a dictionary key: plain constants by type and value, else None."""
    if not all(isinstance(v, _PLAIN_CONSTANTS) for v in kwargs.values()):
        return None
    return tuple(sorted((k, type(v), v) for k, v in kwargs.items()))


def _with_keywords(F: Function, kwargs: dict[str, Any]) -> Callable[..., Any]:
    """``F.fn`` called with ``kwargs``: the keyword arguments of an operator's call are passed
    through as constants."""
    if not kwargs:
        return F.fn
    key = _keywords_key(kwargs)
    if key is not None:
        try:
            table = _BOUND.setdefault(F.fn, {})
        except TypeError:  # not weakly referenceable (a NumPy ufunc)
            table = None
        if table is not None:
            bound = table.get(key)
            if bound is None:
                if len(table) >= 64:  # a function called with ever new constants
                    table.clear()
                bound = table[key] = _WithKeywords(F.fn, dict(kwargs), F.variables, F.name, weak=True)
            return bound
    return _WithKeywords(F.fn, dict(kwargs), F.variables, F.name, weak=False)


class _Flat:
    """A function of pytree arguments called with their leaves: each argument whose
    entry in ``layout`` is a tree structure takes that many leaves, the others one slot."""

    __slots__ = ("_fn", "layout", "variables", "__name__", "__weakref__")

    def __init__(self, fn: Callable[..., Any], layout: tuple[PyTreeDef | None, ...], variables: Sequence[str],
                 name: str, weak: bool) -> None:
        self._fn = weakref.ref(fn) if weak else (lambda: fn)
        self.layout = layout
        self.variables = tuple(variables)
        self.__name__ = name

    def __call__(self, *flat: Any) -> Any:
        args = []
        k = 0
        for td in self.layout:
            if td is None:
                args.append(flat[k])
                k += 1
            else:
                n = td.num_leaves
                args.append(tree_unflatten(td, flat[k:k + n]))
                k += n
        return self._fn()(*args)


_FLAT: weakref.WeakKeyDictionary[Any, dict[Any, _Flat]] = weakref.WeakKeyDictionary()
"""function -> {(layout, names): its _Flat}: the same structure gives the same object, so the
backends' caches keyed by the function (the symbolic backend's compiled derivatives) hit."""


class _Leaves:
    """Name only: what the flattened call shows in error messages (``argument 'p['w']'``)."""

    __slots__ = ("name", "variables")

    def __init__(self, name: str, variables: Sequence[str]) -> None:
        self.name = name
        self.variables = tuple(variables)


def _symbol_name(arg: str, path: str) -> str:
    """A leaf's variable name from its argument's and its path (``p['w'][0]`` -> ``p_w_0``)."""
    tail = "".join(c if c.isalnum() else "_" for c in path).strip("_")
    while "__" in tail:
        tail = tail.replace("__", "_")
    return f"{arg}_{tail}" if tail else arg


class _Trees:
    """An operator's call with its pytree arguments flattened (JAX's conventions: docs/pytrees.md).

    The backends see ``fn`` of ``args``, every leaf of a differentiated pytree argument a
    differentiated argument of its own (``nums``); :meth:`regroup` rebuilds their results
    in the arguments' structures.
    """

    def __init__(self, F: Function, fn: Callable[..., Any], args: Sequence[Any], nums: tuple[int, ...],
                 op: str) -> None:
        from .backends.arguments import _canon

        names = [F.variables[i] if i < len(F.variables) else f"arg{i}" for i in range(len(args))]
        trees: dict[int, tuple[list[Any], list[str], PyTreeDef]] = {}
        for i in nums:
            trees[i] = tree_flatten_with_paths(args[i])
        layout: list[PyTreeDef | None] = []
        flat: list[Any] = []
        symbols: list[str] = []
        shown: list[str] = []
        start: dict[int, int] = {}
        for i, a in enumerate(args):
            start[i] = len(flat)
            if i in trees and not trees[i][2].is_leaf:
                leaves, paths, td = trees[i]
                layout.append(td)
                flat.extend(leaves)
                symbols.extend(_symbol_name(names[i], p) for p in paths)
                shown.extend(f"{names[i]}{p}" for p in paths)
            else:
                layout.append(None)
                flat.append(a)
                symbols.append(names[i])
                shown.append(names[i])
        self.groups = [(trees[i][2], list(range(start[i], start[i] + trees[i][2].num_leaves))) for i in nums]
        self.nums = tuple(k for _, ks in self.groups for k in ks)
        for k in self.nums:  # a leaf that is not a number: its path in the tree in the message
            try:
                flat[k] = _canon(flat[k], _Leaves(F.name, shown), k, op)  # type: ignore[arg-type]
            except InvalidType:
                text = repr(flat[k])
                text = text if len(text) <= 40 else text[:37] + "..."
                raise InvalidType(f"{op} of {F.name}: the leaf {shown[k]} of a pytree argument must be numeric "
                                  f"(a number or an array of numbers), got {type(flat[k]).__name__} {text}") \
                    from None
        self.args = flat
        self.F = Function(F.fn, variables=symbols, name=F.name, source=F.source, expr=F.expr)
        self.fn = _flat_fn(fn, tuple(layout), symbols, F.name)

    def flatten_like(self, trees: Sequence[Any], op: str, what: str) -> list[Any]:
        """Tangents (one pytree per differentiated argument, of its structure) as flat
        arguments, zeros where the call's arguments are not differentiated."""
        flat: list[Any] = [None] * len(self.args)
        for (td, ks), t in zip(self.groups, trees):
            leaves, tdt = tree_flatten(t)
            if tdt != td:
                raise ShapeError(f"{op} of {self.F.name}: {what} {tdt} differs in structure from its "
                                 f"primal {td}")
            for k, leaf in zip(ks, leaves):
                flat[k] = leaf
        return flat

    def regroup(self, results: Sequence[Any]) -> list[Any]:
        """One result per flat differentiated argument -> one per argument, in its structure."""
        out = []
        j = 0
        for td, ks in self.groups:
            part = list(results[j:j + len(ks)])
            j += len(ks)
            out.append(part[0] if td.is_leaf else tree_unflatten(td, part))
        return out

    def regroup2(self, rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
        """Second derivatives ``rows[a][b]`` of the flat arguments -> ``H[i][j]``: argument i's
        structure outside, argument j's inside (as ``jax.hessian``)."""
        offsets = []
        j = 0
        for _, ks in self.groups:
            offsets.append(range(j, j + len(ks)))
            j += len(ks)
        out = []
        for gi, (td_i, _) in enumerate(self.groups):
            row = []
            for gj, (td_j, _) in enumerate(self.groups):
                outer = []
                for a in offsets[gi]:
                    inner = [rows[a][b] for b in offsets[gj]]
                    outer.append(inner[0] if td_j.is_leaf else tree_unflatten(td_j, inner))
                row.append(outer[0] if td_i.is_leaf else tree_unflatten(td_i, outer))
            out.append(row)
        return out


def _flat_fn(fn: Callable[..., Any], layout: tuple[PyTreeDef | None, ...], symbols: Sequence[str],
             name: str) -> _Flat:
    key = (layout, tuple(symbols))
    try:
        table = _FLAT.setdefault(fn, {})
    except TypeError:  # not weakly referenceable
        return _Flat(fn, layout, symbols, name, weak=False)
    hit = table.get(key)
    if hit is None:
        if len(table) >= 64:
            table.clear()
        hit = table[key] = _Flat(fn, layout, symbols, name, weak=True)
    return hit


def _trees(F: Function, fn: Callable[..., Any], args: Sequence[Any], nums: tuple[int, ...],
           op: str) -> _Trees | None:
    """The call flattened when a differentiated argument is a pytree container, else None."""
    for i in nums:
        if not is_leaf(args[i]):
            return _Trees(F, fn, args, nums, op)
    return None


def _flat_call(F: Function, fn: Callable[..., Any], args: Sequence[Any], nums: tuple[int, ...],
               op: str) -> tuple[_Trees | None, Function, Callable[..., Any], Sequence[Any], tuple[int, ...], list[Any]]:
    """The call as the backends take it: pytree arguments flattened to their leaves
    (:func:`_trees`) and the differentiated arguments checked and canonicalised
    (:func:`_prepare`). Returns ``(trees, F, fn, args, nums, primals)``."""
    trees = _trees(F, fn, args, nums, op)
    if trees is not None:
        F, fn, args, nums = trees.F, trees.fn, trees.args, trees.nums
    return trees, F, fn, args, nums, _prepare(args, nums, F, op)


_UNSEEN = object()


class _OutTree:
    """A function whose output may be a pytree, called so that it returns one array: the
    leaves raveled and concatenated. ``seen`` records the output's structure and its
    leaves' shapes (None: the output is a leaf, returned as it is)."""

    __slots__ = ("_fn", "has_aux", "seen", "variables", "__name__", "__weakref__")

    def __init__(self, fn: Callable[..., Any], has_aux: bool, weak: bool) -> None:
        self._fn = weakref.ref(fn) if weak else (lambda: fn)
        self.has_aux = has_aux
        self.seen: Any = _UNSEEN
        self.variables = tuple(getattr(fn, "variables", ()) or ())
        self.__name__ = getattr(fn, "__name__", "f")

    def __call__(self, *args: Any) -> Any:
        out = self._fn()(*args)
        if self.has_aux:
            if not (isinstance(out, tuple) and len(out) == 2):
                return out  # (the backend says what is wrong)
            value, aux = out
        else:
            value = out
        if value is None or is_leaf(value):  # (None: a forgotten return, refused by the backend)
            self.seen = None
            return out
        leaves, td = tree_flatten(value)
        if not leaves or not all(_numeric_leaf(v) for v in leaves):
            self.seen = None
            return out  # the backend refuses it, naming what was returned
        self.seen = (td, tuple(shape_of(v) for v in leaves))
        flat = np.concatenate([np.ravel(v) for v in leaves]) if leaves else np.zeros(0)
        return (flat, aux) if self.has_aux else flat

    def structure(self, args: Sequence[Any]) -> Any:
        """The output structure of the last call; the function evaluated on the plain
        arguments when the backend did not call it (a compiled derivative)."""
        if self.seen is _UNSEEN:  # evaluated on NumPy values: 0.0 ** -1 is inf, not a ZeroDivisionError
            from .core.values import concrete

            plain = [np.float64(a) if type(a) is float else concrete(a) for a in args]
            try:
                with np.errstate(all="ignore"):
                    self(*plain)
            except Exception:  # (the backend's result stands as it is)
                self.seen = None
        return None if self.seen is _UNSEEN else self.seen


def _numeric_leaf(v: Any) -> bool:
    if isinstance(v, Value) or type(v) is float or type(v) is complex:
        return True
    return isinstance(v, (np.ndarray, np.generic)) and v.dtype.kind in "fc"


_OUT: weakref.WeakKeyDictionary[Any, dict[bool, _OutTree]] = weakref.WeakKeyDictionary()


def _out_tree(fn: Callable[..., Any], has_aux: bool = False) -> _OutTree:
    """``fn`` as an :class:`_OutTree` (the same object for the same function, for the
    backends' caches), its record cleared."""
    try:
        table = _OUT.get(fn)
        if table is None:
            table = _OUT.setdefault(fn, {})
    except TypeError:
        wrapped = _OutTree(fn, has_aux, weak=False)
    else:
        wrapped = table.get(has_aux)
        if wrapped is None:
            wrapped = table[has_aux] = _OutTree(fn, has_aux, weak=True)
    wrapped.seen = _UNSEEN
    return wrapped


def _split_out(seen: Any, flat: Any) -> Any:
    """A result whose first axis runs over the raveled output leaves -> the output's pytree of
    results, each of shape ``leaf.shape + rest``."""
    if seen is None:
        return flat
    td, shapes = seen
    rest = tuple(shape_of(flat))[1:]
    parts = []
    k = 0
    for shp in shapes:
        n = int(np.prod(shp, dtype=np.int64))
        parts.append(flat[k:k + n].reshape(tuple(shp) + rest))
        k += n
    return tree_unflatten(td, parts)


def _outputs_outside(picked: Any, seen: Any) -> Any:
    """Results whose leaves have the raveled output leaves on their first axis -> the
    output's structure outside, the arguments' inside (as jax.jacobian and jax.hessian)."""
    if seen is None:
        return picked
    leaves, td_in = tree_flatten(picked)
    split = [tree_flatten(_split_out(seen, J))[0] for J in leaves]
    return tree_unflatten(seen[0], [tree_unflatten(td_in, [part[k] for part in split])
                                    for k in range(seen[0].num_leaves)])


def _join_out(seen: Any, tree: Any, dtype: Any, what: str, name: str) -> Any:
    """A pytree of output cotangents -> one array, as :class:`_OutTree` joins the output."""
    if seen is None:
        return tree
    td, shapes = seen
    leaves, tdc = tree_flatten(tree)
    if tdc != td:
        raise ShapeError(f"{what} of {name}: the cotangent {tdc} differs in structure from the output {td}")
    parts = []
    for v, shp in zip(leaves, shapes):
        a = v if isinstance(v, Value) else np.asarray(v, dtype=dtype)
        if tuple(shape_of(a)) != tuple(shp):
            raise ShapeError(f"{what} of {name}: a cotangent leaf has shape {tuple(shape_of(a))}, its output "
                             f"leaf {tuple(shp)}")
        parts.append(np.ravel(a))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _plain(aux: Any) -> Any:
    """An auxiliary output with every traced value replaced by its plain value."""
    from .core.values import concrete

    if isinstance(aux, Value):
        return concrete(aux)
    if isinstance(aux, (list, tuple)):
        return type(aux)(_plain(a) for a in aux)
    if isinstance(aux, dict):
        return {k: _plain(v) for k, v in aux.items()}
    return aux


def _pick(results: Sequence[Any], single: bool) -> Any:
    return results[0] if single else tuple(results)


def _finish_tree(x: Any) -> Any:
    """:func:`_finish` on every leaf of a pytree of results."""
    if isinstance(x, tuple) and not hasattr(x, "_fields"):
        return tuple(_finish_tree(e) for e in x)
    if is_leaf(x):
        return _finish(x)
    leaves, td = tree_flatten(x)
    return tree_unflatten(td, [_finish(v) for v in leaves])


def _finish(x: Any) -> Any:
    """Results as plain, writable NumPy values (traced values pass through when nested)."""
    if isinstance(x, Value) or x is None:
        return x
    if type(x) is tuple:
        return tuple(_finish(e) for e in x)
    if type(x) is float:
        return np.float64(x)
    if type(x) is complex:
        return np.complex128(x)
    if isinstance(x, np.ndarray):
        if x.ndim == 0:
            return x[()]
        if not x.flags.writeable or x.base is not None and not x.flags.owndata:
            return np.array(x)
    return x


_OBJECT_ARRAY_HINT = (
    "np.array([...]) of traced values makes a NumPy object array, and NumPy handles a function "
    "whose only array argument is such an array (np.linalg.*, a ufunc on a mix of traced values "
    "and plain numbers) without asking diffkit; build the array with "
    "np.stack([...]) instead, which diffkit traces")


def _traced_cause(e: BaseException) -> TracingError | None:
    seen = e.__context__ or e.__cause__
    while seen is not None:
        if isinstance(seen, TracingError):
            return seen
        seen = seen.__context__ or seen.__cause__
    return None


@contextlib.contextmanager
def _context(F: Function, op: str, backend: Any) -> Iterator[None]:
    """Name the function and operator in errors raised while differentiating.

    NumPy's own errors that come from traced values hidden in object arrays
    (which NumPy never hands to diffkit) are turned into a TracingError that
    says what to write instead.
    """
    try:
        yield
    except (DiffkitError, TypeError, ValueError, AttributeError) as e:
        _reraise(e, F, op, backend)
        raise


def _reraise(e: BaseException, F: Function, op: str, backend: Any) -> None:
    """What :func:`_context` does with an error (the operators call it from their own
    ``try``, which costs nothing when nothing is raised); returns to re-raise ``e``."""
    where = f"[in {op} of {F.name}, backend '{backend.name}']"
    if isinstance(e, DiffkitError):
        msg = str(e)
        if " [in " not in msg and not isinstance(e, AssertionError):
            e.args = (f"{msg} {where}",) + e.args[1:]
        return
    if not isinstance(e, (TypeError, ValueError, AttributeError)):
        return
    cause = _traced_cause(e)
    if cause is not None:
        raise TracingError(f"{cause} {where}") from e
    msg = str(e)
    if "dtype('O')" in msg or "has no callable" in msg or "'Node' object" in msg \
            or "'Dual' object" in msg or "array type object" in msg:
        raise TracingError(f"{_OBJECT_ARRAY_HINT} (NumPy said: {msg}) {where}") from e


def _named(wrapper: Callable[..., Any], op: str, F: Function) -> Callable[..., Any]:
    wrapper.__name__ = f"{op}({F.name})"
    wrapper.__qualname__ = wrapper.__name__
    wrapper.__doc__ = f"The {op} of {F.name}."
    return wrapper


def grad(f: Any, argnums: Argnums = 0, *, has_aux: bool = False, holomorphic: bool = False,
         backend: Any = None) -> Callable[..., Any]:
    """Gradient of a scalar-valued function.

    Args:
        f: callable, :class:`Function`, expression string or SymPy expression.
        argnums: which positional argument(s) to differentiate; a tuple gives a tuple.
        has_aux: ``f`` returns ``(value, aux)``; the result is ``(grad, aux)``.
        holomorphic: ``f`` is a holomorphic function of complex arguments: the result is
            its complex derivative (docs/complex.md, as ``jax.grad``). Without it a
            complex-valued output is an error, and a real-valued function of complex
            arguments gets JAX's gradient ``df/dx - 1j * df/dy`` (``z = x + 1j*y``).
        backend: a name from :func:`backends` or a backend instance (default ``"reverse"``).

    Keyword arguments of the call are passed to ``f`` as constants, never
    differentiated (as in JAX); so on :func:`value_and_grad`, :func:`jacobian`,
    :func:`hessian` and :func:`derivative`.

    Example:
        >>> import numpy as np, diffkit as dk
        >>> dk.grad(lambda x, y: x * y**2, argnums=(0, 1))(3.0, 2.0)
        (np.float64(4.0), np.float64(12.0))
        >>> dk.grad(lambda x, y=1.0: x * y**2)(3.0, y=2.0)
        np.float64(4.0)
    """
    vg = _value_and_grad(f, argnums, has_aux, holomorphic, backend, need_value=False)
    F = as_function(f)

    def grad_f(*args: Any, **kwargs: Any) -> Any:
        res = vg(*args, **kwargs)
        return (res[1], res[0][1]) if has_aux else res[1]

    return _named(grad_f, "grad", F)


def value_and_grad(f: Any, argnums: Argnums = 0, *, has_aux: bool = False, holomorphic: bool = False,
                   backend: Any = None) -> Callable[..., Any]:
    """``(f(*args), grad f(*args))`` in one pass; ``holomorphic`` as for :func:`grad`.

    Example:
        >>> import numpy as np, diffkit as dk
        >>> value, g = dk.value_and_grad(lambda x: np.sum(x**2))(np.array([1.0, 2.0]))
        >>> float(value), g
        (5.0, array([2., 4.]))
    """
    return _value_and_grad(f, argnums, has_aux, holomorphic, backend, need_value=True)


def _value_and_grad(f: Any, argnums: Argnums, has_aux: bool, holomorphic: bool, backend: Any,
                    need_value: bool) -> Callable[..., Any]:
    """:func:`value_and_grad`; ``need_value=False`` (for :func:`grad`) lets a backend that
    can (``grad_without_value``) skip the work only the value needs."""
    F = as_function(f)
    be = get_backend(backend)
    nums_of = _argnums_cache(argnums, F, "grad")
    skip = {"need_value": False} if not need_value and getattr(be, "grad_without_value", False) else {}

    def value_and_grad_f(*args: Any, **kwargs: Any) -> Any:
        nums, single = nums_of(len(args))
        try:
            trees, Fx, fn, args, nums, primals = _flat_call(F, _with_keywords(F, kwargs), args, nums, "grad")
            cplx = complex_argnums(primals, nums)
            if holomorphic:
                check_holomorphic("grad", primals, nums, cplx, Fx.variables)
            if cplx and not native(be):
                out, grads, aux = _split_value_and_grad(be, Fx, fn, primals, nums, cplx, has_aux, holomorphic)
            else:
                out, grads, aux = be.value_and_grad(fn, primals, nums, has_aux, name=F.name, **skip)
                if out is not None or not skip:
                    check_output_dtype("grad", out, holomorphic)
        except (DiffkitError, TypeError, ValueError, AttributeError) as e:
            _reraise(e, F, "grad", be)
            raise
        if trees is not None:
            grads = [_finish_tree(g) for g in trees.regroup([_finish(g) for g in grads])]
        g = _finish(grads[0] if single else tuple(grads))
        out = _finish(out)
        return ((out, _plain(aux)), g) if has_aux else (out, g)

    return _named(value_and_grad_f, "value_and_grad", F)


def _split_value_and_grad(be: Any, F: Function, fn: Callable[..., Any], primals: list[Any], nums: tuple[int, ...],
                          cplx: tuple[int, ...], has_aux: bool, holomorphic: bool) -> tuple[Any, Any, Any]:
    """``value_and_grad`` through the real and imaginary parts of the complex arguments
    (a backend without complex arguments of its own: see :mod:`diffkit.backends.complex_args`)."""
    sp = Split(fn, primals, nums, cplx, F.variables, real_part=holomorphic, has_aux=has_aux)
    out, grads, aux = be.value_and_grad(sp.fn, sp.primals, sp.nums, has_aux, name=F.name)
    if holomorphic:  # the backend saw Re f: the value is f's own
        value = fn(*primals)
        out = value[0] if has_aux else value
    check_output_dtype("grad", out, holomorphic)
    return out, sp.combine(grads), aux


def jacobian(f: Any, argnums: Argnums = 0, *, holomorphic: bool = False, backend: Any = None) -> Callable[..., Any]:
    """Jacobian, of shape ``out.shape + arg.shape``; a tuple ``argnums`` gives a tuple.

    The reverse backend uses one backward sweep with a batch of cotangents,
    the forward backend one forward pass with a batch of tangents. Complex
    outputs need ``holomorphic=True`` (as ``jax.jacrev``; see :func:`grad`).

    Example:
        >>> import numpy as np, diffkit as dk
        >>> dk.jacobian(lambda x: x**2)(np.array([1.0, 2.0]))
        array([[2., 0.],
               [0., 4.]])
    """
    F = as_function(f)

    def compute(be: Any, F: Function, fn: Callable[..., Any], primals: list[Any], nums: tuple[int, ...]) -> Any:
        cplx = complex_argnums(primals, nums)
        if holomorphic:
            check_holomorphic("jacobian", primals, nums, cplx, F.variables)
        fn = _out_tree(fn)  # a pytree output: one array of its leaves
        if cplx and not native(be):
            sp = Split(fn, primals, nums, cplx, F.variables, real_part=holomorphic)
            out, jacs = be.jacobian(sp.fn, sp.primals, sp.nums)
            check_output_dtype("jacobian", fn(*primals) if holomorphic else out, holomorphic)
            return sp.combine(jacs), fn.structure(primals)
        out, jacs = be.jacobian(fn, primals, nums)
        check_output_dtype("jacobian", out, holomorphic)
        return jacs, fn.structure(primals)

    def select(result: Any, single: bool, trees: _Trees | None) -> Any:
        jacs, seen = result
        return _outputs_outside(_pick(jacs if trees is None else trees.regroup(jacs), single), seen)

    return _array_operator(F, argnums, backend, "jacobian", compute, select)


def hessian(f: Any, argnums: Argnums = 0, *, backend: Any = None) -> Callable[..., Any]:
    """Hessian, of shape ``out.shape + arg.shape + arg.shape``.

    On the reverse backend this is forward-over-reverse: one forward pass
    with a batch of tangents through the reverse-mode gradient. A tuple
    ``argnums`` gives nested tuples ``H[i][j]``; pytree arguments nest their
    structure twice and a pytree output puts its structure outside (as
    ``jax.hessian``).

    Example:
        >>> import numpy as np, diffkit as dk
        >>> dk.hessian(lambda x: x[0]**2 * x[1])(np.array([1.0, 3.0]))
        array([[6., 2.],
               [2., 0.]])
    """
    F = as_function(f)

    def compute(be: Any, F: Function, fn: Callable[..., Any], primals: list[Any], nums: tuple[int, ...]) -> Any:
        refuse_complex("hessian", primals, complex_argnums(primals, nums), F.variables)
        fn = _out_tree(fn)  # a pytree output: one array of its leaves
        return be.hessian(fn, primals, nums), fn.structure(primals)

    def select(result: Any, single: bool, trees: _Trees | None) -> Any:
        rows, seen = result
        if trees is not None:
            rows = trees.regroup2([[_finish(h) for h in r] for r in rows])
        return _outputs_outside(rows[0][0] if single else tuple(tuple(r) for r in rows), seen)

    return _array_operator(F, argnums, backend, "hessian", compute, select)


def _array_operator(f: Any, argnums: Argnums, backend: Any, op: str,
                    compute: Callable[[Any, Function, Callable[..., Any], list[Any], tuple[int, ...]], Any],
                    select: Callable[[Any, bool, _Trees | None], Any]) -> Callable[..., Any]:
    """An operator of ``f``'s arguments ``argnums``: checks, promotion, error context, shaping."""
    F = as_function(f)
    be = get_backend(backend)
    nums_of = _argnums_cache(argnums, F, op)

    def operator_f(*args: Any, **kwargs: Any) -> Any:
        nums, single = nums_of(len(args))
        try:
            trees, Fx, fn, args, nums, primals = _flat_call(F, _with_keywords(F, kwargs), args, nums, op)
            result = compute(be, Fx, fn, primals, nums)
        except (DiffkitError, TypeError, ValueError, AttributeError) as e:
            _reraise(e, F, op, be)
            raise
        return _finish_tree(select(result, single, trees))

    return _named(operator_f, op, F)


def derivative(f: Any, order: int = 1, *, backend: Any = None) -> Callable[[Any], Any]:
    """The ``order``-th derivative of a function of one scalar (by nesting).

    Example:
        >>> import numpy as np, diffkit as dk
        >>> float(dk.derivative(np.sin, order=3)(0.0))
        -1.0
    """
    F = as_function(f)
    be = get_backend(backend)
    if int(order) != order or order < 0:
        raise InvalidArgument(f"derivative of {F.name}: order must be a non-negative integer, got {order!r}")

    def derivative_f(x: Any, **kwargs: Any) -> Any:
        with _context(F, "derivative", be):
            xs = _prepare([x], [0], F, "derivative")[0]
            refuse_complex("derivative", [xs], complex_argnums([xs], (0,)), F.variables)
            if np.shape(xs) != ():
                raise ShapeError(f"derivative of {F.name}: the argument must be a scalar, got shape "
                                 f"{np.shape(xs)}; use dk.jacobian or dk.grad for arrays")
            return _finish(be.derivative(_with_keywords(F, kwargs), xs, int(order)))

    return _named(derivative_f, "derivative", F)


def jvp(f: Any, primals: Sequence[Any], tangents: Sequence[Any], *, holomorphic: bool = False,
        backend: Any = None) -> tuple[Any, Any]:
    """``(f(*primals), J @ tangents)``: a Jacobian-vector product.

    With complex arguments or outputs, ``J`` is the real-linear derivative (JAX's
    JVP); ``holomorphic=True`` checks that arguments and output are complex.

    Example:
        >>> import numpy as np, diffkit as dk
        >>> out, t = dk.jvp(lambda x: np.sin(x), (0.0,), (2.0,), backend="forward")
        >>> float(out), float(t)
        (0.0, 2.0)
    """
    F = as_function(f)
    be = get_backend(backend)
    if len(primals) != len(tangents):
        raise ShapeError(f"jvp of {F.name}: {len(primals)} primals but {len(tangents)} tangents")
    nums = tuple(range(len(primals)))
    with _context(F, "jvp", be):
        trees, F, fn, primals, nums, ps = _flat_call(F, F.fn, primals, nums, "jvp")
        if trees is not None:
            tangents = trees.flatten_like(tangents, "jvp", "tangent")
        ts = []
        for i, (p, t) in enumerate(zip(ps, tangents)):
            t = _canon(t, F, i, "jvp")
            if np.shape(t) != np.shape(p):
                raise ShapeError(f"jvp of {F.name}: tangent {i} has shape {np.shape(t)}, its primal "
                                 f"{np.shape(p)}")
            ts.append(t)
        cplx = complex_argnums(ps, nums)
        for i, t in enumerate(ts):
            if i not in cplx and type(t) is not float and is_complex(t):
                raise InvalidType(f"jvp of {F.name}: tangent {i} is complex, its primal real; a real "
                                  "argument moves along real tangents only (as in JAX)")
        if holomorphic:
            check_holomorphic("jvp", ps, nums, cplx, F.variables)
        fn = _out_tree(fn)  # a pytree output: one array of its leaves
        if cplx and not native(be):
            sp = Split(fn, ps, nums, cplx, F.variables)
            out, tout = be.jvp(sp.fn, sp.primals, sp.nums, sp.tangents(ts))
        else:
            out, tout = be.jvp(fn, ps, nums, ts)
        if holomorphic:
            check_output_dtype("jvp", out, True)
        seen = fn.structure(ps)
    if seen is not None:
        return _finish_tree(_split_out(seen, out)), _finish_tree(_split_out(seen, tout))
    return _finish(out), _finish(tout)


def vjp(f: Any, *primals: Any, has_aux: bool = False, holomorphic: bool = False, backend: Any = None) -> Any:
    """``(f(*primals), vjp_fn)``; ``vjp_fn(cotangent)`` returns one cotangent per primal.

    With complex arguments or outputs the cotangents are JAX's (no conjugation; a
    real argument's is real); ``holomorphic=True`` checks that arguments and output
    are complex.

    Example:
        >>> import numpy as np, diffkit as dk
        >>> out, vjp_fn = dk.vjp(lambda x: x * 3.0, np.array([1.0, 2.0]))
        >>> vjp_fn(np.array([1.0, 10.0]))
        (array([ 3., 30.]),)
    """
    F = as_function(f)
    be = get_backend(backend)
    nums = tuple(range(len(primals)))
    with _context(F, "vjp", be):
        trees, Fx, f_of, primals, nums, ps = _flat_call(F, F.fn, primals, nums, "vjp")
        cplx = complex_argnums(ps, nums)
        if holomorphic:
            check_holomorphic("vjp", ps, nums, cplx, Fx.variables)
        combine = None
        f_of = _out_tree(f_of, has_aux)  # a pytree output: one array of its leaves
        if cplx and not native(be):
            sp = Split(f_of, ps, nums, cplx, Fx.variables, has_aux=has_aux)
            out, fn, aux = be.vjp(sp.fn, sp.primals, sp.nums, has_aux)
            combine = sp.combine
        else:
            out, fn, aux = be.vjp(f_of, ps, nums, has_aux)
        if holomorphic:
            check_output_dtype("vjp", out, True)
        seen = f_of.structure(ps)

    @functools.wraps(fn)
    def vjp_fn(cotangent: Any) -> tuple[Any, ...]:
        if seen is not None:
            with _context(F, "vjp", be):
                cotangent = _join_out(seen, cotangent, np.result_type(out, float), "vjp", F.name)
        ct = np.asarray(cotangent, dtype=np.result_type(out, float)) if not isinstance(cotangent, Value) \
            else cotangent
        if np.shape(ct) != np.shape(out):
            raise ShapeError(f"vjp of {F.name}: cotangent has shape {np.shape(ct)}, the output "
                             f"{np.shape(out)}")
        with _context(F, "vjp", be):
            cts = fn(ct)
            cts = real_cotangents(combine(cts) if combine is not None else cts, ps, nums)
            if trees is not None:
                return tuple(_finish_tree(c) for c in trees.regroup([_finish(c) for c in cts]))
            return tuple(_finish(c) for c in cts)

    value = _finish(out) if seen is None else _finish_tree(_split_out(seen, out))
    return (value, vjp_fn, _plain(aux)) if has_aux else (value, vjp_fn)


def diff(f: Any, wrt: Any = None, order: int = 1, *, simplify: bool | str = True,
         method: str = "dag", timeout: float | None = None, op_limit: int | None = None) -> Any:
    """The derivative of ``f`` as a SymPy expression (the symbolic backend).

    Args:
        f: callable, :class:`Function`, expression string or SymPy expression;
            its variables become real SymPy symbols of the same names.
        wrt: the variable: a name, a SymPy symbol or a position; may be
            omitted when ``f`` has one variable.
        order: how many times to differentiate.
        simplify: ``True`` (the default) writes the result as people do, by
            bounded rewrites: the power rule's guards at a zero base, a point
            outside the domain of ``log``, are dropped (``x**x`` gives
            ``x**x*(log(x) + 1)``, not a ``Piecewise``), and on a result of at
            most :data:`~diffkit.backends.symbolic.TIDY_NODES` nodes powers of
            a base are merged and common factors pulled out when that
            shortens it. ``"full"`` runs ``sympy.simplify`` instead on such a
            small result (which can take seconds); ``False`` gives the raw form
            the rules build.
        method: ``"dag"`` (symbolic reverse/forward accumulation through the
            primitive table, the default) or ``"naive"`` (SymPy's ``diff`` on
            the traced expression).
        timeout: seconds allowed; the work runs in a child process that is
            killed at the limit (:class:`~diffkit.errors.TimeLimitError`).
            ``None``, the default, is no limit (the command line's default is 60 s).
        op_limit: largest number of SymPy operations the trace and its
            derivative may build (default
            :data:`diffkit.backends.symbolic.OP_LIMIT`, a million); past it a
            :class:`~diffkit.errors.SizeLimitError`. A function nested too
            deeply for SymPy's recursive algorithms is a SizeLimitError too.

    Example:
        >>> import diffkit as dk
        >>> dk.diff("sin(x)*exp(y)", "x")
        exp(y)*cos(x)
        >>> dk.diff("x**3", order=2)
        6*x
        >>> dk.diff("x**x")
        x**x*(log(x) + 1)
        >>> dk.diff("x**x", simplify=False)
        x*x**(x - 1) + Piecewise((0, Eq(x, 0)), (x**x*log(Piecewise((1, Eq(x, 0)), (x, True))), True))
    """
    import sympy

    from .backends.symbolic import SIZE_LIMIT, derivative_exprs, integralize, tidy, trace_args
    from .errors import InvalidType
    from .limits import check_timeout, recursion_as_size_limit, run_limited

    limit = check_timeout(timeout)
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)):
        raise InvalidType(f"diff: order= is a whole number, not {type(order).__name__} ({order!r})")
    if order < 0:
        raise InvalidArgument(f"diff: order= is 0 or more, got {order}")
    if simplify not in (True, False, "full") or isinstance(simplify, (int, float)) and not isinstance(simplify, bool):
        raise InvalidArgument(f"diff: simplify= is True, False or 'full', got {simplify!r}")
    if op_limit is not None and (isinstance(op_limit, bool) or not isinstance(op_limit, (int, np.integer))
                                 or op_limit < 1):
        raise InvalidArgument(f"diff: op_limit= is a positive integer or None, got {op_limit!r}")
    F = as_function(f)
    names = list(F.variables)
    if not names:
        raise ShapeError(f"diff of {F.name}: its variables are unknown; give a dk.Function with variables")
    if wrt is None:
        if len(names) != 1:
            raise ShapeError(f"diff of {F.name}: wrt= is needed, the variables are {', '.join(names)}")
        i = 0
    elif isinstance(wrt, (int, np.integer)) and not isinstance(wrt, bool):
        i = int(wrt)
        if not 0 <= i < len(names):
            raise ShapeError(f"diff of {F.name}: wrt={i} is not the position of a variable "
                             f"({', '.join(names)})")
    else:
        name = wrt.name if isinstance(wrt, sympy.Symbol) else str(wrt)
        if name not in names:
            raise ShapeError(f"diff of {F.name}: {name!r} is not a variable ({', '.join(names)})")
        i = names.index(name)
    fun = _with_names(F.fn, names)
    what = f"diff of {F.name if len(F.name) <= 60 else F.name[:57] + '...'}"

    def work() -> Any:
        with recursion_as_size_limit(what, getattr(F.expr, "depth", None)):
            traced = trace_args(fun, [0.0] * len(names), SIZE_LIMIT, op_limit)
            with _context(F, "diff", _SymbolicName):
                _, (d,) = derivative_exprs(fun, traced, "derivative", (i,), int(order), method)
            d = integralize(d)
            return tidy(d, full=simplify == "full") if simplify is not False else d

    return run_limited(work, timeout=limit, what=what)


class _SymbolicName:
    name = "symbolic"


def _with_names(fn: Callable[..., Any], names: Sequence[str]) -> Callable[..., Any]:
    def named(*args: Any) -> Any:
        return fn(*args)

    named.variables = tuple(names)  # type: ignore[attr-defined]
    named.__name__ = getattr(fn, "__name__", "f")
    return named
