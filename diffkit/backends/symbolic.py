"""The symbolic backend: the user's NumPy code traced into SymPy expressions.

Each argument becomes a SymPy symbol (an array argument an object array of
symbols), and the unchanged function runs on :class:`Sym` values, whose
operations the primitive table maps to SymPy (``np.sin`` to ``sympy.sin``,
``np.where`` to ``Piecewise``, ``np.maximum`` to ``Max``).

Derivatives come two ways:

* ``method="dag"`` (the default): the forward and reverse AD backends run
  *over* the symbolic values, so every rule of the table builds SymPy
  expressions and adjoints share their subexpressions: the derivative's DAG
  stays proportional to the function's (symbolic reverse accumulation);
* ``method="naive"``: SymPy's own ``diff`` on the expression tree, the
  textbook symbolic differentiation whose trees swell.

Either way the expressions are compiled once with common-subexpression
elimination and ``lambdify`` and cached per (function, operator, argnums,
order, argument shapes): the first call pays the setup, later calls are fast.
:func:`precise` evaluates any derivative in mpmath at a chosen precision
(through the table's rules; the harness's reference,
:mod:`diffkit.harness.reference`, differentiates with SymPy's own instead).
"""

from __future__ import annotations

import functools
import inspect
import sys
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from ..core.lazy import sympy

from ..core.values import TracedDType, Value, is_complex, mark_argument, new_level, pack
from ..errors import (
    InvalidArgument,
    InvalidType,
    ShapeError,
    SizeLimitError,
    TracingError,
    UnsupportedOperation,
)
from ..limits import API_HINT, recursion_as_size_limit, run_limited
from ..primitives import Primitive
from .base import BOOLEAN_HINT, ADBackend, check_output, refuse_output
from .complex_args import complex_output_error

SIZE_LIMIT = 2000
"""Default largest number of scalar symbols a traced call may have.

Expressions and their compilation grow with it; past a few thousand elements
the AD backends are the right tool.
"""

OP_LIMIT = 1_000_000
"""Default largest number of scalar SymPy operations a trace may build, the
derivative's included (``Symbolic(op_limit=...)``, ``dk.diff(op_limit=...)``).

Each operation on an array counts its elements; a SymPy operation takes tens of
microseconds, so the default stops a runaway trace (the 13th derivative of
``exp(sin(x))`` builds about three million) within a minute or two. Read at each
call: assigning ``diffkit.backends.symbolic.OP_LIMIT`` changes the default.
"""

MATRIX_LIMIT = 5
"""Default largest ``n`` of an ``n x n`` symbolic matrix whose determinant,
log-determinant, inverse, solve or Cholesky factor SymPy expands
(``Symbolic(matrix_limit=...)``).

The expansions grow like ``n!``: a symbolic 5x5 gradient of ``det`` takes about
25 s, a 7x7 one does not finish. Read at each call, like :data:`OP_LIMIT`.
"""

_MATRIX_PRIMITIVES = frozenset({"det", "logabsdet", "inv", "solve", "cholesky"})


_REAL_DTYPE = TracedDType(np.dtype(np.float64))
_COMPLEX_DTYPE = TracedDType(np.dtype(np.complex128))


class Sym(Value):
    """A value of the symbolic trace: a SymPy expression or an object array of them.

    The symbols are real; a value is complex when complex numbers entered it (``1j * x``)
    and no real part, imaginary part, modulus or angle has been taken since. SymPy's
    expressions do not say so cheaply, so each value carries it.
    """

    __slots__ = ("_trace", "primal", "_complex")

    def __init__(self, trace: SymbolicTrace, primal: Any, complex_: bool = False):
        self._trace = trace
        self.primal = primal
        self._complex = complex_

    @property
    def is_complex(self) -> bool:
        return self._complex

    @property
    def dtype(self) -> TracedDType:
        """float64 or complex128 (the precision the compiled derivative runs in), as the
        other backends' traced values: NumPy's dtype but for ``.type``, which keeps a
        traced value traced (``np.mean([x, y])`` casts its sum through it)."""
        return _COMPLEX_DTYPE if self._complex else _REAL_DTYPE

    def __bool__(self) -> bool:
        cond = self.primal
        if isinstance(cond, np.ndarray):
            if cond.size != 1:
                raise TracingError(f"the truth value of a symbolic array of {cond.size} elements is ambiguous "
                                   "(as in NumPy); use np.all, np.any or np.where")
            cond = cond.reshape(())[()]
        if isinstance(cond, sympy.logic.boolalg.BooleanAtom):
            return bool(cond)
        return self._trace.decide(cond)

    def __repr__(self) -> str:
        return f"Sym({_short(self.primal)})"


def _short(x: Any, limit: int = 60) -> str:
    s = str(x)
    return s if len(s) <= limit else s[: limit - 3] + "..."


@functools.lru_cache(maxsize=None)
def _object_ufunc(prim: Primitive, nin: int) -> Any:
    """The SymPy counterpart of an elementwise primitive, broadcast over object arrays."""
    assert prim.sympy is not None
    return np.frompyfunc(prim.sympy, nin, 1)


class SymbolicTrace:
    """One symbolic trace: a level; its values hold SymPy expressions."""

    backend_name = "symbolic"

    def __init__(self, op_limit: int | None = None, matrix_limit: int | None = None) -> None:
        self.level = new_level()
        self.op_limit = op_limit
        self.matrix_limit = matrix_limit
        self.ops = 0
        self.point: tuple[list[Any], list[float]] | None = None
        """The symbols and the numbers of the point traced at (``None``: no point, as ``dk.diff``)."""
        self.guards: list[tuple[Any, bool]] = []
        """Each condition Python control flow asked about, and the branch the point took."""

    def number(self, expr: Any) -> Any:
        """``expr`` (an expression or object array of them) evaluated at the point, or ``None``."""
        if self.point is None:
            return None
        from ..core.sympy_eval import sympy_evaluator

        symbols, values = self.point
        with np.errstate(all="ignore"):
            if isinstance(expr, np.ndarray):
                return np.array([float(sympy_evaluator(sympy.sympify(e, strict=True), symbols)(*values))
                                 for e in expr.ravel()]).reshape(expr.shape)
            return float(sympy_evaluator(sympy.sympify(expr, strict=True), symbols)(*values))

    def decide(self, cond: Any) -> bool:
        """The branch the point takes on ``cond`` (``if x > 0``, ``while x < 10``), kept as a guard."""
        if self.point is None:
            raise TracingError(
                f"Python control flow on a symbolic value (if/while on {_short(cond)}): which "
                "branch runs depends on the value, which an expression without a point does not know; "
                "write the choice with np.where(condition, a, b), differentiate at a point "
                "(dk.grad(f, backend='symbolic')(x)), or use an AD backend (backend='reverse')")
        if not isinstance(cond, (sympy.core.relational.Relational, sympy.logic.boolalg.Boolean)):
            cond = sympy.Ne(cond, 0)  # `if x:` is `if x != 0:`
        from ..core.sympy_eval import sympy_evaluator

        symbols, values = self.point
        with np.errstate(all="ignore"):
            taken = sympy_evaluator(cond, symbols)(*values)
        if np.ndim(taken) or not isinstance(taken, (bool, np.bool_)):
            raise TracingError(f"control flow on {_short(cond)}: not a condition on numbers")
        self.guards.append((cond, bool(taken)))
        return bool(taken)

    def charge(self, prim: Primitive, args: tuple[Any, ...]) -> None:
        """Count the scalar operations ``prim`` is about to build; refuse past the limits."""
        if self.op_limit is None and self.matrix_limit is None:
            return
        shapes = [np.shape(a.primal) if type(a) is Sym else np.shape(a) for a in args]
        if (self.matrix_limit is not None and prim.name in _MATRIX_PRIMITIVES and shapes
                and len(shapes[0]) >= 2 and type(args[0]) is Sym and shapes[0][-1] > self.matrix_limit):
            n = shapes[0][-1]
            raise SizeLimitError(
                f"symbolic backend: numpy.linalg {prim.name} of a symbolic {n}x{n} matrix, more than the limit "
                f"of {self.matrix_limit}x{self.matrix_limit} (SymPy's expansion grows like n!); use "
                "backend='reverse' (or 'forward', 'numeric'), or raise Symbolic(matrix_limit=...)")
        if self.op_limit is None:
            return
        try:
            size = int(np.prod(np.broadcast_shapes(*shapes))) if prim.elementwise and shapes else 0
        except ValueError:
            size = 0
        self.ops += max(size, sum(int(np.prod(s)) for s in shapes), 1)
        if self.ops > self.op_limit:
            raise SizeLimitError(
                f"symbolic backend: the trace and its derivative build more than {self.op_limit:,} SymPy "
                f"operations (limit op_limit={self.op_limit:,}, reached at numpy.{prim.name}); the expression "
                "swells: use backend='reverse' (or 'forward', 'numeric'), a lower order, or raise "
                "Symbolic(op_limit=...) / dk.diff(..., op_limit=...)")

    def apply(self, prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        self.charge(prim, args)
        complex_ = prim.name not in _REAL_VALUED and (prim.name in _COMPLEX_VALUED
                                                      or any(is_complex(a) for a in args))
        vals = [a.primal if type(a) is Sym and a._trace is self else _exact(a) for a in args]
        for v in vals:
            if isinstance(v, Value):  # a value of an enclosing transformation
                raise UnsupportedOperation(
                    f"numpy.{prim.name}: a value of backend '{v._trace.backend_name}' reached the "
                    "symbolic trace; the symbolic backend cannot run inside another transformation's "
                    "trace here (try backend='reverse' for the inner operator)")
        if prim.sympy is None:
            raise UnsupportedOperation(
                f"numpy.{prim.name} has no SymPy counterpart (backend 'symbolic'); "
                "try backend='reverse' or 'numeric'")
        if prim.name not in _TAKES_CONDITIONS:
            vals = [_as_number(v) for v in vals]
        elif prim.name == "where":
            vals[1:] = [_as_number(v) for v in vals[1:]]
        if prim.elementwise:
            return Sym(self, _object_ufunc(prim, len(vals))(*vals), complex_)
        return Sym(self, prim.sympy(*vals, **params), complex_)

    def call_custom(self, fn: Any, args: tuple[Any, ...]) -> Any:
        return fn.fun(*args)  # a custom rule is checked against the function itself


_TAKES_CONDITIONS = frozenset({"where", "logical_and", "logical_or", "logical_xor", "logical_not",
                               "equal", "not_equal"})
"""Primitives that take conditions as they are (np.where's first argument only)."""


def _as_number(v: Any) -> Any:
    """A condition as the number NumPy makes of it in arithmetic: ``x * (x > 0)`` is
    ``x * Piecewise((1, x > 0), (0, True))``, exact at every point (a value that is
    not a condition is returned as it is)."""
    first = v.flat[0] if isinstance(v, np.ndarray) and v.dtype == object and v.size else v
    if not isinstance(first, (sympy.core.relational.Relational, sympy.logic.boolalg.BooleanFunction,
                              sympy.logic.boolalg.BooleanAtom)):  # (a Symbol is a Boolean too)
        return v
    if isinstance(v, np.ndarray):
        return np.vectorize(_as_number, otypes=[object])(v)
    return sympy.Piecewise((sympy.Integer(1), v), (sympy.Integer(0), True))


_REAL_VALUED = frozenset({"real", "imag", "absolute", "angle", "irfft"})
"""Primitives whose value is real also for complex arguments."""
_COMPLEX_VALUED = frozenset({"fftn", "rfft"})
"""Primitives whose value is complex also for real arguments."""

def _complex_nodes() -> tuple[Any, ...]:
    return (sympy.I, sympy.re, sympy.im, sympy.arg, sympy.conjugate)
"""What makes an expression need complex arithmetic to evaluate."""


def _exact(v: Any) -> Any:
    """An integral float constant as a SymPy integer: x**3.0 reads x**3 (the same number);
    a complex constant as a SymPy complex number (1j reads I)."""
    if type(v) in (float, np.float64) and v.is_integer() and abs(v) < 2**53:
        return sympy.Integer(int(v))
    if type(v) in (bool, np.bool_):  # True * x is x, as in NumPy
        return sympy.Integer(int(v))
    if isinstance(v, np.ndarray) and v.dtype == bool:
        return v.astype(np.int64).astype(object)
    if type(v) in (complex, np.complex128):
        return _exact(v.real) + _exact(v.imag) * sympy.I
    return v


def integralize(expr: Any) -> Any:
    """``expr`` with every Float that is a small dyadic fraction (4.0, 0.5) written exactly (4, 1/2).

    The same numbers: a float with a denominator of at most 1024 is that rational.

    Numeric seeds and the constants of rules (``2.0 * x``) enter as floats;
    this gives :func:`diffkit.diff` the exact look SymPy users expect. It walks
    each distinct subexpression once, so shared (DAG) expressions stay cheap.
    """
    def exact(e: Any) -> Any:
        if isinstance(e, sympy.Float) and (float(e) * 1024).is_integer() and abs(float(e)) < 2**43:
            return sympy.Rational(int(float(e) * 1024), 1024)
        return e

    # a traced result: a SymPy object or a number, never text
    return _rebuild(_sympified(expr), leaf=exact, node=lambda e: e)


def _rebuild(root: Any, leaf: Callable[[Any], Any], node: Callable[[Any], Any]) -> Any:
    """``root`` rebuilt bottom-up: ``leaf`` of each atom, ``node`` of each compound
    expression once its arguments are rebuilt. Each distinct subexpression is visited
    once (a DAG stays cheap), iteratively (no nesting depth reaches the recursion limit)."""
    memo: dict[Any, Any] = {}
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        e, expanded = stack.pop()
        if e in memo:
            continue
        if not getattr(e, "args", ()):
            memo[e] = leaf(e)
        elif not expanded:
            stack.append((e, True))
            stack.extend((a, False) for a in reversed(e.args) if a not in memo)
        else:
            args = tuple(memo[a] for a in e.args)
            memo[e] = node(e.func(*args) if args != e.args else e)
    return memo[root]


# dk.diff's default tidying: bounded rewrites, never an open-ended sympy.simplify.
TIDY_NODES = 400
"""Largest expression (tree nodes) :func:`tidy` merges powers and factors in, and
``dk.diff(simplify="full")`` runs ``sympy.simplify`` on; larger results get only
the linear-time removal of the power rule's guards."""


def _small(expr: Any, limit: int) -> bool:
    """Whether ``expr``'s tree has at most ``limit`` nodes (stops counting past it)."""
    for n, _ in enumerate(sympy.preorder_traversal(expr), 1):
        if n > limit:
            return False
    return True


def _guarded_at_zero(pw: Any) -> tuple[Any, Any, Any] | None:
    """``(b, special, general)`` for ``Piecewise((special, Eq(b, 0)), (general, True))``."""
    if not isinstance(pw, sympy.Piecewise) or len(pw.args) != 2 or pw.args[1].cond is not sympy.true:
        return None
    (special, cond), (general, _) = pw.args
    if not isinstance(cond, sympy.Eq):
        return None
    return cond.lhs - cond.rhs, special, general


def _same(a: Any, b: Any) -> bool:
    return a == b or a == -b or sympy.expand(a - b) == 0


def _drop_guards(expr: Any) -> Any:
    """``expr`` without the power rule's guards at a zero base.

    The rule for ``d/dy x**y = x**y log x`` is ``np.where(x == 0, 0, out *
    log(np.where(x == 0, 1, x)))`` (JAX's convention at ``x = 0``); traced into
    SymPy it is ``Piecewise((0, Eq(x, 0)), (x**y*log(Piecewise((1, Eq(x, 0)), (x,
    True))), True))``. ``x = 0`` is outside the domain of ``log x``, so on the
    domain of the formula both guards are the identity: ``log(Piecewise((c,
    Eq(b, 0)), (b, True)))`` reads ``log(b)``, and a ``Piecewise((v, Eq(b, 0)), (g,
    True))`` whose ``g`` holds ``log(b)`` (a formula undefined at ``b = 0``)
    reads ``g``, in which guards of the same condition take their general
    branch (as in higher derivatives). A guard the user wrote
    (``np.where(x == 0, 1.0, np.sin(x) / x)``) has no ``log`` of its condition
    and stays. One walk over the distinct subexpressions; ``g`` is searched
    through only when it has at most :data:`TIDY_NODES` nodes (else its factors).
    """
    def unguard(new: Any) -> Any:
        if isinstance(new, sympy.log):
            g = _guarded_at_zero(new.args[0])
            if g is not None and _same(g[2], g[0]):
                return sympy.log(g[2])
            return new
        g = _guarded_at_zero(new)
        if g is not None:
            general = g[2]
            if _small(general, TIDY_NODES):  # inside it the condition is false
                general = general.xreplace({new.args[0].cond: sympy.false})
                logs = general.atoms(sympy.log)
            else:
                logs = [f for f in sympy.Mul.make_args(general) if isinstance(f, sympy.log)]
            if any(_same(f.args[0], g[0]) for f in logs):
                return general
        return new

    return _rebuild(expr, leaf=lambda e: e, node=unguard)


def tidy(expr: Any, full: bool = False) -> Any:
    """A derivative in the form people write it, within a bounded amount of work.

    Removes the power rule's guards at a zero base (:func:`_drop_guards`); then,
    on an expression of at most :data:`TIDY_NODES` nodes, merges powers of a
    common base and pulls out common factors (``x*x**(x - 1) + x**x*log(x)``
    reads ``x**x*(log(x) + 1)``) when that shortens it, or with ``full=True``
    runs ``sympy.simplify``. A larger expression keeps its form apart from the guards.
    """
    if isinstance(expr, np.ndarray):
        return np.vectorize(lambda e: tidy(e, full), otypes=[object])(expr) if expr.size else expr
    if not isinstance(expr, sympy.Basic):
        return expr
    expr = _drop_guards(expr)
    if not _small(expr, TIDY_NODES):
        return expr
    if full:
        return sympy.simplify(expr)
    merged = sympy.powsimp(expr)
    if merged != expr:
        merged = sympy.factor_terms(merged)
        if sympy.count_ops(merged) < sympy.count_ops(expr):
            return merged
    return expr


def expr_of(v: Any) -> Any:
    """The SymPy content of a traced result: an expression or an object array of them."""
    v = pack(v)
    if isinstance(v, Sym):
        v = v.primal
    if isinstance(v, Value):
        raise TracingError(f"a value of backend '{v._trace.backend_name}' escaped the symbolic trace")
    if isinstance(v, np.ndarray):
        if v.ndim == 0:
            return _sympified(v[()])
        return np.vectorize(_sympified, otypes=[object])(v) if v.size else v.astype(object)
    return _sympified(v)


def _sympified(v: Any) -> Any:
    """A traced value as SymPy: SymPy objects and numbers only. ``strict=True``: never a
    string, which ``sympify`` would evaluate as Python code."""
    try:
        return sympy.sympify(v, strict=True)
    except sympy.SympifyError:
        raise InvalidType(f"the function returned {type(v).__name__} {str(v)[:40]!r} where the symbolic backend "
                          "needs a number or an expression of its arguments") from None


# --------------------------------------------------------------------------
# Tracing: arguments to symbols
# --------------------------------------------------------------------------


def _arg_names(fun: Callable[..., Any], n: int) -> list[str]:
    names = list(getattr(fun, "variables", ()) or ())
    if not names:
        try:
            params = inspect.signature(fun).parameters.values()
            names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):
            names = []
    names = names[:n]
    return names + [f"arg{i}" for i in range(len(names), n)]


def _is_numeric(a: Any) -> bool:
    if isinstance(a, (bool, np.bool_)):
        return False
    if isinstance(a, (int, float, np.number)):
        return True
    return isinstance(a, np.ndarray) and a.dtype.kind in "biufc"


@dataclass
class Traced:
    """Arguments turned into symbols: what a compiled derivative is a function of."""

    args: list[Any]                     # Sym values (or untouched non-numeric arguments)
    symbols: list[sympy.Symbol]         # every symbol, flattened, in argument order
    shapes: list[tuple[int, ...] | None]  # per argument: its shape, None when not symbolic
    trace: SymbolicTrace


def trace_args(fun: Callable[..., Any], primals: Sequence[Any], limit: int, op_limit: int | None = None,
               matrix_limit: int | None = None, at_point: bool = False,
               constants: Sequence[int] = ()) -> Traced:
    """Replace each numeric argument by symbols (``x``, or ``x_0, x_1, ...`` for arrays).

    ``op_limit`` and ``matrix_limit`` bound what the trace may build (default
    :data:`OP_LIMIT`, :data:`MATRIX_LIMIT`). ``at_point``: the trace knows the
    point ``primals`` is, so Python control flow on a traced value takes the
    branch the point takes (recorded in ``trace.guards``). The arguments
    ``constants`` (not differentiated) stay the numbers they are: ``int(n)``,
    ``range(n)`` and indexing by them work as in plain Python.
    """
    trace = SymbolicTrace(OP_LIMIT if op_limit is None else op_limit,
                          MATRIX_LIMIT if matrix_limit is None else matrix_limit)
    names = _arg_names(fun, len(primals))
    args: list[Any] = []
    symbols: list[sympy.Symbol] = []
    shapes: list[tuple[int, ...] | None] = []
    total = sum(int(np.size(p)) for p in primals if _is_numeric(p))
    if total > limit:
        sizes = ", ".join(f"'{n}' {np.shape(p)}" for n, p in zip(names, primals) if _is_numeric(p))
        raise SizeLimitError(
            f"symbolic backend: the arguments have {total} elements ({sizes}), more than the limit "
            f"of {limit} symbols; use backend='reverse' (or 'forward', 'numeric'), or raise "
            "Symbolic(size_limit=...)")
    for name, p in zip(names, primals):
        if np.iscomplexobj(p):
            raise UnsupportedOperation(f"the symbolic backend differentiates real arguments; argument "
                                       f"'{name}' is complex (dtype {np.asarray(p).dtype}); use backend='reverse' "
                                       "or 'forward' for complex arguments")
        if not _is_numeric(p) or len(args) in constants:
            args.append(p)
            shapes.append(None)
            continue
        shape = np.shape(p)
        if shape == ():
            s = sympy.Symbol(name, real=True)
            symbols.append(s)
            args.append(mark_argument(Sym(trace, s)))
        else:
            flat = [sympy.Symbol(f"{name}_{i}", real=True) for i in range(int(np.prod(shape)))]
            symbols.extend(flat)
            args.append(mark_argument(Sym(trace, np.array(flat, dtype=object).reshape(shape))))
        shapes.append(shape)
    if at_point:
        values = [float(v) for p, shape in zip(primals, shapes) if shape is not None
                  for v in np.ravel(np.asarray(p, dtype=float))]
        trace.point = (symbols, values)
    return Traced(args, symbols, shapes, trace)


# --------------------------------------------------------------------------
# Derivatives as expressions
# --------------------------------------------------------------------------

_OPS = ("value", "grad", "jacobian", "hessian", "derivative")


def derivative_exprs(fun: Callable[..., Any], traced: Traced, op: str, argnums: Sequence[int],
                     order: int = 1, method: str = "dag") -> tuple[Any, Any]:
    """``(value expression, derivative expressions)`` of ``fun`` at the traced arguments.

    The derivative part is a tuple over ``argnums`` (for ``hessian`` a tuple of
    tuples), each an expression or an object array of the usual shape.
    """
    if op not in _OPS:
        raise InvalidArgument(f"symbolic derivative_exprs: op must be one of {_OPS}, got {op!r}")
    from .forward import Forward
    from .reverse import Reverse

    args = traced.args
    result = _checked(fun(*args))
    out = expr_of(result)
    if op == "value":
        return out, ()
    if is_complex(result):
        raise complex_output_error(op, np.dtype(np.complex128))
    if method == "naive":
        return out, _naive(out, traced, op, argnums, order)
    if method != "dag":
        raise InvalidArgument(f"symbolic derivative_exprs: method must be 'dag' or 'naive', got {method!r}")
    if op == "grad":
        if np.shape(out) != ():
            raise ShapeError(f"grad of {getattr(fun, '__name__', 'f')} (backend 'symbolic'): the function "
                             f"must return a scalar, got shape "
                             f"{np.shape(out)}; use dk.jacobian for array outputs")
        _, grads, _ = Reverse().value_and_grad(fun, args, argnums)
        return out, tuple(expr_of(g) for g in grads)
    if op == "jacobian":
        _, jacs = Reverse().jacobian(fun, args, argnums)
        return out, tuple(expr_of(j) for j in jacs)
    if op == "hessian":
        rows = Reverse().hessian(fun, args, argnums)
        return out, tuple(tuple(expr_of(h) for h in row) for row in rows)
    (i,) = argnums
    return out, (expr_of(Forward().derivative(_only(fun, args, i), args[i], order)),)


def _checked(out: Any) -> Any:
    """The function's output, refused when it has no derivative: a condition (``x > 0`` is a
    SymPy relational here), None, a bool, an integer (see :func:`~diffkit.backends.base.check_output`)."""
    out = pack(out)
    if isinstance(out, Sym):
        v = out.primal
        for e in (v.flat if isinstance(v, np.ndarray) else (v,)):
            if getattr(e, "is_Boolean", False) or getattr(e, "is_Relational", False):
                refuse_output(f"a condition ({_short(e)})", "symbolic", BOOLEAN_HINT)
        return out
    check_output(out, "symbolic")
    return out


def _only(fun: Callable[..., Any], args: list[Any], i: int) -> Callable[[Any], Any]:
    def g(x: Any) -> Any:
        a = list(args)
        a[i] = x
        return fun(*a)

    return g


def _symbols_of(traced: Traced, i: int) -> np.ndarray:
    start = sum(int(np.prod(s)) for s in traced.shapes[:i] if s is not None)
    shape = traced.shapes[i]
    if shape is None:
        raise InvalidType(f"symbolic backend: argument {i} is not numeric and cannot be differentiated")
    n = int(np.prod(shape))
    return np.array(traced.symbols[start:start + n], dtype=object).reshape(shape)


def _diff_array(e: Any, syms: np.ndarray) -> Any:
    """d e / d syms with shape e.shape + syms.shape (SymPy's diff, element by element)."""
    e_arr = np.asarray(e, dtype=object)
    out = np.empty(e_arr.shape + syms.shape, dtype=object)
    for idx in np.ndindex(e_arr.shape):
        for jdx in np.ndindex(syms.shape):
            out[idx + jdx] = sympy.diff(e_arr[idx], syms[jdx])
    return out[()] if out.shape == () else out


def _naive(out: Any, traced: Traced, op: str, argnums: Sequence[int], order: int) -> Any:
    syms = [_symbols_of(traced, i) for i in argnums]
    if op in ("grad", "jacobian"):
        return tuple(_diff_array(out, s) for s in syms)
    if op == "hessian":
        firsts = [_diff_array(out, s) for s in syms]
        return tuple(tuple(_diff_array(f, s) for s in syms) for f in firsts)
    (s,) = syms
    return (sympy.diff(out, s[()], order),)


# --------------------------------------------------------------------------
# Compilation
# --------------------------------------------------------------------------


def _flatten(tree: Any, leaves: list[Any]) -> Any:
    """Replace every expression of a nested tuple/array structure by its index in ``leaves``."""
    if isinstance(tree, tuple):
        return tuple(_flatten(t, leaves) for t in tree)
    if isinstance(tree, np.ndarray):
        start = len(leaves)
        leaves.extend(tree.ravel().tolist())
        return ("array", start, tree.shape)
    leaves.append(tree)
    return ("scalar", len(leaves) - 1)


def _unflatten(spec: Any, values: Sequence[Any]) -> Any:
    if isinstance(spec, tuple) and spec and spec[0] == "array":
        _, start, shape = spec
        n = int(np.prod(shape))
        return np.array(values[start:start + n], dtype=float).reshape(shape) if n else np.zeros(shape)
    if isinstance(spec, tuple) and spec and spec[0] == "scalar":
        return np.float64(values[spec[1]])
    return tuple(_unflatten(s, values) for s in spec)


@dataclass
class Compiled:
    """A derivative traced, differentiated and compiled once; call it with numbers.

    Attributes:
        value: the function's value as an expression (or object array).
        derivative: the derivative expressions, structured as the operator's result.
        symbols: the symbols the compiled code takes, flattened in argument order.
        trace_time, derivative_time, compile_time: seconds spent on each setup step.
    """

    value: Any
    derivative: Any
    symbols: list[sympy.Symbol]
    shapes: list[tuple[int, ...] | None]
    cse: bool
    trace_time: float = 0.0
    derivative_time: float = 0.0
    compile_time: float = 0.0
    _spec: Any = None
    scalar_module: str = "math"
    """What scalar calls compile to: ``math``, or ``numpy`` where the expressions hold
    complex numbers (``I``, ``re``, ``im``: complex intermediates), which ``math`` cannot."""
    _leaves: list[Any] = field(default_factory=list)
    _fns: dict[str, Callable[..., Any]] = field(default_factory=dict)
    _cse: Any = None
    """The cse of the leaves, when it was computed elsewhere (a time-limited child process)."""
    guards: list[tuple[Any, bool]] = field(default_factory=list)
    """The conditions Python control flow took at the traced point, and their outcomes:
    the expressions hold wherever every guard has the same outcome."""
    _guard_fn: Any = None

    def holds(self, primals: Sequence[Any]) -> bool:
        """Whether the point ``primals`` takes the branches this derivative was traced with."""
        if not self.guards:
            return True
        if self._guard_fn is None:
            self._guard_fn = sympy.lambdify(self.symbols, [g for g, _ in self.guards], modules="numpy")
        with np.errstate(all="ignore"):
            taken = self._guard_fn(*self.flat_args(primals))
        return all(bool(t) == want for t, (_, want) in zip(taken, self.guards))

    @property
    def setup_time(self) -> float:
        """Trace + derivative + compile, in seconds (what the first call pays)."""
        return self.trace_time + self.derivative_time + self.compile_time

    def _compiled(self, module: str) -> Callable[..., Any]:
        fn = self._fns.get(module)
        if fn is None:
            t0 = time.perf_counter()
            fn = lambdify(self.symbols, self._leaves, module, self._cse if self._cse is not None else self.cse)
            self._fns[module] = fn
            self.compile_time += time.perf_counter() - t0
        return fn

    def flat_args(self, primals: Sequence[Any]) -> list[Any]:
        flat: list[Any] = []
        for p, shape in zip(primals, self.shapes):
            if shape is None:
                continue
            if shape == ():
                flat.append(float(p))
            else:
                flat.extend(np.asarray(p, dtype=float).ravel().tolist())
        return flat

    def __call__(self, primals: Sequence[Any]) -> tuple[Any, Any]:
        """``(value, derivative)`` at ``primals`` (the original positional arguments)."""
        flat = self.flat_args(primals)
        try:
            if self.scalar_module == "math":
                values = self._compiled("math")(*flat)
                if complex in map(type, values):
                    raise ArithmeticError  # Python's ** of a negative base: NumPy's NaN instead
            else:  # complex intermediates: NumPy's answers, inf or NaN where math would raise
                with np.errstate(all="ignore"):
                    values = self._compiled(self.scalar_module)(*flat)
        except (ArithmeticError, ValueError):
            # math raises where NumPy gives inf or NaN (exp(1000), log(0)): answer as NumPy does
            with np.errstate(all="ignore"):
                values = self._compiled("numpy")(*[np.float64(v) for v in flat])
        return _unflatten(self._spec, values)

    def evaluate(self, *flat: Any) -> list[Any]:
        """The compiled leaves on NumPy arrays, one array per symbol: vectorized over points."""
        return list(self._compiled("numpy")(*flat))


def _dag_cse(exprs: Any) -> Any:
    # order="none": SymPy's canonical ordering sizes every subtree, which for a
    # derivative that shares subexpressions (a DAG) walks an exponential tree.
    return sympy.cse(exprs, order="none")


def lambdify(symbols: Sequence[Any], exprs: Any, module: str, cse: Any = True) -> Callable[..., Any]:
    """``sympy.lambdify`` made linear in the size of a DAG-shaped expression.

    ``use_imps=False`` skips SymPy's search for user-implemented functions, a
    tree walk without memory; the cse runs without canonical ordering.
    """
    modules: Any = module
    kw: dict[str, Any] = {}
    if "diffkit.scipy_special" in sys.modules and module in ("math", "numpy"):
        # SciPy's entries: their SymPy functions (erfinv, polygamma, lowergamma ...) compile
        # to SciPy's, called by name; lambdify's own printer settings, except that the
        # functions SymPy's printers refuse (lowergamma, uppergamma) are printed as calls too
        names = sys.modules["diffkit.scipy_special"].sympy_namespace()
        modules = [module, names]
        from sympy.printing.numpy import NumPyPrinter
        from sympy.printing.pycode import PythonCodePrinter

        kw["printer"] = (NumPyPrinter if module == "numpy" else PythonCodePrinter)(
            {"fully_qualified_modules": False, "inline": True, "allow_unknown_functions": True,
             "user_functions": {k: k for k in names}, "strict": False})
    if isinstance(cse, tuple):  # a cse computed before: (replacements, reduced expressions)
        done = cse
        return sympy.lambdify(symbols, exprs, modules=modules, cse=lambda _: done, use_imps=False, **kw)
    return sympy.lambdify(symbols, exprs, modules=modules, cse=_dag_cse if cse else False, use_imps=False, **kw)


def compile_derivative(fun: Callable[..., Any], primals: Sequence[Any], op: str, argnums: Sequence[int],
                       order: int = 1, method: str = "dag", cse: bool = True, simplify: bool = False,
                       size_limit: int = SIZE_LIMIT, op_limit: int | None = None,
                       matrix_limit: int | None = None, at_point: bool = False,
                       constants: Sequence[int] = ()) -> Compiled:
    """Trace ``fun`` at the shapes of ``primals``, differentiate and compile (see :class:`Compiled`).

    ``at_point``: trace at the point ``primals`` (see :func:`trace_args`): control
    flow follows it, and the result holds the guards under which it is valid
    (:meth:`Compiled.holds`). The arguments ``constants`` stay numbers.
    """
    t0 = time.perf_counter()
    traced = trace_args(fun, primals, size_limit, op_limit, matrix_limit, at_point=at_point, constants=constants)
    for i in argnums:
        if traced.shapes[i] is None:
            raise InvalidType(f"argument {i} of {getattr(fun, '__name__', 'f')} is not numeric "
                              f"({type(primals[i]).__name__}); the symbolic backend differentiates "
                              "with respect to numbers and numeric arrays only")
    t1 = time.perf_counter()
    value, deriv = derivative_exprs(fun, traced, op, argnums, order, method)
    if simplify:
        deriv = _map_exprs(deriv, sympy.simplify)
    t2 = time.perf_counter()
    leaves: list[Any] = []
    spec = (_flatten(value, leaves), _flatten(deriv, leaves))
    comp = Compiled(value, deriv, traced.symbols, traced.shapes, cse, trace_time=t1 - t0,
                    derivative_time=t2 - t1, _spec=spec, _leaves=leaves, guards=list(traced.trace.guards))
    from ..core.sympy_eval import dag_has

    if dag_has(leaves, *_complex_nodes()):
        comp.scalar_module = "numpy"
    comp._compiled(comp.scalar_module)
    return comp


def _map_exprs(tree: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(tree, tuple):
        return tuple(_map_exprs(t, fn) for t in tree)
    if isinstance(tree, np.ndarray):
        return np.vectorize(fn, otypes=[object])(tree) if tree.size else tree
    return fn(tree)


# --------------------------------------------------------------------------
# The backend
# --------------------------------------------------------------------------


_SHARED: weakref.WeakKeyDictionary[Any, dict[Any, Compiled]] = weakref.WeakKeyDictionary()
"""Compiled derivatives shared by every :class:`Symbolic` instance: function ->
{(backend options, op, argnums, order, argument shapes and dtypes): Compiled}.
Weakly keyed: an entry goes with its function, and a :class:`Compiled` holds
expressions and compiled code, never the function."""


def _shared_of(fun: Any) -> dict[Any, Compiled] | None:
    """``fun``'s entry of :data:`_SHARED` (made on first use); ``None`` for a function that
    cannot be weakly referenced or hashed (a builtin; its derivatives stay per instance)."""
    try:
        return _SHARED.setdefault(fun, {})
    except TypeError:
        return None


def _static_key(p: Any) -> tuple[Any, ...]:
    """A non-numeric argument in a cache key: by value when hashable (a constant the trace
    holds), else by identity, which only the instance's own cache uses."""
    try:
        hash(p)
    except TypeError:
        return ("static-id", id(p))
    return ("static", type(p), p)


def _constant_key(p: Any) -> tuple[Any, ...]:
    """A numeric argument that stays a number (not differentiated) in a cache key: by value."""
    import hashlib

    a = np.ascontiguousarray(p)
    return ("constant", a.shape, a.dtype.str, hashlib.sha1(a.tobytes()).hexdigest())


class Symbolic(ADBackend):
    """Symbolic differentiation: SymPy expressions, compiled once per shape.

    Args:
        simplify: run ``sympy.simplify`` on the derivative expressions (slow).
        cse: compile with common-subexpression elimination (keep it on: the
            DAG-aware derivatives share subexpressions that a tree printer
            would repeat exponentially).
        method: ``"dag"`` (symbolic reverse accumulation, the default) or
            ``"naive"`` (SymPy's ``diff`` on the expression tree).
        size_limit: largest number of scalar symbols (array elements) per call.
        timeout: seconds allowed to build (trace, differentiate, compile) each
            derivative, in a child process killed at the limit
            (:class:`~diffkit.errors.TimeLimitError`); ``None``, the default, is
            no limit. A built derivative is cached: later calls are fast.
        op_limit: largest number of scalar SymPy operations a trace and its
            derivative may build (default :data:`OP_LIMIT`).
        matrix_limit: largest ``n`` of an ``n x n`` symbolic matrix that
            ``det``, ``slogdet``, ``inv``, ``solve`` or ``cholesky`` expands
            (default :data:`MATRIX_LIMIT`).

    Past a limit the error (:class:`~diffkit.errors.SizeLimitError`) names it
    and how to raise it; an expression nested too deeply for SymPy's recursive
    algorithms is one too.

    Example:
        >>> import numpy as np, diffkit as dk
        >>> g = dk.grad(lambda x, y: np.sin(x) * y, argnums=(0, 1), backend=dk.Symbolic())
        >>> [round(float(v), 6) for v in g(0.5, 2.0)]
        [1.755165, 0.479426]
    """

    name = "symbolic"
    prefers_reverse = True

    def __init__(self, simplify: bool = False, cse: bool = True, method: str = "dag",
                 size_limit: int = SIZE_LIMIT, timeout: float | None = None, op_limit: int | None = None,
                 matrix_limit: int | None = None):
        from ..limits import check_timeout

        if method not in ("dag", "naive"):
            raise InvalidArgument(f"Symbolic(method=...) is 'dag' or 'naive', got {method!r}")
        for name, limit in (("op_limit", op_limit), ("matrix_limit", matrix_limit)):
            if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer))
                                      or limit < 1):
                raise InvalidArgument(f"Symbolic({name}=...) is a positive integer or None, got {limit!r}")
        self.simplify = simplify
        self.cse = cse
        self.method = method
        self.size_limit = size_limit
        self.timeout = check_timeout(timeout)
        self.op_limit = op_limit
        self.matrix_limit = matrix_limit
        self._cache: dict[Any, list[Compiled]] = {}

    def __repr__(self) -> str:
        return (f"Symbolic(simplify={self.simplify}, cse={self.cse}, method={self.method!r}, "
                f"size_limit={self.size_limit})")

    def _options(self) -> tuple[Any, ...]:
        """What, besides the function and the arguments' shapes, a compiled derivative depends on."""
        return (type(self), self.simplify, self.cse, self.method, self.size_limit, self.op_limit,
                self.matrix_limit)

    def compiled(self, fun: Callable[..., Any], primals: Sequence[Any], op: str,
                 argnums: Sequence[int], order: int = 1, constants: Sequence[int] | None = None,
                 at_point: bool = True) -> Compiled:
        """The cached :class:`Compiled` derivative at ``primals`` (built on first use).

        The derivative is traced at the point: Python control flow takes the
        point's branch, and the arguments ``constants`` (by default the numeric
        ones not in ``argnums``) stay numbers. A cached derivative serves every
        point with the same shapes, the same constants and the same branches
        (its guards); a point that takes another branch gets a derivative of its
        own, traced there and cached beside the first.

        Besides this instance's cache, the derivatives are shared through
        :data:`_SHARED`, weakly keyed by the function, so that the instance an
        operator makes for ``backend="symbolic"`` (one per ``dk.hessian(f,
        backend="symbolic")``) finds a derivative built before.
        """
        if constants is None:
            constants = [i for i, p in enumerate(primals) if i not in argnums and _is_numeric(p)]
        sig = tuple(_constant_key(p) if i in constants else
                    (np.shape(p), np.asarray(p).dtype.kind) if _is_numeric(p) else _static_key(p)
                    for i, p in enumerate(primals))
        key = (fun, op, tuple(argnums), order, sig, at_point)
        variants = self._cache.setdefault(key, [])
        for comp in variants:
            if comp.holds(primals):
                return comp
        shared = _shared_of(fun) if all(s[0] != "static-id" for s in sig) else None
        skey = (self._options(), op, tuple(argnums), order, sig, at_point)
        found = shared.setdefault(skey, []) if shared is not None else []
        comp = next((c for c in found if c.holds(primals)), None)
        if comp is None:
            comp = self._build(fun, primals, op, argnums, order, constants, at_point)
            found.append(comp)
        variants.append(comp)
        return comp

    def _build(self, fun: Callable[..., Any], primals: Sequence[Any], op: str, argnums: Sequence[int],
               order: int, constants: Sequence[int] = (), at_point: bool = True) -> Compiled:
        """compile_derivative under the backend's limits: in a child process when it has a timeout."""
        import os

        what = f"symbolic backend: {op} of {getattr(fun, '__name__', 'f')}"

        def build() -> Compiled:
            with recursion_as_size_limit(what):
                return compile_derivative(fun, primals, op, argnums, order, self.method, self.cse,
                                          self.simplify, self.size_limit, self.op_limit, self.matrix_limit,
                                          at_point=at_point, constants=constants)

        if self.timeout is None:
            return build()
        comp = run_limited(_portable_build, build, os.getpid(), timeout=self.timeout, what=what,
                           hint="raise it with Symbolic(timeout=SECONDS) (None: no limit)")
        comp._compiled(comp.scalar_module if hasattr(comp, "scalar_module") else "math")
        return comp

    def _run(self, fun: Callable[..., Any], primals: Sequence[Any], op: str, argnums: Sequence[int],
             order: int = 1) -> tuple[Any, Any]:
        if any(isinstance(p, Value) for p in primals):
            return self._run_traced(fun, primals, op, argnums, order)
        result = self.compiled(fun, primals, op, argnums, order)(primals)
        # computed in float64; results take the arguments' precision, as on the AD backends
        dtypes = [np.asarray(primals[i]).dtype for i in argnums]
        target = np.result_type(*dtypes) if dtypes else np.dtype(np.float64)
        if target.kind == "f" and target != np.float64:
            result = _cast(result, target)
        return result

    def _run_traced(self, fun: Callable[..., Any], primals: Sequence[Any], op: str,
                    argnums: Sequence[int], order: int) -> tuple[Any, Any]:
        # Nested inside another transformation: evaluate the expressions on its values
        # through the table (no compilation), so the outer transformation sees every step.
        from ..core.sympy_eval import sympy_evaluator

        # the branches follow the outer values' numbers, when the outer transformation knows them
        numbers = [_number_of(p) for p in primals]
        known = all(n is not None for n in numbers)
        point = [n if known else np.zeros(np.shape(p)) if isinstance(p, Value) else p
                 for n, p in zip(numbers, primals)]
        constants = [i for i, p in enumerate(primals)
                     if i not in argnums and _is_numeric(p) and not isinstance(p, Value)]
        comp = self.compiled(fun, point, op, argnums, order, constants, at_point=known)
        flat: list[Any] = []
        for p, shape in zip(primals, comp.shapes):
            if shape is None:
                continue
            flat.extend([p] if shape == () else [p[idx] for idx in np.ndindex(shape)])
        evaluators = [sympy_evaluator(e, comp.symbols) for e in comp._leaves]
        values = [ev(*flat) for ev in evaluators]
        return _unflatten_traced(comp._spec, values)

    # -- the operators' protocol ------------------------------------------------
    def value_and_grad(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
                       has_aux: bool = False, name: str = "f") -> tuple[Any, tuple[Any, ...], Any]:
        aux = None
        if has_aux:
            # the auxiliary output is not differentiated: compute it with NumPy
            aux = fun(*primals)[1]
            fun = _main_output(fun)
        value, grads = self._run(fun, primals, "grad", argnums)
        return value, tuple(grads), aux

    def jacobian(self, fun: Callable[..., Any], primals: Sequence[Any],
                 argnums: Sequence[int]) -> tuple[Any, tuple[Any, ...]]:
        value, jacs = self._run(fun, primals, "jacobian", argnums)
        return value, tuple(jacs)

    def hessian(self, fun: Callable[..., Any], primals: Sequence[Any],
                argnums: Sequence[int]) -> tuple[tuple[Any, ...], ...]:
        _, rows = self._run(fun, primals, "hessian", argnums)
        return tuple(tuple(r) for r in rows)

    def derivative(self, fun: Callable[..., Any], x: Any, order: int) -> Any:
        if order == 0:
            return self._run(fun, [x], "value", [0])[0]
        return self._run(fun, [x], "derivative", [0], order)[1][0]

    def jvp(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
            tangents: Sequence[Any], nb: int = 0) -> tuple[Any, Any]:
        value, jacs = self.jacobian(fun, primals, argnums)
        total: Any = 0.0
        for jac, t in zip(jacs, tangents):
            n_in = int(np.ndim(t)) - nb
            total = total + np.tensordot(jac, t, axes=(list(range(np.ndim(jac) - n_in, np.ndim(jac))),
                                                       list(range(nb, nb + n_in))))
        # tensordot puts the batch axes last: move them to the front
        if nb:
            total = np.moveaxis(total, list(range(-nb, 0)), list(range(nb)))
        return value, total

    def vjp(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
            has_aux: bool = False) -> tuple[Any, Callable[..., tuple[Any, ...]], Any]:
        aux = None
        if has_aux:
            aux = fun(*primals)[1]
            fun = _main_output(fun)
        value, jacs = self.jacobian(fun, primals, argnums)
        ond = int(np.ndim(value))

        def vjp_fn(ct: Any, nb: int = 0) -> tuple[Any, ...]:
            return tuple(np.tensordot(ct, jac, axes=(list(range(nb, nb + ond)), list(range(ond))))
                         for jac in jacs)

        return value, vjp_fn, aux


def _number_of(p: Any) -> Any:
    """The number a (possibly nested) traced value holds; ``None`` when a symbolic trace
    without a point holds it (its value is an expression of unknown numbers)."""
    while isinstance(p, Value):
        if isinstance(p, Sym):
            return p._trace.number(p.primal)
        p = p.primal
    return p


def _portable_build(build: Callable[[], Compiled], parent: int) -> Compiled:
    """``build()`` in a child process, made ready to travel back: the compiled functions
    (generated code) stay behind, the cse they were compiled from goes with the expressions."""
    import os

    captured: list[Any] = []
    if os.getpid() != parent:  # a forked child: its copy of this module only, the caller's is untouched
        plain = _dag_cse

        def recording(exprs: Any) -> Any:
            result = plain(exprs)
            captured.append(result)
            return result

        globals()["_dag_cse"] = recording
    comp = build()
    comp._fns = {}
    if captured:
        comp._cse = captured[-1]
    return comp


@functools.lru_cache(maxsize=256)
def _main_output(fun: Callable[..., Any]) -> Callable[..., Any]:
    # cached, so that the compiled derivative's cache key (the function) is stable
    def main(*args: Any) -> Any:
        return fun(*args)[0]

    return main


def _cast(tree: Any, dtype: Any) -> Any:
    if isinstance(tree, tuple):
        return tuple(_cast(t, dtype) for t in tree)
    return np.asarray(tree).astype(dtype)[()] if np.ndim(tree) == 0 else np.asarray(tree).astype(dtype)


def _unflatten_traced(spec: Any, values: Sequence[Any]) -> Any:
    if isinstance(spec, tuple) and spec and spec[0] == "array":
        _, start, shape = spec
        n = int(np.prod(shape))
        return pack(np.array(values[start:start + n], dtype=object).reshape(shape)) if n else np.zeros(shape)
    if isinstance(spec, tuple) and spec and spec[0] == "scalar":
        return values[spec[1]]
    return tuple(_unflatten_traced(s, values) for s in spec)


def precise(f: Any, args: Sequence[Any], op: str = "grad", argnums: int | Sequence[int] = 0,
            order: int = 1, dps: int = 50, timeout: float | None = None) -> Any:
    """A derivative of ``f`` at ``args`` evaluated in mpmath with ``dps`` significant digits.

    The symbolic (DAG-aware) derivative is evaluated at the exact binary
    values of the arguments, so the result is the true derivative at the
    floating-point point, correct to about ``dps`` digits; the harness uses
    it as its reference.

    Args:
        f: callable, :class:`~diffkit.Function`, expression string or SymPy expression.
        args: the point, one value per positional argument.
        op: ``"value"``, ``"grad"``, ``"jacobian"``, ``"hessian"`` or ``"derivative"``.
        argnums: differentiated argument(s); a tuple gives a tuple, as in the operators.
        order: the order, for ``op="derivative"``.
        dps: decimal digits of working precision.
        timeout: seconds allowed, in a child process killed at the limit
            (:class:`~diffkit.errors.TimeLimitError`); ``None``, the default, is
            no limit.

    Returns:
        ``mpmath.mpf`` numbers, in NumPy object arrays shaped as the operator's result.

    Example:
        >>> import diffkit as dk, mpmath
        >>> g = dk.precise("exp(x) * sin(y)", (1.0, 0.5), argnums=(0, 1), dps=30)
        >>> mpmath.nstr(g[0], 25)       # e sin(1/2)
        '1.303213729686995509272257'
    """
    import mpmath

    from ..core.function import as_function
    from ..limits import check_timeout

    if timeout is not None:
        return run_limited(precise, f, args, op, argnums, order, dps, timeout=check_timeout(timeout),
                           what=f"precise {op}")
    F = as_function(f)
    single = isinstance(argnums, (int, np.integer))
    nums = (int(argnums),) if single else tuple(int(a) for a in argnums)  # type: ignore[union-attr]
    primals = [float(a) if np.ndim(a) == 0 else np.asarray(a, dtype=float) for a in args]
    comp = compile_derivative(F.fn, primals, op if op != "value" else "value",
                              nums if op != "derivative" else nums[:1], order)
    with mpmath.workdps(dps):
        fn = lambdify(comp.symbols, comp._leaves, "mpmath")
        flat = [mpmath.mpf(v) for v in comp.flat_args(primals)]  # exact: every float is a dyadic rational
        values = [mpmath.mpf(v) if not isinstance(v, mpmath.mpc) else v for v in fn(*flat)]
    value, deriv = _unflatten_objects(comp._spec, values)
    if op == "value":
        return value
    if op == "derivative":
        return deriv[0]
    if op == "hessian":
        return deriv[0][0] if single else deriv
    return deriv[0] if single else deriv


def _unflatten_objects(spec: Any, values: Sequence[Any]) -> Any:
    if isinstance(spec, tuple) and spec and spec[0] == "array":
        _, start, shape = spec
        n = int(np.prod(shape))
        return np.array(values[start:start + n], dtype=object).reshape(shape)
    if isinstance(spec, tuple) and spec and spec[0] == "scalar":
        return values[spec[1]]
    return tuple(_unflatten_objects(s, values) for s in spec)
