"""Hypothesis strategies: random functions built from the primitive table, and points inside their domains.

This module imports Hypothesis, so ``import diffkit`` does not import it; import
it as ``diffkit.strategies`` in tests (Hypothesis is in the ``test`` extra).

:func:`functions` draws expressions over the table's elementwise primitives
(:data:`diffkit.primitives.PRIMITIVES`): which primitives, their arity, their
domains and whether they are analytic or have a kink all come from the table,
so a primitive added there is drawn here without a change. Every argument of a
domain-restricted primitive is mapped into its open domain by a transform
derived from ``prim.domain`` (``log(1 + x**2)``, ``arcsin(0.9*tanh(x))``,
``x / (1.1 + y**2)``), and arguments under which a primitive grows explosively
(``exp``, ``sinh``, ...) are bounded by ``tanh``; so almost every point is
valid. Failing cases shrink to short expressions: leaves (variables first, then
small constants) come first in every choice, and Hypothesis shrinks towards
earlier choices.

:func:`points` draws arguments for a function and rejects those where a
primitive meets a value outside its domain, a non-finite value or partial
derivative, or a kink, within a margin.

A property test, as in the docs (docs/testing.md) (shown as text: Hypothesis forbids
``.example()`` in doctests)::

    import hypothesis.strategies as st
    from hypothesis import given
    import diffkit as dk
    from diffkit.strategies import functions, points

    @given(data=st.data())
    def test_backends_agree(data):
        f = data.draw(functions(variables=("x", "y"), max_depth=3))
        args = data.draw(points(f))       # inside the domain, away from kinks
        dk.assert_backends_agree(f, args, op="grad", argnums=(0, 1))

Array-valued variables (``shapes={"x": (3,)}``) add ``np.sum``, ``np.mean``,
indexing, ``np.dot`` and ``@`` with the fixed matrices of
:func:`constant_matrix`; such functions are callables whose name is the NumPy
code they run.

Example:
    >>> from diffkit.strategies import domain_transform, constant_matrix
    >>> domain_transform((0.0, float("inf")), "x")
    '1 + x**2'
    >>> domain_transform((-1.0, 1.0), "sin(y)")
    '0.9*tanh(sin(y))'
    >>> constant_matrix(2)
    array([[ 0.5 ,  0.  ],
           [-0.25,  1.25]])
"""

from __future__ import annotations

import math
import warnings
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .core.function import Function, as_function, expression_functions
from .core.observe import ObservingTrace
from .core.values import concrete
from .errors import InvalidArgument
from .core.primitive import PRIMITIVES, Primitive

__all__ = ["functions", "points", "domain_transform", "constant_matrix", "constant_vector",
           "elementwise_primitives", "point_problem"]

#: The small constants leaves may be, simplest first (Hypothesis shrinks to the first).
CONSTANTS: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 1.5, 0.25)

# An argument under which a primitive exceeds this at |argument| = 30 grows
# explosively (exp, sinh, 2**x ...): nested twice it overflows float64, so the
# strategy bounds that argument with tanh.
_EXPLOSIVE = 1e6
_PROBE_ARG = 30.0

# Precedences of the expression builder (higher binds tighter); the table's ``infix``
# gives each infix operator's own.
_ADD, _MUL, _NEG, _POW, _ATOM = 1, 2, 3, 4, 5

# Readable names in expression strings where the table's NumPy name is long.
_SHORT = {"absolute": "abs"}

# Kinked composites that are not table entries; drawn with smooth=False.
# name -> (text template, NumPy implementation); "{0}" is the argument.
_KINK_COMPOSITES: dict[str, tuple[str, str, Callable[[Any], Any]]] = {
    "clip": ("clip({0}, -1, 1)", "np.clip({0}, -1, 1)", lambda a: np.clip(a, -1.0, 1.0)),
    "relu": ("where({0} > 0, {0}, 0)", "np.where({0} > 0, {0}, 0.0)", lambda a: np.where(a > 0, a, 0.0)),
}

_SHAPES: weakref.WeakKeyDictionary[Function, dict[str, tuple[int, ...]]] = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------
# The table, read once
# --------------------------------------------------------------------------


_ISOLATED_KINKS = frozenset({"hypot"})
"""Primitives that are not differentiable at isolated points only; smooth elsewhere."""

_COMPLEX_PARTS = frozenset({"real", "imag", "conj", "angle"})
"""Not drawn unless asked for by name: expressions are functions of real points, where
these are the value itself or a constant (tests/test_complex.py tests them on complex values)."""


def elementwise_primitives(primitives: Sequence[str] | None = None, smooth: bool = True,
                           analytic: bool = False) -> list[Primitive]:
    """The table's elementwise, differentiable primitives that :func:`functions` draws from.

    Args:
        primitives: names (NumPy names or aliases) to keep; ``None`` keeps all.
        smooth: drop primitives with a ``kink``, except those not differentiable
            at isolated points only (``hypot`` at the origin), which
            :func:`points` keeps away from.
        analytic: keep only ``complex_safe`` (complex-analytic) primitives.

    Example:
        >>> names = [p.name for p in elementwise_primitives()]
        >>> "log" in names, "absolute" in names, "greater" in names
        (True, False, False)
        >>> [p.name for p in elementwise_primitives(["asin", "abs"], smooth=False)]
        ['absolute', 'arcsin']
    """
    wanted = None
    if primitives is not None:
        wanted = set()
        for n in primitives:
            found = [p.name for p in PRIMITIVES.values() if n == p.name or n in p.aliases]
            if not found and n not in _KINK_COMPOSITES and n != "pow":
                raise InvalidArgument(f"functions(primitives=...): {n!r} is neither in the primitive table "
                                      f"nor one of {sorted(_KINK_COMPOSITES)}")
            wanted.update(found)
    parseable = expression_functions()
    out = []
    for p in PRIMITIVES.values():
        if not (p.elementwise and p.differentiable and p.sympy is not None and p.nargs):
            continue
        if p.name not in parseable:
            continue
        if wanted is not None and p.name not in wanted or wanted is None and p.name in _COMPLEX_PARTS:
            continue
        if smooth and p.kink is not None and p.name not in _ISOLATED_KINKS:
            continue
        if analytic and not p.complex_safe:
            continue
        out.append(p)
    return out


def _inside(dom: tuple[float, float], v: float) -> float:
    lo, hi = dom
    if lo < v < hi:
        return v
    if math.isinf(hi):
        return lo + abs(v)
    if math.isinf(lo):
        return hi - abs(v)
    return 0.5 * (lo + hi)


def _domains(p: Primitive) -> tuple[tuple[float, float], ...]:
    return p.domain or ((-math.inf, math.inf),) * (p.nargs or 1)


_explosive_cache: dict[tuple[str, int], bool] = {}


def _explosive(p: Primitive, i: int) -> bool:
    """Whether ``p`` grows explosively in argument ``i`` (probed at +-30, others at 2)."""
    key = (p.name, i)
    if key not in _explosive_cache:
        doms = _domains(p)
        base = [_inside(d, 2.0) for d in doms]
        hit = False
        for big in (_PROBE_ARG, -_PROBE_ARG):
            lo, hi = doms[i]
            if not lo < big < hi:
                continue
            args = list(base)
            args[i] = big
            with np.errstate(all="ignore"):
                v = np.asarray(p.numpy(*args), dtype=float)
            hit = hit or not bool(np.all(np.isfinite(v))) or bool(np.any(np.abs(v) > _EXPLOSIVE))
        _explosive_cache[key] = hit
    return _explosive_cache[key]


def _num(v: float) -> str:
    if float(v).is_integer():
        return str(int(v))
    return repr(round(float(v), 12))


def _transform(dom: tuple[float, float], arg: str, tanh: str, prec: int) -> tuple[str, int]:
    """Text and precedence of the transform of ``arg`` (of precedence ``prec``) into ``dom``."""
    lo, hi = dom
    sq = f"{arg if prec > _POW else '(' + arg + ')'}**2"
    if math.isinf(lo) and math.isinf(hi):
        return arg, prec
    if math.isinf(hi):
        c = lo + 1.0
        if c == 0:
            return sq, _POW
        return (f"{_num(c)} + {sq}" if c > 0 else f"{sq} - {_num(-c)}"), _ADD
    if math.isinf(lo):
        c = hi - 1.0
        return (f"-{sq}", _NEG) if c == 0 else (f"{_num(c)} - {sq}", _ADD)
    mid, half = 0.5 * (lo + hi), 0.45 * (hi - lo)
    body = f"{_num(half)}*{tanh}({arg})"
    return (body, _MUL) if mid == 0 else (f"{_num(mid)} + {body}", _ADD)


def domain_transform(dom: tuple[float, float], arg: str, *, tanh: str = "tanh", prec: int = _ATOM) -> str:
    """The text of a transform that maps any real ``arg`` into the open interval ``dom``.

    ``(a, inf)`` gives ``a+1 + arg**2``, ``(-inf, b)`` gives ``b-1 - arg**2`` and a
    bounded ``(a, b)`` gives ``mid + 0.9*halfwidth*tanh(arg)``: at least 1 (or 5%
    of the width) away from the edge, where the derivatives stay moderate.
    ``prec`` is the precedence of ``arg`` (1 for a sum, 2 for a product, 5 for
    a name or a call): it is parenthesized where it would not bind.

    Example:
        >>> domain_transform((1.0, float("inf")), "x")
        '2 + x**2'
        >>> domain_transform((-1.0, float("inf")), "x + y", prec=1)
        '(x + y)**2'
        >>> domain_transform((-1.5, 1.5), "x")
        '1.35*tanh(x)'
    """
    return _transform(dom, arg, tanh, prec)[0]


def _transform_fn(dom: tuple[float, float]) -> Callable[[Any], Any]:
    lo, hi = dom
    if math.isinf(lo) and math.isinf(hi):
        return lambda a: a
    if math.isinf(hi):
        c = lo + 1.0
        return lambda a: (a**2 + c) if c else a**2
    if math.isinf(lo):
        c = hi - 1.0
        return lambda a: c - a**2
    mid, half = 0.5 * (lo + hi), 0.45 * (hi - lo)
    return lambda a: (half * np.tanh(a) + mid) if mid else half * np.tanh(a)


def constant_matrix(n: int) -> np.ndarray:
    """The fixed ``n x n`` matrix ``Mn`` of array expressions: well conditioned, entries in quarters.

    Example:
        >>> constant_matrix(3).shape
        (3, 3)
    """
    i, j = np.indices((n, n))
    return np.eye(n) + (((i + 2 * j) % 5) - 2) / 4.0


def constant_vector(n: int) -> np.ndarray:
    """The fixed vector ``wn`` of array expressions (``np.dot(x, w3)``).

    Example:
        >>> constant_vector(3)
        array([ 1. , -0.5,  0.5])
    """
    return np.array([(1.0, -0.5, 0.5, 2.0, -1.5)[k % 5] for k in range(n)])


# --------------------------------------------------------------------------
# Expression trees
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    text: str
    prec: int
    shape: tuple[int, ...] = ()
    fn: Callable[[dict[str, Any]], Any] | None = None  # array mode: env -> value

    def wrapped(self, prec: int) -> str:
        return self.text if self.prec >= prec else f"({self.text})"


class _Builder:
    """Renders nodes as expression text (scalar mode) or NumPy code with a callable (array mode)."""

    def __init__(self, arrays: bool):
        self.arrays = arrays
        self.np = "np." if arrays else ""

    def leaf_var(self, name: str, shape: tuple[int, ...]) -> _Node:
        return _Node(name, _ATOM, shape, (lambda env: env[name]) if self.arrays else None)

    def leaf_const(self, c: float) -> _Node:
        return _Node(_num(c), _ATOM, (), (lambda env: c) if self.arrays else None)

    def transform(self, node: _Node, dom: tuple[float, float], bound: bool) -> _Node:
        if bound and math.isinf(dom[0]) and math.isinf(dom[1]):
            return self.call("tanh", np.tanh, [node])
        text, prec = _transform(dom, node.text, f"{self.np}tanh", node.prec)
        if text == node.text:
            return node
        fn = None
        if self.arrays:
            t, inner = _transform_fn(dom), node.fn
            assert inner is not None
            fn = lambda env: t(inner(env))  # noqa: E731
        return _Node(text, prec, node.shape, fn)

    def call(self, name: str, ufunc: Callable[..., Any], args: list[_Node]) -> _Node:
        shape = np.broadcast_shapes(*[a.shape for a in args])
        text = f"{self.np}{name if self.arrays else _SHORT.get(name, name)}({', '.join(a.text for a in args)})"
        fn = None
        if self.arrays:
            fns = [a.fn for a in args]
            fn = lambda env: ufunc(*[g(env) for g in fns])  # type: ignore[misc]  # noqa: E731
        return _Node(text, _ATOM, shape, fn)

    def infix(self, op: str, prec: int, left: _Node, right: _Node) -> _Node:
        # right operands bind as written: a - (b - c) keeps its parentheses
        text = f"{left.wrapped(prec)} {op} {right.wrapped(prec + 1)}"
        fn = None
        if self.arrays:
            import operator

            f = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
                 "@": operator.matmul}[op]
            lf, rf = left.fn, right.fn
            fn = lambda env: f(lf(env), rf(env))  # type: ignore[misc]  # noqa: E731
        shape = np.broadcast_shapes(left.shape, right.shape) if op != "@" else _matmul_shape(left.shape,
                                                                                               right.shape)
        return _Node(text, prec, shape, fn)

    def negate(self, node: _Node) -> _Node:
        fn = None
        if self.arrays:
            g = node.fn
            fn = lambda env: -g(env)  # type: ignore[misc]  # noqa: E731
        return _Node(f"-{node.wrapped(_POW)}", _NEG, node.shape, fn)

    def power(self, node: _Node, k: int) -> _Node:
        fn = None
        if self.arrays:
            g = node.fn
            fn = lambda env: g(env) ** k  # type: ignore[misc]  # noqa: E731
        return _Node(f"{node.wrapped(_POW + 1)}**{k}", _POW, node.shape, fn)

    def composite(self, name: str, node: _Node) -> _Node:
        text_t, np_t, impl = _KINK_COMPOSITES[name]
        text = (np_t if self.arrays else text_t).format(node.text)
        fn = None
        if self.arrays:
            g = node.fn
            fn = lambda env: impl(g(env))  # type: ignore[misc]  # noqa: E731
        return _Node(text, _ATOM, node.shape, fn)

    def where(self, cond: _Node, a: _Node, b: _Node) -> _Node:
        c = f"{cond.wrapped(_ADD)} > 0"
        text = f"{self.np}where({c}, {a.text}, {b.text})"
        fn = None
        if self.arrays:
            cf, af, bf = cond.fn, a.fn, b.fn
            fn = lambda env: np.where(cf(env) > 0, af(env), bf(env))  # type: ignore[misc]  # noqa: E731
        return _Node(text, _ATOM, np.broadcast_shapes(cond.shape, a.shape, b.shape), fn)

    # -- array operations ---------------------------------------------------------
    def reduce(self, kind: str, node: _Node) -> _Node:
        g = node.fn
        assert g is not None
        n = node.shape[-1] if node.shape else 0
        if kind == "sum" or not node.shape:
            return _Node(f"np.sum({node.text})", _ATOM, (), lambda env: np.sum(g(env)))
        if kind == "mean":
            return _Node(f"np.mean({node.text})", _ATOM, (), lambda env: np.mean(g(env)))
        if kind == "index":
            return _Node(f"{node.wrapped(_ATOM)}[0]", _ATOM, node.shape[1:], lambda env: g(env)[0])
        w = constant_vector(n)
        return _Node(f"np.dot({node.text}, w{n})", _ATOM, node.shape[:-1], lambda env: np.dot(g(env), w))

    def matmul(self, node: _Node, shape: tuple[int, ...]) -> _Node:
        n = shape[-1]
        m = constant_matrix(n)
        g = node.fn
        assert g is not None
        if node.shape == shape:
            return _Node(f"{node.wrapped(_MUL + 1)} @ M{n}", _MUL, shape, lambda env: g(env) @ m)
        w = constant_vector(n)  # a scalar operand: broadcast it along the constant vector
        return _Node(f"{node.wrapped(_MUL + 1)} * w{n}", _MUL, np.broadcast_shapes(node.shape, (n,)),
                     lambda env: g(env) * w)


def _matmul_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(np.matmul(np.zeros(a), np.zeros(b)).shape)


@dataclass(frozen=True)
class _Spec:
    variables: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]]
    unary: tuple[Primitive, ...]
    binary: tuple[Primitive, ...]
    ternary: tuple[Primitive, ...]
    composites: tuple[str, ...]
    power: bool
    arrays: bool


@st.composite
def _node(draw: Any, spec: _Spec, arrays: bool, depth: int, shape: tuple[int, ...], root: bool = False) -> _Node:
    """One node of an expression tree; its children are drawn as nodes too.

    Every node is a draw of this one strategy, so Hypothesis's shrinker can
    replace a node by one of its descendants (a failing ``sin(log(1 + x**2))``
    becomes ``log(1 + x**2)``), and every choice shrinks towards a leaf, a
    variable, the first primitive of the table.
    """
    b = _Builder(arrays)
    kinds = []
    if spec.unary or spec.composites:
        kinds.append("unary")
    if spec.binary or spec.power:
        kinds.append("binary")
    if spec.arrays:
        kinds.append("array")
    if spec.ternary:
        kinds.append("where")
    kind = "leaf"
    if kinds:
        # 0 is a leaf (what shrinking aims at); the root is a leaf less often, or most
        # drawn functions would be a lone variable. The kind is drawn at every depth, also
        # where only a leaf may follow: a node's choices then read the same wherever it
        # sits, so the shrinker can move a deep subtree up in place of its ancestor
        # (sqrt(1 + log(1 + x**2)**2) -> log(1 + x**2)) instead of stopping there.
        k = draw(st.integers(0, len(kinds) * (2 if root else 1)))
        kind = "leaf" if k == 0 or depth <= 0 else kinds[(k - 1) % len(kinds)]

    def child(sub_shape: tuple[int, ...] = shape) -> _Node:
        node: _Node = draw(_node(spec, arrays, depth - 1, sub_shape))
        return node

    if kind == "leaf":
        names = [v for v in spec.variables if spec.shapes.get(v, ()) in (shape, ())]
        choices: list[Any] = names
        if spec.arrays and shape == ():
            choices = names + [f"np.sum({v})" for v in spec.variables if spec.shapes.get(v, ())]
        # a variable three times in four (0 first: shrinking makes leaves variables), else a constant
        if choices and draw(st.integers(0, 3)) < 3:
            leaf = draw(st.sampled_from(choices))
        else:
            leaf = draw(st.sampled_from(CONSTANTS))
        if isinstance(leaf, float):
            return b.leaf_const(leaf)
        if leaf.startswith("np.sum("):
            v = leaf[7:-1]
            return b.reduce("sum", b.leaf_var(v, spec.shapes[v]))
        return b.leaf_var(leaf, spec.shapes.get(leaf, ()))

    if kind == "unary":
        ops: list[Any] = list(spec.unary) + list(spec.composites)
        op = draw(st.sampled_from(ops))
        node = child()
        if isinstance(op, str):
            return b.composite(op, node)
        return _apply(b, op, [node])

    if kind == "binary":
        ops = (["power"] if spec.power else []) + list(spec.binary)
        op = draw(st.sampled_from(ops))
        left = child()
        if op == "power":
            return b.power(left, draw(st.sampled_from((2, 3))))
        right = child()
        return _apply(b, op, [left, right])

    if kind == "where":
        return b.where(child(), child(), child())

    # array operations
    if shape == ():
        sources = sorted({s for s in spec.shapes.values() if s}, key=len)
        src = draw(st.sampled_from(sources))
        how = draw(st.sampled_from(("sum", "index", "mean", "dot") if len(src) == 1 else ("sum", "mean")))
        return b.reduce(how, child(src))
    return b.matmul(child(), shape)


def _apply(b: _Builder, p: Primitive, args: list[_Node]) -> _Node:
    doms = _domains(p)
    args = [b.transform(a, doms[i], _explosive(p, i)) for i, a in enumerate(args)]
    if p.infix is not None:
        op, prec = p.infix
        return b.infix(op, prec, args[0], args[1])
    if p.name == "negative":
        return b.negate(args[0])
    return b.call(p.name, getattr(np, p.name), args)


def functions(variables: Sequence[str] = ("x",), max_depth: int = 3, primitives: Sequence[str] | None = None,
              smooth: bool = True, shapes: Mapping[str, tuple[int, ...]] | None = None, analytic: bool = False,
              scalar_output: bool | None = None) -> st.SearchStrategy[Function]:
    """A strategy of :class:`~diffkit.Function` s: random expressions over the primitive table.

    Args:
        variables: the variable names, in argument order (every drawn function
            takes all of them, whether or not it uses each).
        max_depth: the largest nesting of primitives and operators (the domain
            transforms around arguments are not counted).
        primitives: names (NumPy names or aliases) to draw from; ``None`` for
            every elementwise, differentiable primitive of the table. ``power``
            is drawn with a constant exponent 2 or 3; with ``smooth=False`` the
            composites ``clip`` and ``relu`` (written with ``where``) may be named.
        smooth: leave out primitives with a kink (``abs``, ``maximum``, ...);
            ``False`` draws them too, and ``clip`` and a ``where``-relu.
        shapes: shapes of array-valued variables, e.g. ``{"x": (3,)}``; adds
            ``np.sum``, ``np.mean``, ``x[0]``, ``np.dot(x, w3)`` and ``x @ M3``
            (:func:`constant_vector`, :func:`constant_matrix`).
        analytic: only complex-analytic primitives (``complex_safe``), so the
            numeric backend can use the complex step.
        scalar_output: with ``shapes``: ``True`` draws scalar-valued functions
            only (for ``grad``), ``False`` array-valued ones only, ``None`` both.

    Scalar functions are parsed from their text (:meth:`Function.parse`), so
    ``f.source`` is the expression, e.g. ``'log(1 + x**2) + sin(y)*x'``; array
    functions are callables whose ``source`` and name are the NumPy code.

    Example (as text: Hypothesis forbids ``.example()`` in doctests)::

        @given(f=functions(variables=("x", "y"), max_depth=2), data=st.data())
        def test_grad(f, data):
            args = data.draw(points(f))
            dk.assert_backends_agree(f, args, op="grad", argnums=(0, 1))

    Examples:
        Deterministic pieces of it:

        >>> import math
        >>> [p.name for p in elementwise_primitives(["log", "sin"])]
        ['log', 'sin']
        >>> domain_transform(PRIMITIVES["log"].domain[0], "x")
        '1 + x**2'
    """
    variables = tuple(variables)
    if not variables:
        raise InvalidArgument("functions(): give at least one variable")
    if max_depth < 1:
        raise InvalidArgument(f"functions(): max_depth must be at least 1, got {max_depth!r}")
    shapes = {k: tuple(int(n) for n in v) for k, v in (shapes or {}).items()}
    unknown = set(shapes) - set(variables)
    if unknown:
        raise InvalidArgument(f"functions(): shapes for unknown variables {sorted(unknown)}; "
                              f"the variables are {list(variables)}")
    prims = elementwise_primitives(primitives, smooth=smooth, analytic=analytic)
    named = set(primitives) if primitives is not None else None
    power = named is None or "power" in named or "pow" in named
    prims = [p for p in prims if p.name != "power"]
    composites: tuple[str, ...] = ()
    if not smooth:
        composites = tuple(c for c in _KINK_COMPOSITES if named is None or c in named)
        if analytic:
            composites = ()
    spec = _Spec(
        variables=variables, shapes=shapes,
        # the sign operations last: a wrapping minus is the least telling step for the shrinker to keep
        unary=tuple(sorted((p for p in prims if p.nargs == 1), key=lambda p: p.name in ("negative", "positive"))),
        binary=tuple(p for p in prims if p.nargs == 2),
        ternary=tuple(p for p in prims if p.nargs == 3 and p.nondiff_args == frozenset({0})),
        composites=composites, power=power, arrays=any(shapes.values()),
    )
    if not (spec.unary or spec.binary or spec.power or spec.composites):
        raise InvalidArgument(f"functions(): no primitive left to draw from (primitives={primitives!r}, "
                              f"smooth={smooth}, analytic={analytic})")

    if not spec.arrays:
        return _node(spec, False, max_depth, (), root=True).map(
            lambda node: Function.parse(node.text, variables=variables))

    out_shapes = sorted({()} | {s for s in shapes.values() if s}, key=len)
    if scalar_output is True:
        out_shapes = [()]
    elif scalar_output is False:
        out_shapes = [s for s in out_shapes if s]
    return _array_functions(spec, max_depth, tuple(out_shapes), dict(shapes))


@st.composite
def _array_functions(draw: Any, spec: _Spec, max_depth: int, out_shapes: tuple[tuple[int, ...], ...],
                     shapes: dict[str, tuple[int, ...]]) -> Function:
    shape = draw(st.sampled_from(out_shapes))
    node = draw(_node(spec, True, max_depth, shape, root=True))
    if shape and node.shape != shape:  # every leaf was a scalar: give it the shape
        node = _Builder(True).matmul(node, shape)
    body = node.fn
    assert body is not None
    variables = spec.variables

    def fn(*args: Any) -> Any:
        return body(dict(zip(variables, args)))

    F = Function(fn, variables=variables, name=node.text, source=node.text)
    _SHAPES[F] = dict(shapes)
    return F


# --------------------------------------------------------------------------
# Points
# --------------------------------------------------------------------------


def _finite(v: Any) -> bool:
    try:
        a = np.asarray(v)
        if a.dtype.kind not in "fciub":
            return True
        return bool(np.all(np.isfinite(a)))
    except Exception:
        return False


class _PointTrace(ObservingTrace):
    """Runs the function once, checking each primitive at and around its arguments."""

    backend_name = "point probe"

    def __init__(self, margin: float):
        super().__init__()
        self.margin = margin
        self.problem: str | None = None

    def evaluate(self, prim: Primitive, vals: list[Any], traced: list[bool], params: dict[str, Any]) -> Any:
        out = super().evaluate(prim, vals, traced, params)
        if self.problem is None:
            self.problem = _primitive_problem(prim, vals, params, traced, out, self.margin)
        return out


def _primitive_problem(prim: Primitive, vals: list[Any], params: dict[str, Any], traced: list[bool],
                       out: Any, margin: float) -> str | None:
    if prim.differentiable and not _finite(out):
        return f"{prim.name} is not finite"
    if not prim.elementwise:
        if prim.at_kink is not None and margin > 0 and any(traced):
            for snap in (np.floor, np.ceil, np.round):
                grid = [snap(np.asarray(v, float) / margin) * margin if t else v for v, t in zip(vals, traced)]
                try:
                    if np.any(prim.at_kink(*grid, **params)):
                        return f"within {margin} of a kink of {prim.name}"
                except Exception:
                    pass
        return None
    n = len(vals)
    doms = _domains(prim)
    diff_args = [i for i in range(n) if i not in prim.nondiff_args]
    try:
        arrays = [np.asarray(v) for v in vals]
        floats = {i: np.asarray(arrays[i], dtype=np.result_type(arrays[i], np.float16)) for i in diff_args}
    except Exception:
        return None
    if prim.at_kink is not None and np.any(prim.at_kink(*vals, **params)):
        return f"at a kink of {prim.name}"
    moving = [i for i in diff_args if traced[i]]
    if len(moving) > 1:
        # singular points in several arguments at once (hypot at the origin): snap them together
        for s in (0.0,):
            moved = list(vals)
            for i in moving:
                v = floats[i]
                d = margin * np.maximum(1.0, np.abs(v))
                c = np.where(np.abs(v - s) <= d, s, v).astype(v.dtype)
                moved[i] = c if np.ndim(c) or np.ndim(vals[i]) else c[()]
            why = _local_problem(prim, moved, params, traced, margin)
            if why:
                return f"{prim.name}, arguments {moving} together: {why}"
    for i in diff_args:
        if not traced[i]:
            continue
        v = floats[i]
        d = margin * np.maximum(1.0, np.abs(v))
        lo, hi = doms[i] if i < len(doms) else (-math.inf, math.inf)
        specials: list[Any] = [0.0] + [e for e in (lo, hi) if math.isfinite(e)]
        specials += [floats[j] for j in diff_args if j != i]
        candidates = [v, v - d, v + d, v - 0.5 * d, v + 0.5 * d]
        candidates += [np.where(np.abs(v - s) <= d, s, v).astype(v.dtype) for s in specials]
        for c in candidates:
            moved = list(vals)
            moved[i] = c if np.ndim(c) or np.ndim(vals[i]) else c[()]
            why = _local_problem(prim, moved, params, traced, margin)
            if why:
                return f"{prim.name}, argument {i}: {why}"
    return None


def _local_problem(prim: Primitive, vals: list[Any], params: dict[str, Any], traced: list[bool],
                   margin: float) -> str | None:
    try:
        if margin > 0 and prim.at_kink is not None and np.any(prim.at_kink(*vals, **params)):
            return f"within {margin} of a kink ({prim.kink})"
        if not prim.differentiable:
            return None
        out = prim.numpy(*vals, **params)
        if not _finite(out):
            return "a non-finite value nearby (a domain edge or a pole)"
        for j, rule in enumerate(prim.jvp):
            if rule is None or not traced[j] or j in prim.nondiff_args:
                continue
            d = rule(np.ones_like(np.asarray(vals[j], dtype=float)), out, *vals, **params)
            if not _finite(d):
                return f"a non-finite partial derivative d/d(argument {j}) nearby"
    except Exception as e:  # math.sqrt(-1) in a rule, and the like
        return f"{type(e).__name__} nearby"
    return None


def point_problem(f: Any, args: Sequence[Any], margin: float = 1e-3) -> str | None:
    """Why ``args`` is not a good point to differentiate ``f`` at, or ``None`` when it is.

    ``f`` runs once on probe values through diffkit's dispatch; every primitive
    it meets is checked at its arguments and at arguments moved by up to
    ``margin * max(1, |value|)`` (snapped to 0, to the table's domain edges and
    to the other arguments): its value and partial derivatives must be finite
    there, and no kink (``at_kink``) may lie there. ``margin=0`` checks only
    the point itself, and ignores kinks except exactly on them.

    Example:
        >>> import numpy as np
        >>> point_problem(lambda x: np.log(x), [2.0]) is None
        True
        >>> point_problem(lambda x: np.log(x), [1e-5])
        'log, argument 0: a non-finite value nearby (a domain edge or a pole)'
        >>> point_problem(lambda x, y: np.maximum(x, y), [1.0, 1.0005])
        'maximum, argument 0: within 0.001 of a kink (ties give 1/2 to each argument, as SymPy Heaviside(0) = 1/2)'
    """
    F = as_function(f)
    trace = _PointTrace(margin)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = trace.run(F, args)
        except Exception as e:
            return f"evaluation failed ({type(e).__name__}: {str(e)[:120]})"
        if trace.problem is not None:
            return trace.problem
        if not _finite(concrete(out)):
            return "the value is not finite"
    return None


def points(f: Any, min_value: float = -2.0, max_value: float = 2.0, dtype: Any = np.float64,
           margin: float = 1e-3, shapes: Mapping[str, tuple[int, ...]] | None = None,
           allow_subnormal: bool = False) -> st.SearchStrategy[tuple[Any, ...]]:
    """A strategy of argument tuples for ``f``, inside its domain and away from its kinks.

    Args:
        f: a Function from :func:`functions`, or any callable (its variables
            come from its signature).
        min_value: the lower end of every coordinate's range.
        max_value: the upper end of every coordinate's range.
        dtype: ``np.float64`` or ``np.float32``: scalars are Python floats
            (float64) or ``np.float32``, arrays have this dtype.
        margin: reject points within ``margin * max(1, |value|)`` of a kink,
            a domain edge or a pole of some primitive (see :func:`point_problem`);
            0 rejects only points exactly on a kink or where something is not finite.
        shapes: shapes of array arguments; by default those :func:`functions`
            drew ``f`` with, else scalars.
        allow_subnormal: draw subnormal floats too.

    The transforms of :func:`functions` keep almost every point valid; the rest
    are filtered out (Hypothesis counts them as rejected examples).

    Example (as text)::

        args = data.draw(points(f, min_value=-1, max_value=1, dtype=np.float32))

    Checking a point the same way:
        >>> point_problem("sqrt(1 + x**2)", [0.0]) is None
        True
    """
    F = as_function(f)
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise InvalidArgument(f"points(): dtype must be a floating dtype, got {dt}")
    if not min_value < max_value:
        raise InvalidArgument(f"points(): min_value must be below max_value, got min_value={min_value!r}, "
                              f"max_value={max_value!r}")
    shp = dict(_SHAPES.get(F, {}))
    shp.update({k: tuple(v) for k, v in (shapes or {}).items()})
    width = dt.itemsize * 8
    elements = st.floats(min_value, max_value, allow_nan=False, allow_infinity=False, width=width,
                         allow_subnormal=allow_subnormal)
    names = F.variables or ("x",)
    parts: list[st.SearchStrategy[Any]] = []
    for name in names:
        shape = shp.get(name, ())
        if shape:
            parts.append(hnp.arrays(dt, shape, elements=elements))
        elif dt == np.float64:
            parts.append(elements)
        else:
            parts.append(elements.map(dt.type))
    return st.tuples(*parts).filter(lambda args: point_problem(F, args, margin) is None)
