"""Evaluate a SymPy expression with NumPy, through the primitive table.

The expression tree is flattened once into a list of steps (shared
subexpressions evaluated once); each step calls the NumPy counterpart that the
table records for the SymPy function. No code is generated, so the result runs
on every backend's traced values exactly like hand-written NumPy.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np
import sympy

from ..errors import InvalidType, UnsupportedOperation


def sympy_to_numpy() -> dict[Any, Callable[..., Any]]:
    """SymPy function class -> NumPy callable, read from the primitive table."""
    from .primitive import PRIMITIVES

    return _sympy_to_numpy(len(PRIMITIVES))  # read again when entries were added (SciPy's)


@functools.lru_cache(maxsize=2)
def _sympy_to_numpy(size: int) -> dict[Any, Callable[..., Any]]:
    from .primitive import PRIMITIVES

    table: dict[Any, Callable[..., Any]] = {}
    for prim in PRIMITIVES.values():
        if prim.elementwise and isinstance(prim.sympy, type) and issubclass(prim.sympy, sympy.Basic):
            table[prim.sympy] = getattr(np, prim.name, prim.numpy)
    table[sympy.Add] = lambda *a: functools.reduce(np.add, a)
    table[sympy.Mul] = lambda *a: functools.reduce(np.multiply, a)
    table[sympy.Pow] = np.power
    table[sympy.Max] = lambda *a: functools.reduce(np.maximum, a)
    table[sympy.Min] = lambda *a: functools.reduce(np.minimum, a)
    table[sympy.Heaviside] = lambda x, h0=0.5: np.where(x > 0, 1.0, np.where(x < 0, 0.0, h0))
    table[sympy.StrictGreaterThan] = np.greater
    table[sympy.GreaterThan] = np.greater_equal
    table[sympy.StrictLessThan] = np.less
    table[sympy.LessThan] = np.less_equal
    table[sympy.Equality] = np.equal
    table[sympy.Unequality] = np.not_equal
    return table


def _piecewise(pairs: Sequence[tuple[Any, Any]]) -> Any:
    result = pairs[-1][0]
    for value, cond in reversed(pairs[:-1]):
        result = np.where(cond, value, result)
    return result


def _distinct_postorder(expr: Any) -> list[Any]:
    """Each distinct subexpression once, operands first: iterative (no recursion limit
    on the nesting) and linear in the size of the DAG (SymPy's ``postorder_traversal``
    recurses, and walks a shared subexpression once per path to it)."""
    order: list[Any] = []
    seen: set[Any] = set()
    stack: list[tuple[Any, bool]] = [(expr, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        stack.extend((a, False) for a in reversed(node.args) if a not in seen)
    return order


def dag_has(exprs: Sequence[Any], *patterns: Any) -> bool:
    """Whether any of ``exprs`` contains a node of one of ``patterns`` (a class, or an
    expression such as ``sympy.I``, as ``Basic.has`` takes), each distinct
    subexpression visited once across all of them.

    ``Basic.has`` walks the tree: a derivative built by the chain rule shares its
    subexpressions, and a tree walk of it can take minutes where this takes
    milliseconds.

    Example:
        >>> x = sympy.Symbol("x")
        >>> e = sympy.sin(x)
        >>> for _ in range(60):          # 2**60 paths through 61 distinct nodes
        ...     e = e * e + e
        >>> dag_has([e], sympy.cos), dag_has([e, sympy.cos(x)], sympy.cos)
        (False, True)
    """
    types = tuple(p for p in patterns if isinstance(p, type))
    nodes = {p for p in patterns if not isinstance(p, type)}
    seen: set[int] = set()
    stack = [e for e in exprs if isinstance(e, sympy.Basic)]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, types) or node in nodes:
            return True
        stack.extend(a for a in node.args if id(a) not in seen)
    return False


def sympy_evaluator(expr: sympy.Basic, symbols: Sequence[sympy.Symbol]) -> Callable[..., Any]:
    """A callable ``f(*args)`` that evaluates ``expr`` with NumPy, ``args`` bound to ``symbols``."""
    table = sympy_to_numpy()
    steps: list[tuple[Any, Any, tuple[Any, ...]]] = []
    for node in _distinct_postorder(expr):
        if isinstance(node, sympy.Symbol):
            if node not in symbols:
                raise UnsupportedOperation(f"symbol {node} is not a variable")
            continue
        if node.is_Number or node in (sympy.pi, sympy.E) or isinstance(node, sympy.NumberSymbol):
            steps.append((node, float(node), ()))
            continue
        if node is sympy.I:  # complex intermediates (a real function of real symbols)
            steps.append((node, 1j, ()))
            continue
        if isinstance(node, sympy.logic.boolalg.BooleanTrue):
            steps.append((node, True, ()))
            continue
        if isinstance(node, sympy.functions.elementary.piecewise.ExprCondPair):
            steps.append((node, "pair", node.args))
            continue
        if isinstance(node, sympy.Piecewise):
            steps.append((node, "piecewise", node.args))
            continue
        fn = table.get(node.func)
        if fn is None:
            raise UnsupportedOperation(
                f"SymPy function {node.func.__name__} has no NumPy counterpart in diffkit's table")
        steps.append((node, fn, node.args))
    positions = list(symbols)

    def evaluate(*args: Any) -> Any:
        if len(args) != len(positions):
            raise InvalidType(f"function of a SymPy expression: expected {len(positions)} arguments "
                              f"({', '.join(map(str, positions))}), got {len(args)}")
        env: dict[Any, Any] = dict(zip(positions, args))
        for node, fn, children in steps:
            if not callable(fn) and fn not in ("pair", "piecewise"):
                env[node] = fn
            elif fn == "pair":
                env[node] = (env[children[0]], env[children[1]])
            elif fn == "piecewise":
                env[node] = _piecewise([env[c] for c in children])
            else:
                env[node] = fn(*[env[c] for c in children])
        return env[expr]

    evaluate.variables = tuple(str(s) for s in positions)  # type: ignore[attr-defined]
    return evaluate
