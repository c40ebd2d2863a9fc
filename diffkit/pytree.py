"""Pytrees: nested dicts, lists, tuples and namedtuples of arrays, as JAX has them.

Every operator takes pytree arguments: it flattens each differentiated
argument into its leaves (the arrays and numbers), differentiates with respect
to the leaves, and rebuilds the results in the argument's structure. The
conventions are JAX's (``jax.tree_util``): a dict's children are in sorted key
order, an ``OrderedDict``'s in insertion order, a namedtuple's in field order;
``None`` is a node without children (no leaf); anything else (a float, a NumPy
array, a traced value) is a leaf. :func:`register_pytree_node` adds a
container type of your own. No dependency on JAX.

Example:
    >>> import diffkit as dk
    >>> leaves, tree = dk.tree_flatten({"w": [1.0, 2.0], "b": 3.0, "skip": None})
    >>> leaves
    [3.0, 1.0, 2.0]
    >>> tree
    PyTreeDef({'b': *, 'skip': None, 'w': [*, *]})
    >>> dk.tree_unflatten(tree, [30.0, 10.0, 20.0])
    {'b': 30.0, 'skip': None, 'w': [10.0, 20.0]}
    >>> dk.tree_map(lambda v: 2 * v, {"w": [1.0, 2.0], "b": 3.0})
    {'b': 6.0, 'w': [2.0, 4.0]}
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Hashable, Iterable, Sequence

import numpy as np

from .errors import InvalidArgument, InvalidType

__all__ = ["PyTreeDef", "register_pytree_node", "tree_flatten", "tree_leaves", "tree_map", "tree_structure",
           "tree_unflatten"]

_Flatten = Callable[[Any], "tuple[Iterable[Any], Hashable]"]
_Unflatten = Callable[[Hashable, Sequence[Any]], Any]

_REGISTRY: dict[type, tuple[_Flatten, _Unflatten]] = {}
"""Container types registered by :func:`register_pytree_node`: type -> (flatten, unflatten)."""


def register_pytree_node(nodetype: type, flatten: _Flatten, unflatten: _Unflatten) -> None:
    """Make ``nodetype`` a pytree container (as ``jax.tree_util.register_pytree_node``).

    Args:
        nodetype: the container class.
        flatten: ``flatten(obj)`` returns ``(children, aux)``; ``aux`` is hashable
            data kept in the tree structure (e.g. field names).
        unflatten: ``unflatten(aux, children)`` rebuilds the object.

    Example:
        >>> import diffkit as dk
        >>> class Pair:
        ...     def __init__(self, a, b):
        ...         self.a, self.b = a, b
        >>> dk.register_pytree_node(Pair, lambda p: ((p.a, p.b), None), lambda aux, ch: Pair(*ch))
        >>> g = dk.grad(lambda p: p.a * p.b)(Pair(2.0, 5.0))
        >>> float(g.a), float(g.b)
        (5.0, 2.0)
    """
    if not isinstance(nodetype, type):
        raise InvalidType(f"register_pytree_node: nodetype must be a class, not {type(nodetype).__name__}")
    if nodetype in (dict, list, tuple, type(None), collections.OrderedDict):
        raise InvalidArgument(f"register_pytree_node: {nodetype.__name__} is a pytree node already")
    _REGISTRY[nodetype] = (flatten, unflatten)


def _is_namedtuple(t: type) -> bool:
    return issubclass(t, tuple) and hasattr(t, "_fields")


def _kind(x: Any) -> type | None:
    """The node type of ``x``, or None for a leaf."""
    t = type(x)
    if t is float or t is np.ndarray:  # the common leaves, first: the operators ask on every call
        return None
    if t is dict or t is list or t is tuple or x is None or t is collections.OrderedDict:
        return t
    if t in _REGISTRY:
        return t
    if _is_namedtuple(t):
        return t
    if isinstance(x, dict) and t is not dict and not isinstance(x, collections.OrderedDict):
        return dict  # (a defaultdict or other dict subclass: JAX sorts their keys too)
    return None


def _sorted_keys(d: dict[Any, Any]) -> list[Any]:
    try:
        return sorted(d)
    except TypeError as e:
        raise InvalidType(f"pytree: a dict's keys must be sortable (JAX orders them), got {list(d)!r}") from e


class PyTreeDef:
    """The structure of a pytree: its nodes without the leaves (``jax.tree_util.PyTreeDef``).

    Equal structures compare equal and hash alike; ``num_leaves`` counts the leaves.
    """

    __slots__ = ("kind", "aux", "children", "num_leaves", "_hash")

    def __init__(self, kind: type | None, aux: Any, children: tuple[PyTreeDef, ...]) -> None:
        self.kind = kind  # None: a leaf
        self.aux = aux
        self.children = children
        self.num_leaves: int = 1 if kind is None else sum(c.num_leaves for c in children)
        self._hash = hash((kind, aux, children))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PyTreeDef) and self.kind is other.kind and self.aux == other.aux \
            and self.children == other.children

    def __hash__(self) -> int:
        return self._hash

    @property
    def is_leaf(self) -> bool:
        return self.kind is None

    def _text(self) -> str:
        k = self.kind
        if k is None:
            return "*"
        if k is type(None):
            return "None"
        parts = [c._text() for c in self.children]
        if k is dict or k is collections.OrderedDict:
            body = "{" + ", ".join(f"{key!r}: {p}" for key, p in zip(self.aux, parts)) + "}"
            return body if k is dict else f"OrderedDict({body})"
        if k is list:
            return "[" + ", ".join(parts) + "]"
        if k is tuple:
            return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
        if _is_namedtuple(k) and k not in _REGISTRY:
            return f"{k.__name__}(" + ", ".join(f"{f}={p}" for f, p in zip(self.aux, parts)) + ")"
        return f"CustomNode({k.__name__}[{self.aux!r}], [" + ", ".join(parts) + "])"

    def __repr__(self) -> str:
        return f"PyTreeDef({self._text()})"


_LEAF = PyTreeDef(None, None, ())


def _children(x: Any, kind: type) -> tuple[list[Any], Any, list[str]]:
    """The children of node ``x``, its aux data, and each child's key in a path."""
    if kind is dict or kind is collections.OrderedDict:
        keys = _sorted_keys(x) if kind is dict else list(x)
        return [x[k] for k in keys], tuple(keys), [f"[{k!r}]" for k in keys]
    if kind is list or kind is tuple:
        return list(x), None, [f"[{i}]" for i in range(len(x))]
    if kind is type(None):
        return [], None, []
    if kind in _REGISTRY:
        ch, aux = _REGISTRY[kind][0](x)
        ch = list(ch)
        return ch, aux, [f"[<{i}>]" for i in range(len(ch))]
    fields = kind._fields  # a namedtuple
    return list(x), tuple(fields), [f".{f}" for f in fields]


def _flatten(x: Any, leaves: list[Any], paths: list[str] | None, path: str) -> PyTreeDef:
    kind = _kind(x)
    if kind is None:
        leaves.append(x)
        if paths is not None:
            paths.append(path)
        return _LEAF
    ch, aux, keys = _children(x, kind)
    return PyTreeDef(kind, aux, tuple(_flatten(c, leaves, paths, path + k) for c, k in zip(ch, keys)))


def tree_flatten(tree: Any) -> tuple[list[Any], PyTreeDef]:
    """The leaves of ``tree`` (in JAX's order) and its structure.

    Example:
        >>> import diffkit as dk
        >>> dk.tree_flatten((1.0, {"b": 2.0, "a": None}))
        ([1.0, 2.0], PyTreeDef((*, {'a': None, 'b': *})))
    """
    leaves: list[Any] = []
    return leaves, _flatten(tree, leaves, None, "")


def tree_flatten_with_paths(tree: Any) -> tuple[list[Any], list[str], PyTreeDef]:
    """As :func:`tree_flatten`, with each leaf's path in the tree (``"['w'][0]"``; ``""`` for a
    tree that is a leaf), for error messages.

    Example:
        >>> from diffkit.pytree import tree_flatten_with_paths
        >>> tree_flatten_with_paths({"w": [1.0, 2.0]})[1]
        ["['w'][0]", "['w'][1]"]
    """
    leaves: list[Any] = []
    paths: list[str] = []
    return leaves, paths, _flatten(tree, leaves, paths, "")


def tree_leaves(tree: Any) -> list[Any]:
    """The leaves of ``tree``, in JAX's order.

    Example:
        >>> import diffkit as dk
        >>> dk.tree_leaves({"b": [2.0, None], "a": 1.0})
        [1.0, 2.0]
    """
    return tree_flatten(tree)[0]


def tree_structure(tree: Any) -> PyTreeDef:
    """The structure of ``tree``.

    Example:
        >>> import diffkit as dk
        >>> dk.tree_structure({"b": [2.0, None], "a": 1.0})
        PyTreeDef({'a': *, 'b': [*, None]})
    """
    return tree_flatten(tree)[1]


def _build(treedef: PyTreeDef, it: Iterable[Any]) -> Any:
    k = treedef.kind
    if k is None:
        return next(it)  # type: ignore[call-overload]
    if k is type(None):
        return None
    ch = [_build(c, it) for c in treedef.children]
    if k is dict:
        return dict(zip(treedef.aux, ch))
    if k is collections.OrderedDict:
        return collections.OrderedDict(zip(treedef.aux, ch))
    if k is list:
        return ch
    if k is tuple:
        return tuple(ch)
    if k in _REGISTRY:
        return _REGISTRY[k][1](treedef.aux, ch)
    return k(*ch)  # a namedtuple


def tree_unflatten(treedef: PyTreeDef, leaves: Iterable[Any]) -> Any:
    """The pytree of structure ``treedef`` with ``leaves`` (in order).

    Example:
        >>> import diffkit as dk
        >>> _, tree = dk.tree_flatten([1.0, (2.0, 3.0)])
        >>> dk.tree_unflatten(tree, ["a", "b", "c"])
        ['a', ('b', 'c')]
    """
    leaves = list(leaves)
    if len(leaves) != treedef.num_leaves:
        raise InvalidArgument(f"tree_unflatten: {treedef} has {treedef.num_leaves} leaves, got {len(leaves)}")
    return _build(treedef, iter(leaves))


def tree_map(f: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """``f`` applied to the leaves of ``tree`` (and the matching leaves of ``rest``,
    trees of the same structure).

    Example:
        >>> import diffkit as dk
        >>> dk.tree_map(lambda a, b: a + b, {"x": 1.0, "y": [2.0]}, {"x": 10.0, "y": [20.0]})
        {'x': 11.0, 'y': [22.0]}
    """
    leaves, treedef = tree_flatten(tree)
    others = []
    for r in rest:
        lv, td = tree_flatten(r)
        if td != treedef:
            raise InvalidArgument(f"tree_map: the trees differ in structure: {treedef} and {td}")
        others.append(lv)
    return tree_unflatten(treedef, [f(*xs) for xs in zip(leaves, *others)])


def is_leaf(x: Any) -> bool:
    """Whether ``x`` is a pytree leaf (not a container, not None).

    Example:
        >>> from diffkit.pytree import is_leaf
        >>> is_leaf(1.0), is_leaf(None), is_leaf((1.0,))
        (True, False, False)
    """
    return _kind(x) is None
