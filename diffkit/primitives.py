"""THE primitive table: every primitive once, with all of its rules.

Each entry holds the NumPy implementation, the SymPy counterpart, the JVP and
VJP rules, the domain, whether it is complex-analytic, and its convention at
non-differentiable points. Every backend reads this one table, so the modes
cannot drift apart.

Rules are written with ``np.*`` calls on whatever values they receive, so they
are traced in turn and derivatives of any order come free. Their arguments are
``out`` (the primal result), the primals, then the tangent ``t`` or the
cotangent ``ct``. Tangents and cotangents may carry extra *leading* batch
dimensions (a whole Jacobian is one pass): elementwise rules get this from
broadcasting; structural rules count the batch dimensions as
``ndim(t) - ndim(x)``. Broadcasting is undone once, in the reverse backend,
never in rules.

Conventions at kinks follow SymPy (see the docs page "Conventions"):

========================  ===========  ======================================
expression at the kink    derivative   why
========================  ===========  ======================================
``abs(x)`` at 0           0            d Abs(x)/dx = sign(x), sign(0) = 0
``sign(x)``               0
``maximum``/``minimum``   1/2 each     Heaviside(0) = 1/2
tie
``clip`` at a bound       1/2          a maximum/minimum tie
``where(c, x, y)``        branch's     the selected branch, as a Piecewise
``max``/``min`` ties      split evenly  as maximum, over all tied elements
========================  ===========  ======================================

Example:
    >>> from diffkit.primitives import PRIMITIVES
    >>> p = PRIMITIVES["maximum"]
    >>> p.complex_safe, p.kink
    (False, 'ties give 1/2 to each argument, as SymPy Heaviside(0) = 1/2')
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np

from .core.lazy import lazy_sympy, sympy
from .core.primitive import OUT, PRIMITIVES, P, Primitive, Rule, define, jvp_from_partial, vjp_from_partial
from .core.values import bind, concrete, is_complex, register_array_methods
from .errors import SizeLimitError

__all__ = ["OUT", "PRIMITIVES", "P", "Primitive", "define", "has_advanced_index", "matrix_ndim", "pad_slice",
           "swap_last_axes"]

INF = math.inf


class _FastMath:
    """``np.cos`` and friends for rules: ``math`` on Python floats, NumPy otherwise.

    Rules run on floats in scalar code (a function of Python floats doing
    thousands of operations), on arrays, and on traced values when nested;
    this keeps the first case fast without a second set of rules.
    """

    def __init__(self) -> None:
        for name, mfun in (("cos", math.cos), ("sin", math.sin), ("exp", math.exp),
                           ("cosh", math.cosh), ("sinh", math.sinh), ("sqrt", math.sqrt),
                           ("exp2", lambda v: math.pow(2.0, v))):
            setattr(self, name, self._make(mfun, getattr(np, name)))

    @staticmethod
    def _make(mfun: Callable[[float], float], nfun: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def f(x: Any) -> Any:
            if type(x) is float:
                try:
                    return mfun(x)
                except (ValueError, ArithmeticError):
                    pass
            return nfun(x)

        return f

    @staticmethod
    def sign(x: Any) -> Any:
        if type(x) is float:
            return float((x > 0.0) - (x < 0.0)) if x == x else x
        return np.sign(x)


_f: Any = _FastMath()


def _const(c: Any, *like: Any) -> Any:
    """A constant array that rules build, in the floating dtype of ``like``.

    Masks and identity matrices are made as float64; left so, they would turn
    a float32 gradient into float64.
    """
    # dtypes, not values: a Python float is float64 here (as a value NumPy would let
    # the other operand's dtype win)
    dt = np.result_type(*[np.asarray(concrete(v)).dtype for v in like], np.float16)
    if dt.kind != "f" or dt == np.float64:
        return c
    return np.asarray(c, dtype=dt)


def _nb(t: Any, x: Any) -> int:
    """Leading batch dimensions of a tangent or cotangent ``t`` relative to ``x``."""
    return int(np.ndim(t)) - int(np.ndim(x))


def _zero(t: Any) -> Any:
    return t * 0.0


# --------------------------------------------------------------------------
# Elementwise: arithmetic
# --------------------------------------------------------------------------
define("add", np.add, sympy=lambda x, y: x + y, nargs=2, elementwise=True,
       jvp=(lambda t, out, x, y: t, lambda t, out, x, y: t),
       vjp=(lambda ct, out, x, y: ct, lambda ct, out, x, y: ct), domain=((-INF, INF),) * 2, saves=((), ()),
       linearity="linear", symbol="+", infix=("+", 1))
define("subtract", np.subtract, sympy=lambda x, y: x - y, nargs=2, elementwise=True,
       jvp=(lambda t, out, x, y: t, lambda t, out, x, y: -t),
       vjp=(lambda ct, out, x, y: ct, lambda ct, out, x, y: -ct),
       domain=((-INF, INF),) * 2, saves=((), ()),
       linearity="linear", symbol="−", infix=("-", 1))
define("multiply", np.multiply, sympy=lambda x, y: x * y, nargs=2, elementwise=True,
       jvp=(lambda t, out, x, y: t * y, lambda t, out, x, y: x * t),
       vjp=(lambda ct, out, x, y: ct * y, lambda ct, out, x, y: x * ct),
       domain=((-INF, INF),) * 2, saves=((1,), (0,)),
       linearity="multilinear", symbol="×", infix=("*", 2))


define("divide", np.divide, sympy=lambda x, y: x / y,
       partials=(lambda out, x, y: 1.0 / y, lambda out, x, y: -out / y),
       domain=((-INF, INF), (0.1, INF)), aliases=("true_divide",), saves=((1,), (OUT, 1)),
       symbol="÷", infix=("/", 2))


def _power(x: Any, y: Any) -> Any:
    """``x ** y`` as NumPy computes it, also on Python numbers: their own ``**`` gives a
    complex number for a negative base and raises at ``0.0 ** -1`` where NumPy float64
    gives NaN and inf. Arrays and traced values keep ``**`` (and NumPy's fast paths)."""
    if type(x) is float or type(x) is int and type(y) is not int:
        return np.float64(x) ** y
    return x ** y


def _pow_dbase(out: Any, x: Any, y: Any) -> Any:
    if type(y) in (int, float) and y == 2:
        return 2.0 * x  # x**2, the common case: no call of pow
    if type(x) is float and x < 0.0 and type(y) is float and not y.is_integer():
        return y * _power(x, y - 1)  # Python's ** would give a complex number: NumPy's NaN
    return y * x ** (y - 1)


def _pow_dexp(out: Any, x: Any, y: Any) -> Any:
    # d/dy x**y = x**y log x; at x == 0 the limit (for y > 0) is 0, as in JAX.
    safe = np.where(x == 0, 1.0, x)
    return np.where(x == 0, 0.0, out * np.log(safe))


def _pow_vjp_base(ct: Any, out: Any, x: Any, y: Any) -> Any:
    if type(y) in (int, float) and y == 2:
        return (ct * 2.0) * x  # ct is often small (from a sum): one full-size product, not two
    return ct * _pow_dbase(out, x, y)


define("power", _power, sympy=lambda x, y: x**y, partials=(_pow_dbase, _pow_dexp),
       vjp=(_pow_vjp_base, vjp_from_partial(_pow_dexp)),
       domain=((0.1, INF), (-INF, INF)),
       doc="x**y; d/dy uses log x, so a traced exponent needs x > 0", saves=((OUT, 0, 1), (OUT, 0)),
       symbol="^")
define("negative", np.negative, sympy=lambda x: -x, elementwise=True,
       jvp=(lambda t, out, x: -t,), vjp=(lambda ct, out, x: -ct,),
       domain=((-INF, INF),), saves=((),),
       linearity="linear", symbol="−")
define("positive", np.positive, sympy=lambda x: x, elementwise=True,
       jvp=(lambda t, out, x: t,), vjp=(lambda ct, out, x: ct,), domain=((-INF, INF),), saves=((),),
       linearity="linear")


def _unit_conj(x: Any) -> Any:
    """``conj(x) / |x|``, 0 at 0: the derivative of ``|x|`` for a complex ``x``, as JAX's."""
    return np.conjugate(x) / np.where(x == 0, 1.0, np.absolute(x))


def _abs_jvp(t: Any, out: Any, x: Any) -> Any:
    if is_complex(x):  # d|z| = Re(conj(z) dz) / |z|: real, and not C-linear in dz
        return _re(_unit_conj(x) * t)
    return t * _f.sign(x)


def _abs_vjp(ct: Any, out: Any, x: Any) -> Any:
    if is_complex(x):  # the transpose of the JVP above: ct conj(z) / |z|
        return ct * _unit_conj(x)
    return ct * _f.sign(x)


define("absolute", np.absolute, sympy=lazy_sympy("Abs"), elementwise=True, nargs=1,
       jvp=(_abs_jvp,), vjp=(_abs_vjp,),
       complex_safe=False, kink="d|x|/dx at 0 is sign(0) = 0, as SymPy",
       kink_gap=lambda x: x, domain=((-INF, INF),), aliases=("abs", "fabs"), saves=((0,),),
       doc="for complex z: d|z| = Re(conj(z) dz) / |z|, and the VJP ct conj(z) / |z| (JAX's)")
define("sign", np.sign, sympy=lazy_sympy("sign"), elementwise=True,
       jvp=(lambda t, out, x: _zero(t),), vjp=(lambda ct, out, x: _zero(ct),),
       complex_safe=False, kink="derivative 0 everywhere, also at the jump at 0",
       kink_gap=lambda x: x, domain=((-INF, INF),), saves=((),))
define("sqrt", np.sqrt, sympy=lazy_sympy("sqrt"), partials=(lambda out, x: 0.5 / out,),
       domain=((0.0, INF),), saves=((OUT,),))
define("cbrt", np.cbrt, sympy=lambda x: sympy.sign(x) * sympy.Abs(x) ** sympy.Rational(1, 3),
       partials=(lambda out, x: 1.0 / (3.0 * out * out),), domain=((0.0, INF),),
       complex_safe=False, doc="the real cube root; its complex continuation differs for x < 0", saves=((OUT,),))
define("square", np.square, sympy=lambda x: x**2, partials=(lambda out, x: 2.0 * x,),
       vjp=(lambda ct, out, x: (ct * 2.0) * x,),
       domain=((-INF, INF),), saves=((0,),),
       symbol="x²")
define("reciprocal", np.reciprocal, sympy=lambda x: 1 / x, partials=(lambda out, x: -(out * out),),
       domain=((0.1, INF),), saves=((OUT,),),
       symbol="1/x")

# --------------------------------------------------------------------------
# Complex numbers (JAX's conventions, docs/complex.md)
#
# A JVP rule is the real-linear derivative: ``t * f'(z)`` for a holomorphic
# primitive, ``real(t)``, ``imag(t)``, ``conj(t)`` for the parts. A VJP rule is
# its transpose for the pairing <a, b> = Re(sum(a * b)), without conjugation: a
# holomorphic primitive's VJP is ``ct * f'(z)`` (so the ``partials`` above serve
# complex values unchanged), the real part's gives ``ct`` back as a complex
# number, the imaginary part's ``-1j * ct``, the conjugate's ``conj(ct)``. The
# cotangent of a real value is real: the reverse backend puts ``to_complex``
# between a real value and a complex result computed from it, and its VJP
# keeps the real part. ``numpy_api`` binds real, imag, conj and angle on
# complex values only (of a real value they are the value, 0, the value, 0 or pi).
# --------------------------------------------------------------------------


_OBJECT_RE = np.frompyfunc(lazy_sympy("re"), 1, 1)
_OBJECT_IM = np.frompyfunc(lazy_sympy("im"), 1, 1)


def _re(v: Any) -> Any:
    """``np.real`` for the rules, also of SymPy numbers: a seed of the symbolic backend
    (``S.One``, an object array of them) is a plain SymPy value until it meets a traced
    one, and NumPy's ``real`` of an object array is the array itself."""
    if isinstance(v, sympy.Basic):
        return sympy.re(v)
    if type(v) is np.ndarray and v.dtype == object:
        return _OBJECT_RE(v)
    return np.real(v)


def _im(v: Any) -> Any:
    """``np.imag`` for the rules, also of SymPy numbers (see :func:`_re`)."""
    if isinstance(v, sympy.Basic):
        return sympy.im(v)
    if type(v) is np.ndarray and v.dtype == object:
        return _OBJECT_IM(v)
    return np.imag(v)


def _complex_cotangent(ct: Any) -> Any:
    """``ct`` as a complex number: the cotangent of a complex value is complex (JAX's
    transpose of ``real`` is ``complex(ct, 0)``)."""
    t = type(ct)
    if t is np.ndarray:
        return ct if ct.dtype.kind == "c" else ct.astype(np.result_type(ct.dtype, np.complex64))
    if t is float or t is int:
        return complex(ct)
    if isinstance(ct, np.floating):
        return np.result_type(ct, np.complex64).type(ct)
    return ct  # a traced cotangent (nested derivatives) or a SymPy value: its type stays


define("real", np.real, sympy=lazy_sympy("re"), elementwise=True, nargs=1,
       jvp=(lambda t, out, x: _re(t),), vjp=(lambda ct, out, x: _complex_cotangent(ct),),
       complex_safe=False, domain=((-INF, INF),), saves=((),), linearity="linear",
       doc="the real part; not complex-analytic; the VJP gives ct back as a complex number")
define("imag", np.imag, sympy=lazy_sympy("im"), elementwise=True, nargs=1,
       jvp=(lambda t, out, x: _im(t),), vjp=(lambda ct, out, x: ct * -1j,),
       complex_safe=False, domain=((-INF, INF),), saves=((),), linearity="linear",
       doc="the imaginary part; not complex-analytic; the VJP is -1j * ct (JAX's)")
define("conj", np.conjugate, sympy=lazy_sympy("conjugate"), elementwise=True, nargs=1,
       jvp=(lambda t, out, x: np.conjugate(t),), vjp=(lambda ct, out, x: np.conjugate(ct),),
       complex_safe=False, domain=((-INF, INF),), saves=((),), linearity="linear",
       aliases=("conjugate",), doc="the complex conjugate; not complex-analytic")


def _inverse_or_zero(x: Any) -> Any:
    """``1 / x``, 0 at 0 (``conj(x) / |x|**2``)."""
    return 1.0 / np.where(x == 0, INF, x)


def _angle_jvp(t: Any, out: Any, x: Any) -> Any:
    if not is_complex(x):  # 0 or pi: piecewise constant
        return _zero(t)
    return _im(t * _inverse_or_zero(x))  # d arg z = Im(conj(z) dz) / |z|**2 = Im(dz / z)


def _angle_vjp(ct: Any, out: Any, x: Any) -> Any:
    if not is_complex(x):
        return _zero(ct)
    return ct * (-1j * _inverse_or_zero(x))  # the transpose: -1j ct / z


define("angle", np.angle, sympy=lazy_sympy("arg"), elementwise=True, nargs=1,
       jvp=(_angle_jvp,), vjp=(_angle_vjp,), complex_safe=False, domain=((-INF, INF),),
       kink="not differentiable at 0: the derivative there is 0 (of a real number, 0 everywhere)",
       kink_gap=lambda x: np.absolute(x), saves=((0,),),
       doc="the argument (phase) of a complex number, NumPy's np.angle without deg")
define("to_complex", lambda x: x, sympy=lambda x: x,
       jvp=(lambda t, out, x: t,), vjp=(lambda ct, out, x: _re(ct),),
       domain=((-INF, INF),), saves=((),), linearity="linear",
       doc="a real value entering complex arithmetic (JAX's real-to-complex conversion): the "
           "identity on values; the reverse backend records it between a real value and a complex "
           "result, and its VJP keeps the real part of the cotangent, so real values get real gradients")

# --------------------------------------------------------------------------
# Elementwise: exponentials and logarithms
# --------------------------------------------------------------------------
_LN2, _LN10 = math.log(2.0), math.log(10.0)
define("exp", np.exp, sympy=lazy_sympy("exp"), partials=(lambda out, x: out,), domain=((-INF, INF),), saves=((OUT,),))
define("exp2", np.exp2, sympy=lambda x: 2**x, partials=(lambda out, x: out * _LN2,),
       domain=((-INF, INF),), saves=((OUT,),))
define("expm1", np.expm1, sympy=lambda x: sympy.exp(x) - 1, partials=(lambda out, x: out + 1.0,),
       domain=((-INF, INF),), saves=((OUT,),))
define("log", np.log, sympy=lazy_sympy("log"), partials=(lambda out, x: 1.0 / x,), domain=((0.0, INF),),
       aliases=("ln",), saves=((0,),))
define("log2", np.log2, sympy=lambda x: sympy.log(x, 2), partials=(lambda out, x: 1.0 / (x * _LN2),),
       domain=((0.0, INF),), saves=((0,),))
define("log10", np.log10, sympy=lambda x: sympy.log(x, 10),
       partials=(lambda out, x: 1.0 / (x * _LN10),), domain=((0.0, INF),), saves=((0,),))
define("log1p", np.log1p, sympy=lambda x: sympy.log(1 + x), partials=(lambda out, x: 1.0 / (1.0 + x),),
       domain=((-1.0, INF),), saves=((0,),))
define("logaddexp", np.logaddexp, sympy=lambda x, y: sympy.log(sympy.exp(x) + sympy.exp(y)),
       partials=(lambda out, x, y: _f.exp(x - out), lambda out, x, y: _f.exp(y - out)),
       domain=((-INF, INF),) * 2, complex_safe=False,
       doc="analytic, but NumPy's logaddexp takes no complex input", saves=((OUT, 0), (OUT, 1)))
define("logaddexp2", np.logaddexp2, sympy=lambda x, y: sympy.log(2**x + 2**y, 2),
       partials=(lambda out, x, y: _f.exp2(x - out), lambda out, x, y: _f.exp2(y - out)),
       domain=((-INF, INF),) * 2, saves=((OUT, 0), (OUT, 1)))

# --------------------------------------------------------------------------
# Elementwise: trigonometric and hyperbolic
# --------------------------------------------------------------------------
define("sin", np.sin, sympy=lazy_sympy("sin"), partials=(lambda out, x: _f.cos(x),),
       domain=((-INF, INF),), saves=((0,),))
define("cos", np.cos, sympy=lazy_sympy("cos"), partials=(lambda out, x: -_f.sin(x),),
       domain=((-INF, INF),), saves=((0,),))
define("tan", np.tan, sympy=lazy_sympy("tan"), partials=(lambda out, x: 1.0 + out * out,),
       domain=((-1.5, 1.5),), saves=((OUT,),))
define("arcsin", np.arcsin, sympy=lazy_sympy("asin"), partials=(lambda out, x: 1.0 / _f.sqrt((1.0 - x) * (1.0 + x)),),
       domain=((-1.0, 1.0),), aliases=("asin",), doc="(1 - x)(1 + x), not 1 - x*x: exact near |x| = 1", saves=((0,),))
define("arccos", np.arccos, sympy=lazy_sympy("acos"), partials=(lambda out, x: -1.0 / _f.sqrt((1.0 - x) * (1.0 + x)),),
       domain=((-1.0, 1.0),), aliases=("acos",), doc="(1 - x)(1 + x), not 1 - x*x: exact near |x| = 1", saves=((0,),))
define("arctan", np.arctan, sympy=lazy_sympy("atan"), partials=(lambda out, x: 1.0 / (1.0 + x * x),),
       domain=((-INF, INF),), aliases=("atan",), saves=((0,),))
define("arctan2", np.arctan2, sympy=lambda y, x: sympy.atan2(y, x),
       partials=(lambda out, y, x: x / (x * x + y * y), lambda out, y, x: -y / (x * x + y * y)),
       domain=((-INF, INF), (0.1, INF)), complex_safe=False, aliases=("atan2",),
       doc="arctan2(y, x); not analytic in (y, x) jointly", saves=((0, 1), (0, 1)))
define("hypot", np.hypot, sympy=lambda x, y: sympy.sqrt(x**2 + y**2),
       partials=(lambda out, x, y: x / out, lambda out, x, y: y / out),
       domain=((-INF, INF),) * 2, complex_safe=False,
       kink="not differentiable at the origin: NaN there (0/0), as SymPy",
       kink_gap=lambda x, y: np.hypot(x, y) / math.sqrt(2.0),
       doc="sqrt(x**2 + y**2); not differentiable at the origin (NaN there, as SymPy)", saves=((OUT, 0), (OUT, 1)))
define("sinh", np.sinh, sympy=lazy_sympy("sinh"), partials=(lambda out, x: _f.cosh(x),),
       domain=((-INF, INF),), saves=((0,),))
define("cosh", np.cosh, sympy=lazy_sympy("cosh"), partials=(lambda out, x: _f.sinh(x),),
       domain=((-INF, INF),), saves=((0,),))


def _one_minus_square(y: Any) -> Any:
    """``1 - y * y``; on a float array in the product's own memory (one allocation, not two)."""
    if type(y) is np.ndarray and y.dtype.kind in "fc":
        t = y * y
        return np.subtract(1.0, t, out=t)
    return 1.0 - y * y


define("tanh", np.tanh, sympy=lazy_sympy("tanh"), partials=(lambda out, x: _one_minus_square(out),),
       domain=((-INF, INF),), saves=((OUT,),))
define("arcsinh", np.arcsinh, sympy=lazy_sympy("asinh"), partials=(lambda out, x: 1.0 / _f.sqrt(x * x + 1.0),),
       domain=((-INF, INF),), aliases=("asinh",), saves=((0,),))
define("arccosh", np.arccosh, sympy=lazy_sympy("acosh"),
       partials=(lambda out, x: 1.0 / (_f.sqrt(x - 1.0) * _f.sqrt(x + 1.0)),),
       domain=((1.0, INF),), aliases=("acosh",), saves=((0,),))
define("arctanh", np.arctanh, sympy=lazy_sympy("atanh"), partials=(lambda out, x: 1.0 / ((1.0 - x) * (1.0 + x)),),
       domain=((-1.0, 1.0),), aliases=("atanh",), doc="(1 - x)(1 + x), not 1 - x*x: exact near |x| = 1", saves=((0,),))

# --------------------------------------------------------------------------
# Elementwise: kinks and selection
# --------------------------------------------------------------------------


def _wins(a: Any, b: Any) -> Any:
    """1 where a is the larger, 0 where b is, 1/2 on ties (SymPy's Heaviside(0))."""
    return _const(np.where(a > b, 1.0, np.where(a < b, 0.0, 0.5)), a, b)


def _half_difference(x: Any, y: Any) -> Any:
    return (np.asarray(x) - np.asarray(y)) / 2.0


_TIE = "ties give 1/2 to each argument, as SymPy Heaviside(0) = 1/2"
define("maximum", np.maximum, sympy=lazy_sympy("Max"),
       partials=(lambda out, x, y: _wins(x, y), lambda out, x, y: _wins(y, x)),
       complex_safe=False, kink=_TIE, kink_gap=_half_difference, domain=((-INF, INF),) * 2,
       aliases=("fmax",), saves=((0, 1), (0, 1)))
define("minimum", np.minimum, sympy=lazy_sympy("Min"),
       partials=(lambda out, x, y: _wins(y, x), lambda out, x, y: _wins(x, y)),
       complex_safe=False, kink=_TIE, kink_gap=_half_difference, domain=((-INF, INF),) * 2,
       aliases=("fmin",), saves=((0, 1), (0, 1)))


def _where_sympy(c: Any, x: Any, y: Any) -> Any:
    return sympy.Piecewise((x, c), (y, True))


define("where", np.where, sympy=_where_sympy, nargs=3, elementwise=True,
       jvp=(None, lambda t, out, c, x, y: np.where(c, t, 0.0), lambda t, out, c, x, y: np.where(c, 0.0, t)),  # type: ignore[arg-type]
       vjp=(None, lambda ct, out, c, x, y: np.where(c, ct, 0.0), lambda ct, out, c, x, y: np.where(c, 0.0, ct)),  # type: ignore[arg-type]
       nondiff_args=frozenset({0}), complex_safe=True,
       kink="the derivative of the selected branch, as a SymPy Piecewise",
       domain=((-INF, INF),) * 3, saves=((), (0,), (0,)))

def _jump_gap(exclude_zero: bool) -> Callable[..., Any]:
    """The sup-norm distance from (x, y) to the jumps of x mod y, the lines x = n y (and
    y = 0, where they accumulate): min over n of |x - n y| / (1 + |n|). The nearest
    lines have n next to x / y; ``exclude_zero`` leaves out n = 0 (fmod is continuous
    through x = 0)."""

    def gap(x: Any, y: Any) -> Any:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.floor(np.where(y == 0, 0.0, x / np.where(y == 0, 1.0, y)))
        best = np.abs(y)
        for n in (q - 1.0, q, q + 1.0, q + 2.0, np.ones_like(q), -np.ones_like(q)):
            d = np.abs(x - n * y) / (1.0 + np.abs(n))
            if exclude_zero:
                d = np.where(n == 0, np.inf, d)
            best = np.minimum(best, d)
        return best

    return gap


def _mod_dy(out: Any, x: Any, y: Any) -> Any:
    return -np.floor_divide(x, y)  # NumPy's remainder is x - y * floor_divide(x, y)


def _fmod_dy(out: Any, x: Any, y: Any) -> Any:
    return -np.trunc(x / y)


_MOD_KINK = ("jumps where x / y is an integer: there the rules give d/dx = 1 and d/dy = -n "
             "with n the quotient NumPy's own result uses (the value is the right-hand one, 0)")
define("remainder", np.remainder, sympy=lazy_sympy("Mod"),
       partials=(lambda out, x, y: 1.0, _mod_dy),
       jvp=(lambda t, out, x, y: t, jvp_from_partial(_mod_dy)),
       vjp=(lambda ct, out, x, y: ct, vjp_from_partial(_mod_dy)),
       domain=((-INF, INF), (-INF, INF)), complex_safe=False, aliases=("mod",), saves=((), (0, 1)),
       kink=_MOD_KINK, kink_gap=_jump_gap(False),
       doc="x mod y with the sign of y (Python's %); d/dx = 1, d/dy = -floor(x / y)")
define("fmod", np.fmod, sympy=lambda x, y: sympy.sign(x) * sympy.Mod(sympy.Abs(x), sympy.Abs(y)),
       partials=(lambda out, x, y: 1.0, _fmod_dy),
       jvp=(lambda t, out, x, y: t, jvp_from_partial(_fmod_dy)),
       vjp=(lambda ct, out, x, y: ct, vjp_from_partial(_fmod_dy)),
       domain=((-INF, INF), (-INF, INF)), complex_safe=False, saves=((), (0, 1)),
       kink=_MOD_KINK.replace("an integer", "a nonzero integer"), kink_gap=_jump_gap(True),
       doc="C's fmod, the sign of x; d/dx = 1, d/dy = -trunc(x / y)")

# Piecewise-constant and logical operations: their results are plain arrays.
# name: SymPy counterpart. On the symbolic backend comparisons become
# relationals, which np.where turns into a Piecewise.
_PIECEWISE_CONSTANT: dict[str, Callable[..., Any] | None] = {
    "greater": lazy_sympy("Gt"), "greater_equal": lazy_sympy("Ge"),
    "less": lazy_sympy("Lt"), "less_equal": lazy_sympy("Le"),
    "equal": lazy_sympy("Eq"), "not_equal": lazy_sympy("Ne"),
    "logical_and": lazy_sympy("And"), "logical_or": lazy_sympy("Or"), "logical_xor": lazy_sympy("Xor"),
    "logical_not": lazy_sympy("Not"), "floor": lazy_sympy("floor"), "ceil": lazy_sympy("ceiling"),
    "trunc": lambda x: sympy.sign(x) * sympy.floor(sympy.Abs(x)),
    "rint": None, "isfinite": None, "isnan": None, "isinf": None,
    "signbit": None, "floor_divide": lambda x, y: sympy.floor(x / y),
}
_ORDERINGS = ("greater", "greater_equal", "less", "less_equal")


def _to_integer(x: Any) -> Any:
    x = np.asarray(x, dtype=float)
    return x - np.round(x)


# where the rounding functions jump: at the integers (rint: halfway between them)
_JUMPS: dict[str, Callable[..., Any]] = {
    "floor": _to_integer, "ceil": _to_integer, "trunc": _to_integer,
    "rint": lambda x: _to_integer(np.asarray(x, dtype=float) - 0.5),
}
for _name, _sym in _PIECEWISE_CONSTANT.items():
    define(_name, getattr(np, _name), sympy=_sym, nargs=getattr(np, _name).nin, elementwise=True,
           differentiable=False, complex_safe=False, domain=((-INF, INF),) * getattr(np, _name).nin,
           kink=("at equality the branches of a np.where meet: each side's own derivative"
                 if _name in _ORDERINGS else "piecewise constant: derivative 0 where it exists"),
           kink_gap=_JUMPS.get(_name, _half_difference if _name in _ORDERINGS else None))

# --------------------------------------------------------------------------
# Reductions
# --------------------------------------------------------------------------


def _expand_reduced(ct: Any, xshape: tuple[int, ...], axis: tuple[int, ...], keepdims: bool) -> Any:
    """A reduced (co)tangent with the reduced axes put back as length-1 axes.

    It broadcasts against ``xshape``; it is not materialized (a cotangent that
    is constant along an axis stays small until something needs it whole).
    """
    if keepdims:
        return ct
    nd = len(xshape)
    nb = int(np.ndim(ct)) - (nd - len(axis))
    batch = tuple(np.shape(ct)[:nb])
    kept = tuple(1 if (i - nd) in axis else d for i, d in enumerate(xshape))
    return np.reshape(ct, batch + kept)


def _sum_np(x: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
    return np.sum(x, axis=axis, keepdims=keepdims)


def _sum_vjp(ct: Any, out: Any, x: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
    # Reads only ct and out (not x), so the tape need not keep the summed array.
    if keepdims or type(ct) is float:  # a float broadcasts against x as it is
        return ct
    ct_shape = tuple(np.shape(ct))
    out_nd = int(np.ndim(out))
    nb = len(ct_shape) - out_nd
    nd = out_nd + len(axis)
    reduced = {nd + a for a in axis}
    kept = iter(ct_shape[nb:])
    return np.reshape(ct, ct_shape[:nb] + tuple(1 if i in reduced else next(kept) for i in range(nd)))


define("sum", _sum_np, sympy=lambda x, axis, keepdims: _object_reduce(sympy.Add, x, axis, keepdims),
       jvp=(lambda t, out, x, axis, keepdims: np.sum(t, axis=axis, keepdims=keepdims),),
       vjp=(_sum_vjp,),
       doc="axis: a tuple of negative axes (the handler normalizes it)", saves=((OUT,),),
       linearity="linear")


def _prod_np(x: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
    return np.prod(x, axis=axis, keepdims=keepdims)


def _prod_share(out: Any, x: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
    # d prod / d x_i = prod / x_i: exact except at exact zeros (NaN there, said in the docs).
    return _expand_reduced(out, np.shape(x), axis, keepdims) / x


define("prod", _prod_np, sympy=lambda x, axis, keepdims: _object_reduce(sympy.Mul, x, axis, keepdims),
       jvp=(lambda t, out, x, axis, keepdims: np.sum(t * _prod_share(out, x, axis, keepdims),
                                                     axis=axis, keepdims=keepdims),),
       vjp=(lambda ct, out, x, axis, keepdims: _expand_reduced(ct, np.shape(x), axis, keepdims)
            * _prod_share(out, x, axis, keepdims),),
       doc="the rule divides by x: a factor exactly 0 gives NaN", saves=((OUT, 0),))


def _extreme_share(out: Any, x: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
    """Where x attains the extreme, 1/(number of ties); else 0 (ties split evenly)."""
    # np.where, not a boolean array, so that symbolic values give a Piecewise
    hit = np.where(np.equal(x, _expand_reduced(out, np.shape(x), axis, keepdims)), 1.0, 0.0)
    return _const(hit / np.sum(hit, axis=axis, keepdims=True), x)


_NUMERIC_CT = (np.ndarray, float, np.float64)


def _extreme_vjp(ct: Any, out: Any, x: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
    cte = _expand_reduced(ct, np.shape(x), axis, keepdims)
    if type(x) is np.ndarray and x.dtype == np.float64 and type(out) in _NUMERIC_CT and type(ct) in _NUMERIC_CT:
        # The same numbers as _extreme_share's with fewer passes. Without ties (one hit
        # per extreme, and no NaN extreme, which has none) the share is the hit itself:
        # no count per extreme (a slow reduction along a short axis).
        hit = x == _expand_reduced(out, x.shape, axis, keepdims)
        out = np.asarray(out)
        if np.count_nonzero(hit) == out.size and not np.isnan(out.sum()):
            return cte * hit.astype(np.float64)
        return (cte * (1.0 / np.sum(hit, axis=axis, keepdims=True))) * hit
    return cte * _extreme_share(out, x, axis, keepdims)


def _extreme_gap(largest: bool, x: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
    """Half the distance between the extreme and the runner-up along ``axis``: 0 at a tie."""
    x = np.asarray(x, dtype=float)
    axes = tuple(a % x.ndim for a in axis) if x.ndim else ()
    moved = np.moveaxis(x, axes, tuple(range(x.ndim - len(axes), x.ndim)))
    flat = moved.reshape(moved.shape[: x.ndim - len(axes)] + (-1,))
    if flat.shape[-1] < 2:
        return np.full(flat.shape[:-1], np.inf)
    two = np.sort(flat, axis=-1)[..., -2:] if largest else np.sort(flat, axis=-1)[..., :2]
    return np.abs(two[..., 1] - two[..., 0]) / 2.0


def _define_extreme(name: str, fn: Callable[..., Any], sym: Callable[..., Any]) -> None:
    def impl(x: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
        return fn(x, axis=axis, keepdims=keepdims)

    define(name, impl, sympy=lambda x, axis, keepdims: _object_reduce(sym, x, axis, keepdims),
           jvp=(lambda t, out, x, axis, keepdims: np.sum(t * _extreme_share(out, x, axis, keepdims),
                                                         axis=axis, keepdims=keepdims),),
           vjp=(_extreme_vjp,),
           complex_safe=False, kink="ties split the derivative evenly among the tied elements",
           kink_gap=functools.partial(_extreme_gap, name == "max"), saves=((OUT, 0),))


def _object_reduce(op: Callable[..., Any], x: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
    """``op(*elements)`` along ``axis`` of an object array: one n-ary SymPy node per
    output (a chain of binary additions would rebuild the sum n times)."""
    x = np.asarray(x, dtype=object)
    axes = tuple(a % x.ndim for a in axis)
    moved = np.moveaxis(x, axes, tuple(range(-len(axes), 0)))
    flat = moved.reshape(moved.shape[: moved.ndim - len(axes)] + (-1,))
    out = np.empty(flat.shape[:-1], dtype=object)
    for idx in np.ndindex(out.shape):
        out[idx] = op(*flat[idx])
    if keepdims:
        out = np.expand_dims(out, axes)
    return out


_define_extreme("max", np.max, lazy_sympy("Max"))
_define_extreme("min", np.min, lazy_sympy("Min"))


def _cumsum_vjp(ct: Any, out: Any, x: Any, axis: int) -> Any:
    return np.flip(np.cumsum(np.flip(ct, axis), axis=axis), axis)


define("cumsum", lambda x, axis: np.cumsum(x, axis=axis),
       sympy=lambda x, axis: np.cumsum(np.asarray(x, dtype=object), axis=axis),
       jvp=(lambda t, out, x, axis: np.cumsum(t, axis=axis),), vjp=(_cumsum_vjp,),
       doc="axis: a negative axis", saves=((),),
       linearity="linear")

# --------------------------------------------------------------------------
# Structure: reshape, transpose, indexing, joining, broadcasting
# --------------------------------------------------------------------------


def _batch(t: Any, nb: int) -> tuple[int, ...]:
    return tuple(np.shape(t)[:nb])


define("reshape", lambda x, shape: np.reshape(x, shape),
       sympy=lambda x, shape: np.reshape(np.asarray(x, dtype=object), shape),
       jvp=(lambda t, out, x, shape: np.reshape(t, _batch(t, _nb(t, x)) + shape),),
       vjp=(lambda ct, out, x, shape: np.reshape(ct, _batch(ct, _nb(ct, out)) + np.shape(x)),),
       doc="shape: fully resolved, no -1", saves=((OUT, 0),),
       linearity="linear")


def _batched_axes(axes: tuple[int, ...], nb: int) -> tuple[int, ...]:
    return tuple(range(nb)) + tuple(nb + a for a in axes)


define("transpose", lambda x, axes: np.transpose(x, axes),
       sympy=lambda x, axes: np.transpose(np.asarray(x, dtype=object), axes),
       jvp=(lambda t, out, x, axes: np.transpose(t, _batched_axes(axes, _nb(t, x))),),
       vjp=(lambda ct, out, x, axes: np.transpose(ct, _batched_axes(tuple(np.argsort(axes)),
                                                                    _nb(ct, out))),),
       doc="axes: a full permutation", saves=((OUT,),),
       linearity="linear")


def _getitem_batched(t: Any, idx: tuple[Any, ...], nb: int) -> Any:
    """``t[idx]`` where ``idx`` indexes the trailing dimensions (after ``nb`` batch ones).

    Moving the batch dimensions to the end keeps NumPy's placement rules for
    advanced indices exactly as for the unbatched value.
    """
    if nb == 0:
        return t[idx]
    lead = tuple(range(nb))
    trail = tuple(range(-nb, 0))
    return np.moveaxis(np.moveaxis(t, lead, trail)[idx], trail, lead)


def has_advanced_index(idx: tuple[Any, ...]) -> bool:
    for i in idx:  # a loop, not any(): this runs on every indexing
        if isinstance(i, np.ndarray):
            return True
    return False


def pad_slice(g: np.ndarray, idx: tuple[Any, ...], shape: tuple[int, ...],
               scale: float = 1.0) -> np.ndarray | None:
    """``scale * g`` padded with zeros, when ``idx`` is one unit-step slice along one axis.

    The common ``x[1:]``, ``x[:-1]``: one pass over the result instead of a
    zero fill followed by a copy (and the reverse backend's lazy factor
    ``scale`` is applied in the same pass). ``None`` for any other index.
    """
    if len(idx) > len(shape) or g.ndim != len(shape) or g.dtype.kind not in "fc":
        return None
    axis = -1
    for k, i in enumerate(idx):
        if type(i) is not slice:
            return None
        if i != _ALL:
            if axis >= 0 or i.step not in (None, 1):
                return None
            axis = k
    if axis < 0:
        return None
    start, stop, _ = idx[axis].indices(shape[axis])
    if stop < start:
        return None
    lead = (_ALL,) * axis
    out = np.empty(shape, g.dtype)
    out[lead + (slice(0, start),)] = 0
    out[lead + (slice(stop, None),)] = 0
    middle = out[lead + (slice(start, stop),)]
    if scale == 1.0:
        np.copyto(middle, g)
    else:
        np.multiply(g, scale, out=middle)
    return out


_ALL = slice(None)


def _scatter_np(g: Any, idx: tuple[Any, ...], shape: tuple[int, ...], nb: int) -> Any:
    """Zeros of shape ``batch + shape`` with ``g`` added at ``idx`` (repeated indices add up)."""
    g = np.asarray(g)
    if nb == 0:
        padded = pad_slice(g, idx, shape)
        if padded is not None:
            return padded
    batch = g.shape[:nb]
    z = np.zeros(tuple(shape) + batch, dtype=np.result_type(g.dtype, np.float64)
                 if g.dtype.kind not in "fc" else g.dtype)
    gm = np.moveaxis(g, tuple(range(nb)), tuple(range(-nb, 0))) if nb else g
    if gm.dtype == object and gm.ndim == 0:
        gm = gm[()]  # an object array would store a 0-d array as the element itself
    if has_advanced_index(idx):
        np.add.at(z, idx, gm)
    else:
        z[idx] = gm
    return np.moveaxis(z, tuple(range(-nb, 0)), tuple(range(nb))) if nb else z


define("getitem", lambda x, idx: x[idx],
       sympy=lambda x, idx: np.asarray(x, dtype=object)[idx],
       jvp=(lambda t, out, x, idx: _getitem_batched(t, idx, _nb(t, x)),),
       vjp=(lambda ct, out, x, idx: bind(P.scatter, ct, idx=idx, shape=np.shape(x), nb=_nb(ct, out)),),
       doc="idx: a tuple without Ellipsis (the handler expands it)", saves=((OUT, 0),),
       linearity="linear")
define("scatter", _scatter_np, sympy=_scatter_np,
       jvp=(lambda t, out, g, idx, shape, nb: bind(P.scatter, t, idx=idx, shape=shape,
                                                     nb=nb + _nb(t, g)),),
       vjp=(lambda ct, out, g, idx, shape, nb: _getitem_batched(ct, idx, int(np.ndim(ct)) - len(shape)),),
       doc="the transpose of getitem: zeros with the values added at idx", saves=((),),
       linearity="linear")


def _index_update_np(x: Any, v: Any, idx: tuple[Any, ...]) -> Any:
    """A copy of ``x`` with ``v`` written at ``idx`` (``x.at[idx].set(v)`` in JAX)."""
    x = np.asarray(x)
    out = x.astype(np.result_type(x, np.asarray(v)), copy=True)
    out[idx] = v
    return out


def _index_update_sympy(x: Any, v: Any, idx: tuple[Any, ...]) -> Any:
    out = np.array(x, dtype=object)
    if type(v) is np.ndarray and v.dtype == object and v.ndim == 0:
        v = v[()]
    out[idx] = v
    return out


def _set_batched(t: Any, v: Any, idx: tuple[Any, ...], nb: int, nbv: int) -> Any:
    """``t`` with ``v`` written at ``idx``, which indexes the dimensions after ``t``'s ``nb``
    leading batch ones; ``v`` has ``nbv`` (0 or ``nb``) leading batch dimensions. The batch
    dimensions moved to the end keep NumPy's placement of advanced indices, and ``v``'s own
    dimensions broadcast against the indexed ones as without a batch."""
    if nb == 0:
        return bind(P.index_update, t, v, idx=idx)
    tm = np.moveaxis(t, tuple(range(nb)), tuple(range(-nb, 0)))
    vm = np.moveaxis(v, tuple(range(nbv)), tuple(range(-nbv, 0))) if nbv else v
    return np.moveaxis(bind(P.index_update, tm, vm, idx=idx), tuple(range(-nb, 0)), tuple(range(nb)))


def _sum_to(g: Any, shape: tuple[int, ...], nb: int) -> Any:
    """``g`` (``nb`` batch dimensions, then ``shape`` broadcast) summed back to ``batch + shape``."""
    extra = int(np.ndim(g)) - nb - len(shape)
    if extra > 0:
        g = np.sum(g, axis=tuple(range(nb, nb + extra)))
    gs = np.shape(g)
    axes = tuple(nb + i for i, d in enumerate(shape) if d == 1 and gs[nb + i] != 1)
    return np.sum(g, axis=axes, keepdims=True) if axes else g


def _index_update_v_jvp(t: Any, out: Any, x: Any, v: Any, idx: tuple[Any, ...]) -> Any:
    nb = _nb(t, v)
    z = np.zeros(tuple(np.shape(t)[:nb]) + tuple(np.shape(out)), dtype=np.complex128 if is_complex(t) else np.float64)
    return _set_batched(z, t, idx, nb, nb)


define("index_update", _index_update_np, sympy=_index_update_sympy, nargs=2,
       jvp=(lambda t, out, x, v, idx: _set_batched(t, 0.0, idx, _nb(t, x), 0),
            _index_update_v_jvp),
       vjp=(lambda ct, out, x, v, idx: _set_batched(ct, 0.0, idx, _nb(ct, out), 0),
            lambda ct, out, x, v, idx: _sum_to(_getitem_batched(ct, idx, _nb(ct, out)), np.shape(v),
                                               _nb(ct, out))),
       doc="x with v written at idx (x[idx] = v on a traced array, recorded as a new value; as JAX's "
           "x.at[idx].set(v)); idx: a normalized index whose positions are distinct",
       saves=((OUT,), (OUT, 1)), linearity="linear")

def _join_tangents(tangents: tuple[Any, ...], args: tuple[Any, ...]) -> list[Any]:
    k = next(i for i, t in enumerate(tangents) if t is not None)
    batch = _batch(tangents[k], _nb(tangents[k], args[k]))
    return [t if t is not None else np.zeros(batch + np.shape(a)) for t, a in zip(tangents, args)]


def _slice_along(ct: Any, out: Any, axis: int, start: int, stop: int | None) -> Any:
    nd = int(np.ndim(out))
    idx = (slice(None),) * (nd + axis) + ((slice(start, stop) if stop is not None else start),)
    return _getitem_batched(ct, idx, _nb(ct, out))


def _concat_vjp(i: int, ct: Any, out: Any, *xs: Any, axis: int) -> Any:
    start = sum(np.shape(x)[axis] for x in xs[:i])
    return _slice_along(ct, out, axis, start, start + np.shape(xs[i])[axis])


define("concatenate", lambda *xs, axis: np.concatenate(xs, axis=axis),
       sympy=lambda *xs, axis: np.concatenate([np.asarray(x, dtype=object) for x in xs], axis=axis),
       nargs=None,
       jvp_joint=lambda ts, out, *xs, axis: np.concatenate(_join_tangents(ts, xs), axis=axis),
       vjp_variadic=_concat_vjp, doc="axis: a negative axis",
       linearity="linear")
define("stack", lambda *xs, axis: np.stack(xs, axis=axis),
       sympy=lambda *xs, axis: np.stack([np.asarray(x, dtype=object) for x in xs], axis=axis),
       nargs=None,
       jvp_joint=lambda ts, out, *xs, axis: np.stack(_join_tangents(ts, xs), axis=axis),
       vjp_variadic=lambda i, ct, out, *xs, axis: _slice_along(ct, out, axis, i, None),
       doc="axis: a negative axis of the result",
       linearity="linear")


def _broadcast_jvp(t: Any, out: Any, x: Any, shape: tuple[int, ...]) -> Any:
    nb = _nb(t, x)
    batch = _batch(t, nb)
    t = np.reshape(t, batch + (1,) * (len(shape) - int(np.ndim(x))) + np.shape(x))
    return np.broadcast_to(t, batch + tuple(shape))


define("broadcast_to", lambda x, shape: np.broadcast_to(x, shape),
       sympy=lambda x, shape: np.broadcast_to(np.asarray(x, dtype=object), shape),
       jvp=(_broadcast_jvp,), vjp=(lambda ct, out, x, shape: ct,),
       doc="the reverse backend sums the broadcast axes, as for every argument", saves=((),),
       linearity="linear")

# --------------------------------------------------------------------------
# Linear algebra
# --------------------------------------------------------------------------


def swap_last_axes(a: Any) -> Any:
    if type(a) is np.ndarray:
        return a.swapaxes(-1, -2)
    return np.swapaxes(a, -1, -2)


def matrix_ndim(x: Any) -> int:
    return x.ndim if type(x) is np.ndarray else int(np.ndim(x))


def _pad_stack(t: Any, nb: int, extra: int) -> Any:
    """Insert ``extra`` unit axes after the batch axes, aligning stacked operands."""
    if extra <= 0 or nb == 0:
        return t
    shape = np.shape(t)
    return np.reshape(t, shape[:nb] + (1,) * extra + shape[nb:])


def _matmul_jvp_a(t: Any, out: Any, a: Any, b: Any) -> Any:
    a_nd, b_nd = matrix_ndim(a), matrix_ndim(b)
    if a_nd == 1 and b_nd == 2:
        return np.matmul(t, b)  # (batch, n) @ (n, p): one matrix product
    nb = matrix_ndim(t) - a_nd
    t2 = t[..., None, :] if a_nd == 1 else t
    t2 = _pad_stack(t2, nb, max(b_nd, 2) - max(a_nd, 2))
    r = np.matmul(t2, b)
    return r[..., 0, :] if (a_nd == 1 and b_nd > 1) else (r[..., 0] if a_nd == 1 else r)


def _matmul_jvp_b(t: Any, out: Any, a: Any, b: Any) -> Any:
    a_nd, b_nd = matrix_ndim(a), matrix_ndim(b)
    if b_nd == 1 and a_nd == 2:
        return np.matmul(t, swap_last_axes(a))  # (batch, n) @ (n, m): one matrix product
    nb = matrix_ndim(t) - b_nd
    t2 = t[..., :, None] if b_nd == 1 else t
    t2 = _pad_stack(t2, nb, max(a_nd, 2) - max(b_nd, 2))
    r = np.matmul(a, t2)
    return r[..., 0] if b_nd == 1 else r


def _matmul_ct2(ct: Any, a_nd: int, b_nd: int) -> Any:
    if a_nd == 1:
        return ct[..., None, :]
    if b_nd == 1:
        return ct[..., :, None]
    return ct


def _matmul_vjp_a(ct: Any, out: Any, a: Any, b: Any) -> Any:
    a_nd, b_nd = matrix_ndim(a), matrix_ndim(b)
    if a_nd == 1 and b_nd == 2:
        return np.matmul(ct, swap_last_axes(b))  # (batch, p) @ (p, n)
    if b_nd == 1:  # an outer product per stacked row
        return np.reshape(ct, np.shape(ct) + (1,)) * b
    g = np.matmul(_matmul_ct2(ct, a_nd, b_nd), swap_last_axes(b))
    return g[..., 0, :] if a_nd == 1 else g


def _matmul_vjp_b(ct: Any, out: Any, a: Any, b: Any) -> Any:
    a_nd, b_nd = matrix_ndim(a), matrix_ndim(b)
    if b_nd == 1 and a_nd == 2:
        return np.matmul(ct, a)  # (batch, m) @ (m, n)
    if a_nd == 1:
        if b_nd == 1:
            return np.reshape(ct, np.shape(ct) + (1,)) * a
        return np.reshape(a, (-1, 1)) * np.expand_dims(ct, -2)  # outer product a ct^T
    g = np.matmul(swap_last_axes(a), _matmul_ct2(ct, a_nd, b_nd))
    return g[..., :, 0] if b_nd == 1 else g


define("matmul", np.matmul, sympy=lambda a, b: np.matmul(np.asarray(a, dtype=object), np.asarray(b, dtype=object)),
       nargs=2, jvp=(_matmul_jvp_a, _matmul_jvp_b), vjp=(_matmul_vjp_a, _matmul_vjp_b),
       doc="a @ b with NumPy's rules for 1-D operands and stacks", saves=((0, 1), (0, 1)),
       linearity="multilinear", symbol="@")


_EINSUM_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _einsum_parse(subscripts: str) -> tuple[list[str], str]:
    ins, _, out = subscripts.replace(" ", "").partition("->")
    return ins.split(","), out


def _batch_letters(subscripts: str, nb: int) -> str:
    """``nb`` index letters the subscripts do not use, for the batch axes of a rule.

    Letters rather than '...': a rule's own einsum may be differentiated again,
    and each level needs batch axes of its own.
    """
    free = [c for c in _EINSUM_LETTERS if c not in subscripts]
    if nb > len(free):
        raise SizeLimitError("einsum: too many axes for the available index letters")
    return "".join(free[:nb])


def _einsum_jvp(i: int) -> Rule:
    def rule(t: Any, out: Any, *ops: Any, subscripts: str) -> Any:
        parts, res = _einsum_parse(subscripts)
        b = _batch_letters(subscripts, _nb(t, ops[i]))
        parts = [b + p if k == i else p for k, p in enumerate(parts)]
        args = [t if k == i else o for k, o in enumerate(ops)]
        return np.einsum(",".join(parts) + "->" + b + res, *args)

    return rule


def _einsum_vjp(i: int, ct: Any, out: Any, *ops: Any, subscripts: str) -> Any:
    parts, res = _einsum_parse(subscripts)
    target = parts[i]
    others = [p for k, p in enumerate(parts) if k != i]
    available = set(res).union(*others) if others else set(res)
    kept = "".join(c for c in target if c in available)
    b = _batch_letters(subscripts, _nb(ct, out))
    g = np.einsum(",".join([b + res] + others) + "->" + b + kept,
                  ct, *[o for k, o in enumerate(ops) if k != i])
    if kept != target:  # an index summed over in operand i alone: broadcast back
        shape_i = np.shape(ops[i])
        batch = tuple(np.shape(g)[:len(b)])
        full = tuple(shape_i[k] if c in kept else 1 for k, c in enumerate(target))
        g = np.broadcast_to(np.reshape(g, batch + full), batch + tuple(shape_i))
    return g


define("einsum", lambda *ops, subscripts: np.einsum(subscripts, *ops),
       sympy=lambda *ops, subscripts: np.einsum(subscripts, *[np.asarray(o, dtype=object) for o in ops]),
       nargs=None, vjp_variadic=_einsum_vjp,
       jvp_joint=lambda ts, out, *ops, subscripts: _sum_nonzero(
           _einsum_jvp(k)(t, out, *ops, subscripts=subscripts) for k, t in enumerate(ts) if t is not None),
       doc="explicit subscripts 'ij,jk->ik' (the handler writes '...' out as letters); "
           "no index repeated within one operand",
       linearity="multilinear")


def _sum_nonzero(terms: Any) -> Any:
    total = None
    for term in terms:
        total = term if total is None else total + term
    return total


def _sym_matrix_map(fn: Callable[[sympy.Matrix], Any]) -> Callable[[Any], Any]:
    def apply(a: Any) -> Any:
        a = np.asarray(a, dtype=object)
        if a.ndim != 2:
            from .errors import UnsupportedOperation

            raise UnsupportedOperation(
                f"symbolic linear algebra on a stack of matrices (shape {a.shape}): SymPy's matrices "
                "are 2-D; use backend='reverse'")
        r = fn(sympy.Matrix(a.tolist()))
        return np.array(r.tolist(), dtype=object) if isinstance(r, sympy.MatrixBase) else r

    return apply


define("inv", np.linalg.inv, sympy=_sym_matrix_map(lambda m: m.inv()),
       jvp=(lambda t, out, a: -np.matmul(out, np.matmul(t, out)),),
       vjp=(lambda ct, out, a: -np.matmul(swap_last_axes(out), np.matmul(ct, swap_last_axes(out))),),
       domain=((-INF, INF),), doc="matrix inverse of a (stack of) square matrices", saves=((OUT,),))


def _solve(a: Any, b: Any, vector: bool) -> Any:
    return np.linalg.solve(a, b[..., None])[..., 0] if vector else np.linalg.solve(a, b)


def _solve_np(a: Any, b: Any) -> Any:
    return np.linalg.solve(a, b)


def _is_vec(b: Any) -> bool:
    return int(np.ndim(b)) == 1  # NumPy >= 2: b is a vector only when it is 1-D


def _stack_nd(x: Any, core: int) -> int:
    return int(np.ndim(x)) - core


def _solve_jvp_a(t: Any, out: Any, a: Any, b: Any) -> Any:
    # t: batch + a.shape. Its stack axes must line up with out's behind the batch axes.
    vec = _is_vec(b)
    t = _pad_stack(t, _nb(t, a), _stack_nd(out, 1 if vec else 2) - _stack_nd(a, 2))
    rhs = np.matmul(t, out[..., None])[..., 0] if vec else np.matmul(t, out)
    return -_solve(a, rhs, vec)


def _solve_jvp_b(t: Any, out: Any, a: Any, b: Any) -> Any:
    vec = _is_vec(b)
    core = 1 if vec else 2
    t = _pad_stack(t, _nb(t, b), _stack_nd(a, 2) - _stack_nd(b, core))
    return _solve(a, t, vec)


def _solve_vjp_b(ct: Any, out: Any, a: Any, b: Any) -> Any:
    return _solve(swap_last_axes(a), ct, _is_vec(b))


def _solve_vjp_a(ct: Any, out: Any, a: Any, b: Any) -> Any:
    vec = _is_vec(b)
    gb = _solve(swap_last_axes(a), ct, vec)
    if vec:
        return -(gb[..., :, None] * out[..., None, :])
    return -np.matmul(gb, swap_last_axes(out))


define("solve", _solve_np, sympy=lambda a, b: _sym_solve(a, b), nargs=2,
       jvp=(_solve_jvp_a, _solve_jvp_b), vjp=(_solve_vjp_a, _solve_vjp_b),
       domain=((-INF, INF),) * 2, doc="x with a @ x = b (b a vector when 1-D, as NumPy >= 2)", saves=((OUT, 0, 1), (0, 1)))


def _sym_solve(a: Any, b: Any) -> Any:
    # SymPy's matrices are 2-D: one symbolic inverse, then NumPy's object matmul,
    # which handles a vector b and stacks of right-hand sides (batched tangents).
    ainv = _sym_matrix_map(lambda m: m.inv())(a)
    b = np.asarray(b, dtype=object)
    return ainv @ b if b.ndim == 1 else np.matmul(ainv, b)


def _expand2(c: Any) -> Any:
    """A (batch of) scalar(s) with two unit axes appended, to scale matrices."""
    return np.reshape(c, np.shape(c) + (1, 1))


def _det_jvp(t: Any, out: Any, a: Any) -> Any:
    return out * np.sum(swap_last_axes(np.linalg.inv(a)) * t, axis=(-2, -1))


define("det", np.linalg.det, sympy=_sym_matrix_map(lambda m: m.det()),
       jvp=(_det_jvp,),
       vjp=(lambda ct, out, a: _expand2(ct * out) * swap_last_axes(np.linalg.inv(a)),),
       domain=((-INF, INF),), doc="determinant; the rule uses inv(a), so a must be invertible", saves=((OUT, 0),))
define("logabsdet", lambda a: np.linalg.slogdet(a)[1],
       sympy=_sym_matrix_map(lambda m: sympy.log(sympy.Abs(m.det()))),
       jvp=(lambda t, out, a: _re(np.sum(swap_last_axes(np.linalg.inv(a)) * t, axis=(-2, -1))),),
       vjp=(lambda ct, out, a: _expand2(ct) * swap_last_axes(np.linalg.inv(a)),),
       domain=((-INF, INF),), complex_safe=False,
       doc="log|det a| = Re(log det a), the second output of slogdet; not analytic: the JVP is "
           "Re(tr(a^-1 da)), the VJP ct a^-T", saves=((0,),))


def _real_matrix(a: Any, what: str) -> None:
    """Refuse a complex matrix where the rules are written for real ones (transposes where the
    complex rules need conjugate transposes)."""
    if is_complex(a):
        from .errors import UnsupportedOperation

        raise UnsupportedOperation(f"{what} of a complex matrix: the rules here are for real matrices")


def _phi(x: Any) -> Any:
    """The lower triangle of x with its diagonal halved."""
    n = np.shape(x)[-1]
    return x * _const(np.tril(np.ones((n, n))) - 0.5 * np.eye(n), x)


def _cholesky_jvp(t: Any, out: Any, a: Any) -> Any:
    _real_matrix(a, "np.linalg.cholesky")
    # dL = L Phi(L^-1 dA L^-T)  (Murray 2016, "Differentiation of the Cholesky decomposition")
    linv = np.linalg.inv(out)
    return np.matmul(out, _phi(np.matmul(linv, np.matmul(t, swap_last_axes(linv)))))


def _cholesky_vjp(ct: Any, out: Any, a: Any) -> Any:
    _real_matrix(out, "np.linalg.cholesky")   # reads the factor only (saves)
    # Abar = sym(L^-T Phi(L^T Lbar) L^-1), symmetrized because A is
    linv = np.linalg.inv(out)
    s = np.matmul(swap_last_axes(linv), np.matmul(_phi(np.matmul(swap_last_axes(out), ct)), linv))
    return 0.5 * (s + swap_last_axes(s))


define("cholesky", np.linalg.cholesky, sympy=_sym_matrix_map(lambda m: m.cholesky(hermitian=False)),
       jvp=(_cholesky_jvp,), vjp=(_cholesky_vjp,), complex_safe=False,
       doc="lower Cholesky factor of a symmetric positive-definite matrix; the cotangent is symmetrized", saves=((OUT,),),
       structure="cholesky takes A as symmetric: the rules give the symmetric gradient (G + G^T)/2, "
                 "NumPy reads only A's lower triangle")


def _eigh_np(a: Any) -> Any:
    w, v = np.linalg.eigh(a)
    return np.concatenate([w[..., None, :], v], axis=-2)  # row 0: eigenvalues; rows 1..n: vectors


def _eigh_f(w: Any) -> Any:
    # F_ij = 1 / (w_j - w_i) off the diagonal, 0 on it (distinct eigenvalues assumed)
    d = w[..., None, :] - w[..., :, None]
    n = np.shape(w)[-1]
    eye = _const(np.eye(n), w)
    return (1.0 - eye) / (d + eye)


def _eigh_jvp(t: Any, out: Any, a: Any) -> Any:
    _real_matrix(a, "np.linalg.eigh")
    w, v = out[..., 0, :], out[..., 1:, :]
    vtav = np.matmul(swap_last_axes(v), np.matmul(0.5 * (t + swap_last_axes(t)), v))
    n = np.shape(w)[-1]
    dw = np.sum(vtav * _const(np.eye(n), a), axis=-1)
    dv = np.matmul(v, _eigh_f(w) * vtav)
    return np.concatenate([dw[..., None, :], dv], axis=-2)


def _eigh_vjp(ct: Any, out: Any, a: Any) -> Any:
    _real_matrix(a, "np.linalg.eigh")
    w, v = out[..., 0, :], out[..., 1:, :]
    wbar, vbar = ct[..., 0, :], ct[..., 1:, :]
    n = np.shape(w)[-1]
    inner = wbar[..., None, :] * _const(np.eye(n), a) + _eigh_f(w) * np.matmul(swap_last_axes(v), vbar)
    g = np.matmul(v, np.matmul(inner, swap_last_axes(v)))
    return 0.5 * (g + swap_last_axes(g))


define("eigh_packed", _eigh_np, jvp=(_eigh_jvp,), vjp=(_eigh_vjp,), complex_safe=False,
       kink="repeated eigenvalues: eigenvectors are not differentiable (inf/NaN there)",
       doc="eigenvalues (row 0) and eigenvectors (rows 1..n) of a symmetric matrix; "
           "numpy.linalg.eigh splits the result", saves=((OUT, 0),),
       structure="eigh takes A as symmetric: the rules give the symmetric gradient (G + G^T)/2, "
                 "NumPy reads only A's lower triangle")

# --------------------------------------------------------------------------
# SVD, pseudo-inverse, QR (docs/numpy-coverage.md)
# --------------------------------------------------------------------------


def _refuse_degenerate(s: Any, what: str) -> None:
    """Refuse, on concrete singular values, where the factors have no derivative."""
    s = concrete(s)
    if type(s) is not np.ndarray or s.dtype.kind != "f" or s.shape[-1] == 0:
        return
    from .errors import UnsupportedOperation

    top = np.max(s, axis=-1, keepdims=True)
    tol = 8 * np.finfo(s.dtype).eps * np.where(top > 0, top, 1.0)
    gaps = np.where(np.eye(s.shape[-1], dtype=bool), np.inf, np.abs(s[..., :, None] - s[..., None, :]))
    if np.any(gaps <= tol[..., None]):
        raise UnsupportedOperation(
            f"{what}: the singular vectors are not differentiable at repeated singular values "
            "(any rotation within their subspace is a valid factor); the singular values alone are "
            "(np.linalg.svd(a, compute_uv=False), np.linalg.norm(a, 2 or 'nuc'))")
    if np.any(s <= tol):
        raise UnsupportedOperation(
            f"{what}: the singular vectors are not differentiable at a zero singular value (a "
            "rank-deficient matrix); the singular values alone are")


def _svd_np(a: Any) -> Any:
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    # one array: row i holds U[:, i], s_i, Vt[i, :]
    return np.concatenate([swap_last_axes(u), s[..., :, None], vt], axis=-1)


def _svd_parts(out: Any, a: Any) -> tuple[Any, Any, Any]:
    m = np.shape(a)[-2]
    u = swap_last_axes(out[..., :, :m])
    return u, out[..., :, m], out[..., :, m + 1:]


def _svd_f(s: Any) -> Any:
    # F_ij = 1 / (s_j**2 - s_i**2) off the diagonal, 0 on it: eigh's F of the squares
    return _eigh_f(s * s)


def _svd_jvp(t: Any, out: Any, a: Any) -> Any:
    _real_matrix(a, "np.linalg.svd")
    u, s, vt = _svd_parts(out, a)
    _refuse_degenerate(s, "np.linalg.svd")
    v = swap_last_axes(vt)
    m, n = np.shape(a)[-2:]
    k = np.shape(s)[-1]
    eye = _const(np.eye(k), a)
    dav = np.matmul(t, v)                                   # dA V
    dp = np.matmul(swap_last_axes(u), dav)                  # U^T dA V
    ds = np.sum(dp * eye, axis=-1)
    sr = s[..., None, :]                                    # scales columns: X S
    sl = s[..., :, None]                                    # scales rows: S X
    f = _svd_f(s)
    dpt = swap_last_axes(dp)
    inv_s = 1.0 / sr
    du = np.matmul(u, f * (dp * sr + sl * dpt))
    dv = np.matmul(v, f * (sl * dp + dpt * sr))
    if m > k:
        du = du + (dav - np.matmul(u, dp)) * inv_s          # (I - U U^T) dA V S^-1
    if n > k:
        datu = np.matmul(swap_last_axes(t), u)              # dA^T U
        dv = dv + (datu - np.matmul(v, dpt)) * inv_s        # (I - V V^T) dA^T U S^-1
    return np.concatenate([swap_last_axes(du), ds[..., :, None], swap_last_axes(dv)], axis=-1)


def _svd_vjp(ct: Any, out: Any, a: Any) -> Any:
    _real_matrix(a, "np.linalg.svd")
    u, s, vt = _svd_parts(out, a)
    _refuse_degenerate(s, "np.linalg.svd")
    m, n = np.shape(a)[-2:]
    k = np.shape(s)[-1]
    ubar = swap_last_axes(ct[..., :, :m])
    sbar = ct[..., :, m]
    vbar = swap_last_axes(ct[..., :, m + 1:])
    v = swap_last_axes(vt)
    ut, eye = swap_last_axes(u), _const(np.eye(k), a)
    f = _svd_f(s)
    utub = np.matmul(ut, ubar)
    vtvb = np.matmul(vt, vbar)
    sr, sl = s[..., None, :], s[..., :, None]
    inner = ((f * (utub - swap_last_axes(utub))) * sr + sbar[..., None, :] * eye
             + sl * (f * (vtvb - swap_last_axes(vtvb))))
    g = np.matmul(u, np.matmul(inner, vt))
    if m > k:  # (I - U U^T) Ubar S^-1 V^T
        g = g + np.matmul((ubar - np.matmul(u, utub)) / sr, vt)
    if n > k:  # U S^-1 Vbar^T (I - V V^T)
        g = g + np.matmul(u, swap_last_axes((vbar - np.matmul(v, vtvb)) / sr))
    return g


define("svd_packed", _svd_np, jvp=(_svd_jvp,), vjp=(_svd_vjp,), complex_safe=False,
       kink="repeated or zero singular values: U and V are not differentiable; the rules refuse "
            "(UnsupportedOperation)",
       doc="the reduced SVD of a (stack of) matrices, row i holding U[:, i], s_i and Vt[i, :]; "
           "numpy.linalg.svd splits the result", saves=((OUT, 0),))


def _svdvals_jvp(t: Any, out: Any, a: Any) -> Any:
    _real_matrix(a, "the singular values (np.linalg.svd, svdvals, norm)")
    u, _, vt = np.linalg.svd(a, full_matrices=False)
    return np.sum(u * np.matmul(t, swap_last_axes(vt)), axis=-2)    # ds_i = u_i^T dA v_i


def _svdvals_vjp(ct: Any, out: Any, a: Any) -> Any:
    _real_matrix(a, "the singular values (np.linalg.svd, svdvals, norm)")
    u, _, vt = np.linalg.svd(a, full_matrices=False)
    return np.matmul(u * ct[..., None, :], vt)                       # U diag(sbar) V^T


define("svd_values", lambda a: np.linalg.svd(a, compute_uv=False), jvp=(_svdvals_jvp,), vjp=(_svdvals_vjp,),
       complex_safe=False,
       kink="at repeated singular values the rules take NumPy's singular vectors: a one-sided "
            "derivative of the sorted values (their sum stays exact)",
       doc="the singular values, descending (numpy.linalg.svd(a, compute_uv=False))", saves=((0,),))


def _refuse_dropped(a: Any) -> None:
    """Refuse where NumPy's default cutoff (1e-15 of the largest singular value) drops a
    singular value: a step of that size changes the rank, so np.linalg.pinv has no usable
    derivative there."""
    base = concrete(a)
    if type(base) is not np.ndarray or base.dtype.kind != "f" or 0 in base.shape[-2:]:
        return
    s = np.linalg.svd(base, compute_uv=False)
    if np.any(s <= 1e-15 * np.max(s, axis=-1, keepdims=True)):
        from .errors import UnsupportedOperation

        raise UnsupportedOperation(
            "np.linalg.pinv of a rank-deficient matrix: NumPy's default cutoff (1e-15 of the largest "
            "singular value) drops a singular value, and a step of that size changes the rank, so the "
            "pseudo-inverse jumps; pass rcond= (or rtol=) well above the dropped singular values to "
            "differentiate the truncated pseudo-inverse")


def _pinv_jvp(t: Any, out: Any, a: Any) -> Any:
    # dA+ = -A+ dA A+ + A+ A+^T dA^T (I - A A+) + (I - A+ A) dA^T A+^T A+  (Golub and Pereyra)
    _refuse_dropped(a)
    p, pt, tt = out, swap_last_axes(out), swap_last_axes(t)
    m, n = np.shape(a)[-2:]
    q = _const(np.eye(m), a) - np.matmul(a, p)
    r = _const(np.eye(n), a) - np.matmul(p, a)
    return (-np.matmul(p, np.matmul(t, p)) + np.matmul(np.matmul(p, pt), np.matmul(tt, q))
            + np.matmul(r, np.matmul(tt, np.matmul(pt, p))))


def _pinv_vjp(ct: Any, out: Any, a: Any) -> Any:
    _refuse_dropped(a)
    p, pt, ctt = out, swap_last_axes(out), swap_last_axes(ct)
    m, n = np.shape(a)[-2:]
    q = _const(np.eye(m), a) - np.matmul(a, p)
    r = _const(np.eye(n), a) - np.matmul(p, a)
    return (-np.matmul(pt, np.matmul(ct, pt)) + np.matmul(q, np.matmul(ctt, np.matmul(p, pt)))
            + np.matmul(np.matmul(pt, p), np.matmul(ctt, r)))


define("pinv", lambda a: np.linalg.pinv(a), sympy=_sym_matrix_map(lambda m: m.pinv()),
       jvp=(_pinv_jvp,), vjp=(_pinv_vjp,), complex_safe=False,
       kink="where the rank changes (a singular value crosses NumPy's cutoff) the pseudo-inverse "
            "jumps; the rules hold the rank fixed",
       doc="the Moore-Penrose pseudo-inverse, NumPy's default cutoff; the rules refuse where "
           "that cutoff drops a singular value", saves=((OUT, 0),))


def _pinv_cut_coefficients(a: Any, rcond: float) -> tuple[Any, Any, Any, Any]:
    """The full SVD of a plain matrix (U, V) and the coefficients C1, C2 of the truncated
    pseudo-inverse's derivative (see _pinv_cut_jvp); refuses where it has none."""
    from .errors import UnsupportedOperation

    if type(a) is not np.ndarray or a.dtype.kind != "f":
        raise UnsupportedOperation("np.linalg.pinv with rcond=/rtol=: first derivatives of a real numeric "
                                   "matrix only (the rules take NumPy's full SVD)")
    m, n = a.shape[-2:]
    u, s, vt = np.linalg.svd(a, full_matrices=True)
    top = np.max(s, axis=-1, keepdims=True)
    cut = rcond * top
    tol = 64 * np.finfo(a.dtype).eps * top
    if np.any(top == 0) or np.any(np.abs(s - cut) <= tol):
        raise UnsupportedOperation(
            f"np.linalg.pinv or lstsq with rcond={rcond!r}: a singular value equals the cutoff (rcond "
            "times the largest, within rounding), where the rank changes and the pseudo-inverse jumps; "
            "no derivative there. For a rank-deficient matrix pass an rcond= whose cutoff is well "
            "above the dropped singular values: the derivative holds for steps smaller than that gap")
    big = max(m, n)
    sp = np.zeros(s.shape[:-1] + (big,))
    sp[..., :s.shape[-1]] = s
    kp = sp > cut                                                    # kept (padding: dropped)
    ka, kb = kp[..., :, None], kp[..., None, :]
    sa, sb = sp[..., :, None], sp[..., None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        c1 = np.where(ka & kb, -1.0 / (sa * sb),
                      np.where(kb & ~ka, sa / (sb * (sb * sb - sa * sa)),
                               np.where(ka & ~kb, sb / (sa * (sa * sa - sb * sb)), 0.0)))
        c2 = np.where(kb & ~ka, 1.0 / (sb * sb - sa * sa),
                      np.where(ka & ~kb, 1.0 / (sa * sa - sb * sb), 0.0))
    return u, swap_last_axes(vt), c1, c2


def _pad_square(x: Any, big: int) -> Any:
    """x (..., p, q) zero-padded to (..., big, big); by concatenation, so a traced x works."""
    lead, (p, q) = np.shape(x)[:-2], np.shape(x)[-2:]
    if q < big:
        x = np.concatenate([x, np.zeros(lead + (p, big - q))], axis=-1)
    if p < big:
        x = np.concatenate([x, np.zeros(lead + (big - p, big))], axis=-2)
    return x


def _plain(*xs: Any) -> None:
    from .core.values import Value
    from .errors import UnsupportedOperation

    if any(isinstance(x, Value) for x in xs):
        raise UnsupportedOperation("np.linalg.pinv with rcond=/rtol=: first derivatives only (the rules "
                                   "take NumPy's full SVD); the default cutoff has second derivatives")


def _pinv_cut_jvp(t: Any, out: Any, a: Any, rcond: float) -> Any:
    # P = V_K S_K^-1 U_K^T over the kept singular values (s > rcond * s_max). With the full
    # SVD, G = U^T dA V and every s zero-padded to max(m, n): V^T dP U = M with
    # M_ab = -G_ab / (s_a s_b) for a, b kept; s_a G_ab + s_b G_ba over s_b (s_b^2 - s_a^2) for
    # a dropped, b kept; s_b G_ab + s_a G_ba over s_a (s_a^2 - s_b^2) for a kept, b dropped;
    # 0 for both dropped. (Derived from dU = U Omega_U, dV = V Omega_V of the SVD; the
    # Golub-Pereyra formula where nothing is dropped.)
    _plain(a)
    m, n = np.shape(a)[-2:]
    u, v, c1, c2 = _pinv_cut_coefficients(a, rcond)
    gp = _pad_square(np.matmul(swap_last_axes(u), np.matmul(t, v)), max(m, n))
    mm = c1 * gp + c2 * swap_last_axes(gp)
    return np.matmul(v, np.matmul(mm[..., :n, :m], swap_last_axes(u)))


def _pinv_cut_vjp(ct: Any, out: Any, a: Any, rcond: float) -> Any:
    # the transpose of _pinv_cut_jvp: Gbar = C1 o Mbar + (C2 o Mbar)^T, Abar = U Gbar V^T
    _plain(a)
    m, n = np.shape(a)[-2:]
    u, v, c1, c2 = _pinv_cut_coefficients(a, rcond)
    mbar = _pad_square(np.matmul(swap_last_axes(v), np.matmul(ct, u)), max(m, n))
    gbar = c1 * mbar + swap_last_axes(c2 * mbar)
    return np.matmul(u, np.matmul(gbar[..., :m, :n], swap_last_axes(v)))


define("pinv_cut", lambda a, rcond: np.linalg.pinv(a, rcond=rcond), jvp=(_pinv_cut_jvp,),
       vjp=(_pinv_cut_vjp,), complex_safe=False,
       kink="where a singular value equals the cutoff rcond * s_max the rank changes and the "
            "pseudo-inverse jumps; the rules refuse there (UnsupportedOperation)",
       doc="the pseudo-inverse truncated at rcond times the largest singular value "
           "(numpy.linalg.pinv(a, rcond=...) or rtol=, numpy.linalg.lstsq's cutoff); first "
           "derivatives of real matrices", saves=((0,),))


def _copyltu(x: Any) -> Any:
    """The symmetric matrix with x's lower triangle."""
    n = np.shape(x)[-1]
    low = x * _const(np.tril(np.ones((n, n)), -1), x)
    return low + swap_last_axes(low) + x * _const(np.eye(n), x)


def _qr_np(a: Any) -> Any:
    q, r = np.linalg.qr(a)
    if np.shape(a)[-2] < np.shape(a)[-1]:
        return np.concatenate([q, r], axis=-1)  # wide: columns 0..m-1: Q (m x m); m..m+n-1: R (m x n)
    return np.concatenate([q, r], axis=-2)  # rows 0..m-1: Q (m x n); rows m..m+n-1: R (n x n)


def _qr_split(x: Any, a: Any) -> tuple[Any, Any]:
    """Q and R (or their tangents, cotangents) from the packed array, as _qr_np packs them."""
    m, n = np.shape(a)[-2:]
    if m < n:
        return x[..., :, :m], x[..., :, m:]
    return x[..., :m, :], x[..., m:, :]


def _qr_pack(q: Any, r: Any, a: Any) -> Any:
    m, n = np.shape(a)[-2:]
    return np.concatenate([q, r], axis=-1 if m < n else -2)


def _refuse_singular_r(r: Any) -> None:
    """Refuse, on a concrete R, where Q has no derivative (dependent leading columns)."""
    r = concrete(r)
    if type(r) is not np.ndarray or r.dtype.kind != "f":
        return
    d = np.abs(np.diagonal(r, axis1=-2, axis2=-1))
    top = np.max(np.abs(r), axis=(-2, -1))[..., None]
    if np.any(d <= 8 * np.finfo(r.dtype).eps * np.where(top > 0, top, 1.0)):
        from .errors import UnsupportedOperation

        raise UnsupportedOperation("np.linalg.qr: Q is not differentiable where the leading columns "
                                   "(the first min(m, n)) are linearly dependent (R has a zero on its diagonal)")


def _qr_tall_jvp(t: Any, q: Any, r: Any) -> tuple[Any, Any]:
    """dQ, dR of A = QR, A m x n with m >= n and R invertible."""
    _refuse_singular_r(r)
    m, n = np.shape(t)[-2:]
    rinv = np.linalg.inv(r)
    c = np.matmul(swap_last_axes(q), np.matmul(t, rinv))     # Q^T dA R^-1
    low = c * _const(np.tril(np.ones((n, n)), -1), t)
    omega = low - swap_last_axes(low)
    dr = np.matmul(c - omega, r)
    dq = np.matmul(q, omega)
    if m > n:
        dar = np.matmul(t, rinv)
        dq = dq + dar - np.matmul(q, np.matmul(swap_last_axes(q), dar))
    return dq, dr


def _qr_tall_vjp(qbar: Any, rbar: Any, q: Any, r: Any) -> Any:
    # Abar = (Qbar + Q copyltu(M)) R^-T with M = R Rbar^T - Qbar^T Q (m >= n)
    _refuse_singular_r(r)
    mm = np.matmul(r, swap_last_axes(rbar)) - np.matmul(swap_last_axes(qbar), q)
    b = qbar + np.matmul(q, _copyltu(mm))
    return swap_last_axes(np.linalg.solve(r, swap_last_axes(b)))


def _refuse_qr_jump(a: Any) -> None:
    """Refuse where NumPy's QR jumps: LAPACK (dlarfg) skips the reflection of a column already
    zero below the diagonal (R_jj = alpha), while any perturbation there reflects it
    (R_jj = -sign(alpha) * norm): a triangular matrix, the identity."""
    base = concrete(a)
    if type(base) is not np.ndarray or base.dtype.kind != "f":
        return
    m, n = base.shape[-2:]
    r = base.reshape((-1, m, n)).copy()
    tiny = np.finfo(base.dtype).tiny
    for j in range(min(m - 1, n)):
        below = np.linalg.norm(r[:, j + 1:, j], axis=-1)
        if np.any(below <= tiny):
            from .errors import UnsupportedOperation

            raise UnsupportedOperation(
                "np.linalg.qr: NumPy's factors jump here (a column already zero below the diagonal, "
                "as in a triangular matrix: LAPACK skips its reflection, any perturbation makes one and "
                "flips the signs of R's row and Q's column); no derivative")
        x = r[:, j:, j]
        alpha = x[:, 0]
        v = x.copy()
        v[:, 0] = alpha + np.where(alpha >= 0, 1.0, -1.0) * np.linalg.norm(x, axis=-1)
        v /= np.linalg.norm(v, axis=-1, keepdims=True)
        r[:, j:, :] -= 2 * v[:, :, None] * np.einsum("bi,bik->bk", v, r[:, j:, :])[:, None, :]


def _qr_jvp(t: Any, out: Any, a: Any) -> Any:
    _refuse_qr_jump(a)
    m, n = np.shape(a)[-2:]
    q, r = _qr_split(out, a)
    if m >= n:
        return _qr_pack(*_qr_tall_jvp(t, q, r), a)
    # wide: A = Q [X | Y] = Q [R1 | R2], X square: X = Q R1 and R2 = Q^T Y, so
    # dR2 = dQ^T Y + Q^T dY = Q^T (dY - dQ R2) (Q^T dQ is antisymmetric)
    dq, dr1 = _qr_tall_jvp(t[..., :, :m], q, r[..., :, :m])
    dr2 = np.matmul(swap_last_axes(q), t[..., :, m:] - np.matmul(dq, r[..., :, m:]))
    return _qr_pack(dq, np.concatenate([dr1, dr2], axis=-1), a)


def _qr_vjp(ct: Any, out: Any, a: Any) -> Any:
    _refuse_qr_jump(a)
    m, n = np.shape(a)[-2:]
    q, r = _qr_split(out, a)
    qbar, rbar = _qr_split(ct, a)
    if m >= n:
        return _qr_tall_vjp(qbar, rbar, q, r)
    # the transpose of the wide JVP: Ybar = Q R2bar; dQ also meets -Q R2bar R2^T
    r2, r2bar = r[..., :, m:], rbar[..., :, m:]
    xbar = _qr_tall_vjp(qbar - np.matmul(q, np.matmul(r2bar, swap_last_axes(r2))), rbar[..., :, :m],
                        q, r[..., :, :m])
    return np.concatenate([xbar, np.matmul(q, r2bar)], axis=-1)


define("qr_packed", _qr_np, jvp=(_qr_jvp,), vjp=(_qr_vjp,), complex_safe=False,
       kink="where a column is already zero below the diagonal (a triangular matrix) LAPACK skips "
            "its reflection and the signs jump; the rules refuse (UnsupportedOperation)",
       doc="the reduced QR of a (stack of) real m x n matrices: for m >= n (full column rank) Q on "
           "rows 0..m-1 and R below; for m < n (first m columns independent) Q on columns 0..m-1 "
           "and R after; numpy.linalg.qr splits the result", saves=((OUT, 0),))


def _eig_vectors(a: Any) -> tuple[Any, Any]:
    """NumPy's eigenvectors of a and their inverse, for the eigvals rules; of a traced a
    (a second derivative) through numpy.linalg.eig's own traced rules."""
    from .errors import UnsupportedOperation

    base = concrete(a)
    if type(base) is not np.ndarray or base.dtype.kind not in "fc":
        raise UnsupportedOperation("np.linalg.eigvals: no SymPy form (the rules take NumPy's "
                                   "eigenvectors of a numeric matrix)")
    w, v = np.linalg.eig(a)
    wc = concrete(w)
    d = np.abs(wc[..., :, None] - wc[..., None, :])
    scale = np.max(np.abs(wc), axis=-1, keepdims=True)[..., None]
    gaps = np.where(np.eye(wc.shape[-1], dtype=bool), np.inf, d)
    if np.any(gaps <= 1e3 * np.finfo(float).eps * np.maximum(scale, 1.0)):
        raise UnsupportedOperation("np.linalg.eigvals: repeated eigenvalues are not differentiable one by one")
    return v, np.linalg.inv(v)


def _eigvals_jvp(t: Any, out: Any, a: Any) -> Any:
    v, vinv = _eig_vectors(a)
    return np.sum(vinv * swap_last_axes(np.matmul(t, v)), axis=-1)      # diag(V^-1 dA V)


def _eigvals_vjp(ct: Any, out: Any, a: Any) -> Any:
    v, vinv = _eig_vectors(a)
    return np.matmul(swap_last_axes(vinv) * ct[..., None, :], swap_last_axes(v))   # V^-T diag(ct) V^T


define("eigvals", np.linalg.eigvals, jvp=(_eigvals_jvp,), vjp=(_eigvals_vjp,), complex_safe=False,
       kink="repeated eigenvalues: not differentiable one by one; the rules refuse (UnsupportedOperation)",
       doc="the eigenvalues of a general square matrix (real or complex, NumPy's order); second "
           "derivatives through numpy.linalg.eig's traced rules", saves=((0,),))


def _eig_np(a: Any) -> Any:
    w, v = np.linalg.eig(a)
    return np.concatenate([w[..., None, :], v], axis=-2)  # row 0: eigenvalues; rows 1..n: vectors


def _eig_parts(out: Any) -> tuple[Any, Any, Any, Any, Any]:
    """w, V, V^-1, F (F_ij = 1/(w_j - w_i) off the diagonal) and the one-hot mask of each
    eigenvector's largest-modulus component (LAPACK makes it real), for the eig rules;
    refuses at repeated eigenvalues."""
    from .errors import UnsupportedOperation

    w, v = out[..., 0, :], out[..., 1:, :]
    wc, vc = np.asarray(concrete(w)), np.asarray(concrete(v))
    if wc.dtype.kind not in "fc":
        raise UnsupportedOperation("np.linalg.eig: the eigenvector rules need a numeric matrix (no SymPy form)")
    n = wc.shape[-1]
    d = np.abs(wc[..., :, None] - wc[..., None, :])
    scale = np.max(np.abs(wc), axis=-1, keepdims=True)[..., None]
    if np.any(np.where(np.eye(n, dtype=bool), np.inf, d) <= 1e3 * np.finfo(float).eps * np.maximum(scale, 1.0)):
        raise UnsupportedOperation("np.linalg.eig: the eigenvectors are not differentiable at repeated "
                                   "eigenvalues (any basis of their eigenspace is valid)")
    mask = np.abs(vc) == np.max(np.abs(vc), axis=-2, keepdims=True)
    mask = mask & (np.cumsum(mask, axis=-2) == 1)                    # the first largest, as LAPACK
    return w, v, np.linalg.inv(v), _eigh_f(w), _const(mask.astype(float), wc.real)


def _eig_gauge(x: Any, v: Any, mask: Any) -> Any:
    """The multiples c_j of v_j that restore LAPACK's gauge after the step x_j:
    Re(v_j^H (x_j + c_j v_j)) = 0 (unit norm) and Im((x_kj + c_j v_kj) / v_kj) = 0 at the
    largest component k (real there); |v_j| = 1."""
    s = np.sum(np.conjugate(v) * x, axis=-2)
    if not is_complex(v):
        return -s                                                    # real vectors: the norm only
    p = np.sum(mask * x, axis=-2) / np.sum(mask * v, axis=-2)
    return -_re(s) - 1j * _im(p)


def _eig_jvp(t: Any, out: Any, a: Any) -> Any:
    # A V = V diag(w): dw = diag(C), dV = V (F o C) + V diag(c), C = V^-1 dA V, c the gauge's
    w, v, vinv, f, mask = _eig_parts(out)
    c = np.matmul(vinv, np.matmul(t, v))
    n = np.shape(w)[-1]
    dw = np.sum(c * _const(np.eye(n), w), axis=-1)
    x = np.matmul(v, f * c)
    dv = x + v * _eig_gauge(x, v, mask)[..., None, :]
    return np.concatenate([dw[..., None, :], dv], axis=-2)


def _eig_vjp(ct: Any, out: Any, a: Any) -> Any:
    # the transpose of _eig_jvp for the pairing Re(sum(a * b)) (docs/complex.md)
    w, v, vinv, f, mask = _eig_parts(out)
    wbar, vbar = ct[..., 0, :], ct[..., 1:, :]
    n = np.shape(w)[-1]
    cbar = np.sum(vbar * v, axis=-2)                                 # the gauge's c_j
    if is_complex(v):
        xbar = vbar - np.conjugate(v) * _re(cbar)[..., None, :] \
            - 1j * mask * (_im(cbar) / np.sum(mask * v, axis=-2))[..., None, :]
    else:
        xbar = vbar - v * cbar[..., None, :]
    inner = wbar[..., None, :] * _const(np.eye(n), w) + f * np.matmul(swap_last_axes(v), xbar)
    return np.matmul(swap_last_axes(vinv), np.matmul(inner, swap_last_axes(v)))


define("eig_packed", _eig_np, jvp=(_eig_jvp,), vjp=(_eig_vjp,), complex_safe=False,
       kink="repeated eigenvalues: the eigenvectors are not differentiable; the rules refuse "
            "(UnsupportedOperation). Where two components of an eigenvector tie for the largest "
            "modulus LAPACK's phase jumps",
       doc="eigenvalues (row 0) and eigenvectors (rows 1..n) of a general square matrix, in "
           "LAPACK's gauge (unit norm, largest-modulus component real); numpy.linalg.eig splits "
           "the result", saves=((OUT,),))


# --------------------------------------------------------------------------
# Discrete Fourier transforms (linear: the JVP is the transform of the tangent)
#
# DFT matrices are symmetric, so under the table's pairing Re(sum(a * b)) (no
# conjugation) the transpose of a complex-to-complex transform is the same
# transform with the same normalisation. rfft and irfft map between real and
# complex values: their transposes are written out below.
# --------------------------------------------------------------------------


def _fft_scale(n: int, norm: str | None, inverse: bool) -> Any:
    """The factor NumPy applies to the plain sum of a transform of length n."""
    norm = norm or "backward"
    if norm == "ortho":
        return 1 / sympy.sqrt(n)
    return sympy.Rational(1, n) if (norm == "backward") == inverse else sympy.Integer(1)


def _sym_dft(x: Any, axis: int, n: int, inverse: bool, norm: str | None, rows: int | None = None) -> Any:
    """A DFT along ``axis`` of an object array, by its matrix of exact roots of unity."""
    sign = 1 if inverse else -1
    m = n if rows is None else rows
    w = np.array([[sympy.exp(sign * 2 * sympy.pi * sympy.I * j * k / n) * _fft_scale(n, norm, inverse)
                   for k in range(m)] for j in range(n)], dtype=object)   # x_j -> y_k
    moved = np.moveaxis(np.asarray(x, dtype=object), axis, -1)
    return np.moveaxis(moved @ w, -1, axis)


def _fftn_sympy(x: Any, axes: tuple[int, ...], norm: str | None, inverse: bool) -> Any:
    for ax in axes:
        x = _sym_dft(x, ax, np.shape(x)[ax], inverse, norm)
    return x


def _fftn_np(x: Any, axes: tuple[int, ...], norm: str | None, inverse: bool) -> Any:
    return (np.fft.ifftn if inverse else np.fft.fftn)(x, axes=axes, norm=norm)


def _is_object(v: Any) -> bool:
    """A SymPy value or object array (the symbolic backend runs rules on them): NumPy's FFT
    takes neither, the DFT matrices do."""
    return isinstance(v, sympy.Basic) or (type(v) is np.ndarray and v.dtype == object)


def _fftn_any(t: Any, axes: tuple[int, ...], norm: str | None, inverse: bool) -> Any:
    if _is_object(t):
        return _fftn_sympy(t, axes, norm, inverse)
    return (np.fft.ifftn if inverse else np.fft.fftn)(t, axes=axes, norm=norm)


def _fftn_rule(t: Any, out: Any, x: Any, axes: tuple[int, ...], norm: str | None, inverse: bool) -> Any:
    return _fftn_any(t, axes, norm, inverse)


define("fftn", _fftn_np, sympy=_fftn_sympy, jvp=(_fftn_rule,), vjp=(_fftn_rule,),
       complex_safe=False, saves=((),), linearity="linear",
       doc="fft/ifft/fft2/ifft2/fftn/ifftn over negative axes, the transform's length the axis's "
           "(the handler pads or crops for n=/s=); the VJP is the same transform")


def _rfft_np(x: Any, norm: str | None) -> Any:
    return np.fft.rfft(x, axis=-1, norm=norm)


def _rfft_vjp(ct: Any, out: Any, x: Any, norm: str | None) -> Any:
    # y_k = sum_j x_j w^(jk), k < m: xbar_j = Re(sum_k ct_k w^(jk)), the fft of ct padded to n
    n, m = np.shape(x)[-1], np.shape(out)[-1]
    full = np.concatenate([ct, np.zeros(np.shape(ct)[:-1] + (n - m,))], axis=-1)
    return _re(_fftn_any(full, (-1,), norm, False))


def _rfft_sympy(x: Any, norm: str | None) -> Any:
    return _sym_dft(x, -1, np.shape(x)[-1], False, norm, np.shape(x)[-1] // 2 + 1)


define("rfft", _rfft_np, sympy=_rfft_sympy,
       jvp=(lambda t, out, x, norm: _rfft_sympy(t, norm) if _is_object(t) else np.fft.rfft(t, axis=-1, norm=norm),),
       vjp=(_rfft_vjp,),
       complex_safe=False, saves=((OUT, 0),), linearity="linear",
       doc="the real-input transform along the last axis (the handler moves the axis, pads or crops)")


def _irfft_weights(m: int, n: int) -> np.ndarray:
    """How often each input entry counts in the Hermitian extension: 1 for X_0 (and X_n/2 for
    an even n), 2 for the others."""
    w = np.full(m, 2.0)
    w[0] = 1.0
    if n % 2 == 0 and m > n // 2:
        w[n // 2] = 1.0
    return w


def _irfft_vjp(ct: Any, out: Any, x: Any, n: int, norm: str | None) -> Any:
    # x_j = Re(sum_k w_k X_k e^(2 pi i jk/n)) * scale: Xbar_k = w_k * ifft(ct)_k
    m = np.shape(x)[-1]
    g = _fftn_any(ct, (-1,), norm, True)
    g = g[..., :m] * _irfft_weights(m, n)
    return g if is_complex(x) else _re(g)


def _irfft_sympy(x: Any, n: int, norm: str | None) -> Any:
    x = np.asarray(x, dtype=object)
    m = x.shape[-1]
    w = _irfft_weights(m, n)
    terms = np.array([[sympy.exp(2 * sympy.pi * sympy.I * j * k / n) * int(w[k]) for j in range(n)]
                      for k in range(m)], dtype=object) * _fft_scale(n, norm, True)
    y = x @ terms
    return np.frompyfunc(lambda v: sympy.re(sympy.expand(v)), 1, 1)(y)


define("irfft", lambda x, n, norm: np.fft.irfft(x, n=n, axis=-1, norm=norm), sympy=_irfft_sympy,
       jvp=(lambda t, out, x, n, norm: _irfft_sympy(t, n, norm) if _is_object(t)
            else np.fft.irfft(t, n=n, axis=-1, norm=norm),), vjp=(_irfft_vjp,),
       complex_safe=False, saves=((0,),), linearity="linear",
       doc="the inverse of rfft along the last axis, n real outputs from n // 2 + 1 inputs "
           "(the handler pads or crops); the imaginary parts of X_0 (and X_n/2) do not count")


register_array_methods(
    [p.name for p in PRIMITIVES.values() if p.elementwise and p.nargs in (1, 2)
     and isinstance(getattr(np, p.name, None), np.ufunc)])
