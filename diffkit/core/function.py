"""One function definition, four ways to write it.

A :class:`Function` wraps a plain Python/NumPy callable, a parsed expression
string, or a SymPy expression. Its variables come from the callable's
signature (or, for strings and SymPy, are sorted by name unless given), and
calling it evaluates with NumPy. Every operator accepts a Function, a
callable, a string or a SymPy expression; :func:`as_function` is the one
place that tells them apart.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InvalidArgument, InvalidType
from . import parser


class Function:
    """A function of named variables that every backend can differentiate.

    Args:
        fn: a callable written with Python operators and NumPy functions.
        variables: names of the positional arguments; by default read from
            ``fn``'s signature.
        name: a name for reports; by default ``fn.__name__``.

    Example:
        >>> import numpy as np, diffkit as dk
        >>> def f(x, y):
        ...     return np.sin(x) * np.exp(y) + x**2 * y
        >>> F = dk.Function(f)
        >>> F.variables
        ('x', 'y')
        >>> round(float(F(1.0, 2.0)), 6)
        8.217676
    """

    def __init__(self, fn: Callable[..., Any], variables: Sequence[str] | None = None,
                 name: str | None = None, source: str | None = None, expr: Any = None):
        if isinstance(fn, Function):
            variables = variables or fn.variables
            name = name or fn.name
            source = source or fn.source
            expr = expr if expr is not None else fn.expr
            fn = fn.fn
        if not callable(fn):
            raise InvalidType(f"a Function needs a callable, got {type(fn).__name__}")
        self.fn = fn
        self.variables: tuple[str, ...] = tuple(variables) if variables is not None else _signature_names(fn)
        self.name: str = name or getattr(fn, "__name__", None) or "f"
        self.source = source
        self.expr = expr

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        body = f" {self.source!r}" if self.source else ""
        return f"Function({self.name}{body}, variables={self.variables})"

    @classmethod
    def parse(cls, text: str, variables: Sequence[str] | None = None, name: str | None = None) -> Function:
        """A Function from an expression string, read by the safe parser (never ``eval``).

        Variables are sorted by name unless ``variables`` gives their order.

        Example:
            >>> import diffkit as dk
            >>> G = dk.Function.parse("a*x + b", variables=("x", "a", "b"))
            >>> G(2.0, 3.0, 1.0)
            7.0
        """
        expr = parser.parse(text, functions=expression_functions(), variables=variables)
        return cls(expr, variables=expr.variables, name=name or text, source=text, expr=expr)

    @classmethod
    def from_sympy(cls, expr: Any, variables: Sequence[Any] | None = None, name: str | None = None) -> Function:
        """A Function from a SymPy expression; variables are sorted by name unless given.

        The expression is evaluated by walking its tree and calling the NumPy
        counterparts from the primitive table: no code is generated or run.
        ``expr`` is a SymPy expression, a number, or a string, which is read by
        diffkit's safe parser (never by ``sympy.sympify``, which evaluates its
        text as Python) and converted to SymPy; anything else is an
        :class:`~diffkit.errors.InvalidType`.

        Example:
            >>> import sympy, diffkit as dk
            >>> x, y = sympy.symbols("x y")
            >>> H = dk.Function.from_sympy(sympy.sin(x) * y, variables=(x, y))
            >>> round(float(H(1.0, 2.0)), 6)
            1.682942
            >>> dk.Function.from_sympy("sigmoid(x) * y").expr
            y/(1 + exp(-x))
        """
        import sympy

        if variables is not None:
            if isinstance(variables, str):
                raise InvalidType(f"from_sympy: variables must be a sequence of names or SymPy symbols such as "
                                  f"('x', 'y'), not the string {variables!r}")
            bad = [v for v in variables if not isinstance(v, (str, sympy.Symbol))]
            if bad:
                raise InvalidType(f"from_sympy: variables are names or SymPy symbols, not "
                                  f"{type(bad[0]).__name__} ({bad[0]!r:.40})")
        if isinstance(expr, str):
            expr = _sympy_of_text(expr, variables)
        elif isinstance(expr, (int, float, np.integer, np.floating)) and not isinstance(expr, (bool, np.bool_)):
            expr = sympy.sympify(expr)  # a number: nothing to evaluate
        elif not isinstance(expr, sympy.Basic):
            raise InvalidType(f"from_sympy takes a SymPy expression, a number or an expression string, not "
                              f"{type(expr).__name__}; strings are read by diffkit's safe parser")
        if variables is None:
            syms = sorted(expr.free_symbols, key=lambda s: s.name)
        else:
            syms = [sympy.Symbol(v) if isinstance(v, str) else v for v in variables]
        missing = expr.free_symbols - set(syms)
        if missing:
            raise InvalidArgument(f"from_sympy: symbols {sorted(map(str, missing))} are not among the "
                                  f"variables {[str(s) for s in syms]}")
        from .sympy_eval import sympy_evaluator

        fn = sympy_evaluator(expr, syms)
        return cls(fn, variables=tuple(s.name for s in syms), name=name or str(expr),
                   source=str(expr), expr=expr)


def _sympy_of_text(text: str, variables: Sequence[Any] | None) -> Any:
    """An expression string as SymPy: read by the safe parser, then converted node by node."""
    import sympy

    expr = parser.parse(text, functions=expression_functions())
    given = {} if variables is None else {(v if isinstance(v, str) else v.name): v for v in variables}
    symbols = {n: given[n] if isinstance(given.get(n), sympy.Symbol) else sympy.Symbol(n) for n in expr.variables}
    return expr.to_sympy(sympy_functions(), symbols)


def _signature_names(fn: Callable[..., Any]) -> tuple[str, ...]:
    if isinstance(fn, np.ufunc):  # its signature lists out= too: the inputs are its first nin
        return ("x",) if fn.nin == 1 else tuple(f"x{i + 1}" for i in range(fn.nin))
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return ()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in sig.parameters.values() if p.kind in kinds)


def as_function(f: Any) -> Function:
    """A :class:`Function` from a Function, callable, expression string or SymPy expression."""
    if isinstance(f, Function):
        return f
    if isinstance(f, str):
        return Function.parse(f)
    if callable(f):
        return Function(f)
    try:
        import sympy
    except ImportError:  # pragma: no cover - sympy is a core dependency
        sympy = None
    if sympy is not None and isinstance(f, sympy.Basic):
        return Function.from_sympy(f)
    raise InvalidType(f"cannot differentiate a {type(f).__name__}: give a callable, a dk.Function, "
                      "an expression string or a SymPy expression")


def _sigmoid(x: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-x))


def _relu(x: Any) -> Any:
    # Written with where: relu'(0) = 0, the derivative of the selected branch (API §7).
    return np.where(x > 0, x, 0.0)


def _softplus(x: Any) -> Any:
    return np.logaddexp(x, 0.0)


COMPOSITES: dict[str, Callable[..., Any]] = {"sigmoid": _sigmoid, "relu": _relu, "softplus": _softplus}
"""Functions written in NumPy terms that expression strings may call."""


def expression_functions() -> dict[str, tuple[Callable[..., Any], tuple[int, ...]]]:
    """The names an expression string may call: the table's elementwise primitives and aliases."""
    from .primitive import PRIMITIVES

    funcs: dict[str, tuple[Callable[..., Any], tuple[int, ...]]] = {}
    for prim in PRIMITIVES.values():
        if not prim.elementwise or not prim.differentiable:
            continue
        ufunc = getattr(np, prim.name, None)
        if ufunc is None:  # a user's primitive (dk.primitive): called through its own function
            continue
        arity = (prim.nargs,) if prim.nargs is not None else (1,)
        for n in (prim.name,) + prim.aliases:
            funcs[n] = (ufunc, arity)
    funcs["max"] = (np.maximum, (2,))
    funcs["min"] = (np.minimum, (2,))
    funcs["clip"] = (np.clip, (3,))
    funcs["pow"] = (np.power, (2,))
    for n, fn in COMPOSITES.items():
        funcs[n] = (fn, (1,))
    return funcs


def sympy_functions() -> dict[str, Callable[..., Any]]:
    """The SymPy form of each name an expression string may call (see :func:`expression_functions`)."""
    import sympy

    from .primitive import PRIMITIVES

    funcs: dict[str, Callable[..., Any]] = {}
    for prim in PRIMITIVES.values():
        if prim.elementwise and prim.differentiable and prim.sympy is not None and hasattr(np, prim.name):
            for n in (prim.name,) + prim.aliases:
                funcs[n] = prim.sympy
    funcs["max"] = sympy.Max
    funcs["min"] = sympy.Min
    funcs["pow"] = funcs.get("power", sympy.Pow)
    funcs["clip"] = lambda a, lo, hi: sympy.Min(sympy.Max(a, lo), hi)
    funcs["sigmoid"] = lambda x: 1 / (1 + sympy.exp(-x))
    funcs["relu"] = lambda x: sympy.Piecewise((x, x > 0), (0, True))
    funcs["softplus"] = lambda x: sympy.log(sympy.exp(x) + 1)
    return funcs
