"""SciPy's special functions as entries of the primitive table (the ``scipy`` extra).

SciPy's special functions are NumPy ufuncs, so ``scipy.special.erf(x)`` on a
traced value reaches :meth:`diffkit.core.values.Value.__array_ufunc__` like
``np.sin(x)`` does. ``import diffkit`` never imports SciPy: this module is
imported the first time a ufunc that is not NumPy's reaches that dispatch (or
when a program imports it), and then :func:`~diffkit.core.primitive.define`\\ s
its entries into the same table every backend reads and routes the SciPy
ufuncs to them.

Each entry's NumPy implementation is the SciPy function; its SymPy form is
SymPy's function of the same mathematics (``erf``, ``loggamma``,
``polygamma``, ``besseli`` ...); its partials are written with the table's own
entries, so derivatives of every order follow. ``polygamma`` and ``zeta`` are
Python functions in SciPy (not ufuncs): call them as
:func:`polygamma` and :func:`zeta` of this module on traced values.

Example:
    >>> import numpy as np, scipy.special as sc, diffkit as dk
    >>> g = dk.grad(lambda x: sc.erf(x))(0.5)
    >>> bool(np.isclose(g, 2 / np.sqrt(np.pi) * np.exp(-0.25)))
    True
    >>> dk.PRIMITIVES["gammaln"].doc
    'log|Gamma(x)|; d/dx = digamma(x); the real branch (SymPy loggamma) for x > 0'
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.special as sc
import scipy.special._ufuncs as _scipy_ufuncs

from .core.lazy import lazy_sympy, sympy
from .core.primitive import OUT, PRIMITIVES, Primitive, define
from .core.values import Value, bind, concrete, register_ufunc, ufunc_handler
from .errors import InvalidArgument, UnsupportedOperation

__all__ = ["SCIPY_PRIMITIVES", "lookup", "multigammaln", "polygamma", "supported", "zeta"]

INF = math.inf
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_SQRT_PI_OVER_TWO = math.sqrt(math.pi) / 2.0

SCIPY_PRIMITIVES: dict[str, Primitive] = {}
"""The entries this module adds to the table, by primitive name."""

_UFUNCS: dict[str, Primitive] = {}
"""SciPy ufunc name (``erf``, ``psi``, ``_zeta``) -> its primitive."""


def _p(name: str, *args: Any) -> Any:
    """The table's entry ``name`` applied to ``args``: traced in turn, so rules nest."""
    return bind(PRIMITIVES[name], *args)


def _scalar(out: Any) -> Any:
    """A 0-d array as a NumPy scalar (what a ufunc returns for scalar input)."""
    return out[()] if type(out) is np.ndarray and out.ndim == 0 else out


def _int_order(n: Any) -> Any:
    """An order for SymPy: an integer-valued number as a SymPy Integer."""
    try:
        f = float(n)
    except (TypeError, ValueError):
        return n
    return sympy.Integer(int(f)) if f.is_integer() else n


def _entry(name: str, fn: Any, ufuncs: tuple[Any, ...], **fields: Any) -> Primitive:
    # the names are not NumPy's (np.i0 exists: SciPy's i0 is the entry "bessel_i0"), since
    # expression strings call the table's entries by their NumPy names
    fields.setdefault("complex_safe", False)
    prim = define(name, fn, **fields)
    SCIPY_PRIMITIVES[name] = prim
    for u in ufuncs:
        _UFUNCS[u.__name__] = prim
        # an entry with arguments it does not differentiate goes through its handler (which
        # refuses them traced), not the dispatch's direct route to the primitive
        register_ufunc(u, _handler(prim, u.__name__), None if prim.nondiff_args else prim)
    return prim


_PARAMS = {"polygamma": ("n", "x"), "gammainc": ("a", "x"), "gammaincc": ("a", "x"), "betainc": ("a", "b", "x"),
           "stdtr": ("df", "t"), "jv": ("v", "x"), "yv": ("v", "x"), "iv": ("v", "x"), "ive": ("v", "x"),
           "zeta": ("x", "q")}
"""The arguments' names of the entries with arguments that are not differentiated."""


def _differentiated(v: Any) -> bool:
    """``v`` carries a derivative: a value of the forward or reverse trace (the symbolic
    backend's default method runs them over its expressions)."""
    while isinstance(v, Value):
        if v._trace.backend_name in ("forward", "reverse"):
            return True
        v = getattr(v, "primal", None)
    return False


def _refuse_traced_constants(prim: Primitive, name: str, args: tuple[Any, ...]) -> None:
    """Raise where an argument the entry does not differentiate (an order, a shape
    parameter) is being differentiated: its derivative is not in the table, and leaving
    it out would give a wrong number."""
    for j in sorted(prim.nondiff_args):
        if j < len(args) and _differentiated(args[j]):
            param = _PARAMS.get(prim.name, ())[j] if j < len(_PARAMS.get(prim.name, ())) else f"argument {j}"
            raise UnsupportedOperation(
                f"scipy.special.{name} is not differentiable in {param} in diffkit (no closed form in the "
                f"table); pass {param} as a constant, or use backend='numeric' for a finite-difference value")


def _handler(prim: Primitive, name: str) -> Any:
    plain = ufunc_handler(prim, f"scipy.special.{name}")
    if not prim.nondiff_args:
        return plain

    def handler(*args: Any, **kwargs: Any) -> Any:
        _refuse_traced_constants(prim, name, args)
        return plain(*args, **kwargs)

    handler.primitive = prim  # type: ignore[attr-defined]
    return handler


# --------------------------------------------------------------------------
# Error functions
# --------------------------------------------------------------------------
_entry("erf", sc.erf, (sc.erf,), sympy=lazy_sympy("erf"),
       partials=(lambda out, x: _TWO_OVER_SQRT_PI * np.exp(-(x * x)),), domain=((-INF, INF),), saves=((0,),),
       complex_safe=True, doc="d/dx = 2/sqrt(pi) exp(-x^2)")
_entry("erfc", sc.erfc, (sc.erfc,), sympy=lazy_sympy("erfc"),
       partials=(lambda out, x: -_TWO_OVER_SQRT_PI * np.exp(-(x * x)),), domain=((-INF, INF),), saves=((0,),),
       complex_safe=True, doc="d/dx = -2/sqrt(pi) exp(-x^2)")
_entry("erfinv", sc.erfinv, (sc.erfinv,), sympy=lazy_sympy("erfinv"),
       partials=(lambda out, x: _SQRT_PI_OVER_TWO * np.exp(out * out),), domain=((-1.0, 1.0),), saves=((OUT,),),
       doc="d/dx = sqrt(pi)/2 exp(erfinv(x)^2), on (-1, 1)")
_entry("erfcinv", sc.erfcinv, (sc.erfcinv,), sympy=lazy_sympy("erfcinv"),
       partials=(lambda out, x: -_SQRT_PI_OVER_TWO * np.exp(out * out),), domain=((0.0, 2.0),), saves=((OUT,),),
       doc="d/dx = -sqrt(pi)/2 exp(erfcinv(x)^2), on (0, 2)")

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_entry("log_ndtr", sc.log_ndtr, (sc.log_ndtr,), sympy=lambda x: sympy.log(sympy.erfc(-x / sympy.sqrt(2)) / 2),
       partials=(lambda out, x: np.exp(-0.5 * (x * x) - _HALF_LOG_2PI - out),), domain=((-INF, INF),),
       saves=((OUT, 0),),
       doc="log of the standard normal distribution function; d/dx = exp(-x^2/2 - log(2 pi)/2 - log_ndtr(x)), "
           "the density over the distribution function, without underflow in the lower tail")

# --------------------------------------------------------------------------
# Gamma and friends
# --------------------------------------------------------------------------


def _traced(*args: Any) -> bool:
    return any(isinstance(a, Value) for a in args)


def _polygamma_np(n: Any, x: Any) -> Any:
    # SciPy's polygamma is a Python function: a value of an outer trace (nested
    # derivatives, the symbolic backend's values) goes to the table, not to SciPy
    if _traced(n, x):
        return bind(PRIMITIVES["polygamma"], n, x)
    return _scalar(sc.polygamma(n, x))


_entry("digamma", sc.psi, (sc.psi,), sympy=lambda x: sympy.polygamma(0, x),
       partials=(lambda out, x: _p("polygamma", 1, x),), domain=((0.0, INF),), saves=((0,),), aliases=("psi",),
       doc="d/dx = polygamma(1, x); sampled on x > 0 (it also exists between the poles at 0, -1, ...)")
_entry("polygamma", _polygamma_np, (), sympy=lambda n, x: sympy.polygamma(_int_order(n), x), nargs=2,
       elementwise=True, nondiff_args=frozenset({0}),
       jvp=(None, lambda t, out, n, x: t * _p("polygamma", n + 1, x)),  # type: ignore[arg-type]
       vjp=(None, lambda ct, out, n, x: ct * _p("polygamma", n + 1, x)),  # type: ignore[arg-type]
       domain=((0.0, 4.0), (0.0, INF)), saves=((), (0, 1)),
       doc="polygamma(n, x): d/dx = polygamma(n + 1, x); the order n (an integer) is not differentiated")
_entry("gammaln", sc.gammaln, (sc.gammaln,), sympy=lazy_sympy("loggamma"),
       partials=(lambda out, x: _p("digamma", x),), domain=((0.0, INF),), saves=((0,),),
       doc="log|Gamma(x)|; d/dx = digamma(x); the real branch (SymPy loggamma) for x > 0")
_entry("gamma", sc.gamma, (sc.gamma,), sympy=lazy_sympy("gamma"),
       partials=(lambda out, x: out * _p("digamma", x),), domain=((0.0, INF),), saves=((OUT, 0),),
       doc="d/dx = gamma(x) digamma(x); sampled on x > 0")
_entry("rgamma", sc.rgamma, (sc.rgamma,), sympy=lambda x: 1 / sympy.gamma(x),
       partials=(lambda out, x: -out * _p("digamma", x),), domain=((0.0, INF),), saves=((OUT, 0),),
       doc="1/Gamma(x); d/dx = -digamma(x)/Gamma(x); sampled on x > 0 (at the zeros 0, -1, ... of "
           "1/Gamma the rule's digamma has its poles)")
_entry("gammasgn", sc.gammasgn, (sc.gammasgn,), sympy=lambda x: sympy.sign(sympy.gamma(x)), nargs=1, elementwise=True,
       jvp=(lambda t, out, x: t * 0.0,), vjp=(lambda ct, out, x: ct * 0.0,), domain=((0.0, INF),), saves=((),),
       doc="the sign of Gamma(x): derivative 0 (sampled on x > 0, where it is 1; it jumps at the poles "
           "0, -1, -2, ..., where the derivative taken is 0 too)")
_entry("beta", sc.beta, (sc.beta,), sympy=lazy_sympy("beta"),
       partials=(lambda out, a, b: out * (_p("digamma", a) - _p("digamma", a + b)),
                 lambda out, a, b: out * (_p("digamma", b) - _p("digamma", a + b))),
       domain=((0.0, INF),) * 2, saves=((OUT, 0, 1), (OUT, 0, 1)),
       doc="d/da = beta(a, b) (digamma(a) - digamma(a + b)), likewise d/db")
_entry("betaln", sc.betaln, (sc.betaln,), sympy=lambda a, b: sympy.log(sympy.beta(a, b)),
       partials=(lambda out, a, b: _p("digamma", a) - _p("digamma", a + b),
                 lambda out, a, b: _p("digamma", b) - _p("digamma", a + b)),
       domain=((0.0, INF),) * 2, saves=((0, 1), (0, 1)),
       doc="log|beta(a, b)|; d/da = digamma(a) - digamma(a + b), likewise d/db")


# Regularized incomplete gamma and beta functions, Student's t distribution function: in
# x only (the shape parameters are not differentiated), what the distributions' cdf need.
def _gammainc_density(a: Any, x: Any) -> Any:
    """x^(a-1) exp(-x) / Gamma(a): d/dx of the regularized lower incomplete gamma."""
    return np.exp((a - 1.0) * np.log(x) - x - _p("gammaln", a))


def _betainc_density(a: Any, b: Any, x: Any) -> Any:
    """x^(a-1) (1-x)^(b-1) / B(a, b): d/dx of the regularized incomplete beta."""
    return np.exp((a - 1.0) * np.log(x) + (b - 1.0) * np.log1p(-x) - _p("betaln", a, b))


def _t_density(df: Any, t: Any) -> Any:
    """Student's t density with df degrees of freedom: d/dt of stdtr."""
    return np.exp(_p("gammaln", 0.5 * (df + 1.0)) - _p("gammaln", 0.5 * df) - 0.5 * np.log(df * math.pi)
                  - 0.5 * (df + 1.0) * np.log1p(t * t / df))


def _stdtr_sympy(df: Any, t: Any) -> Any:
    half = sympy.Rational(1, 2)
    tail = half * sympy.betainc_regularized(df / 2, half, 0, df / (df + t**2))
    return sympy.Piecewise((1 - tail, t >= 0), (tail, True))


_entry("gammainc", sc.gammainc, (sc.gammainc,), sympy=lambda a, x: sympy.lowergamma(a, x) / sympy.gamma(a),
       nargs=2, elementwise=True, nondiff_args=frozenset({0}),
       jvp=(None, lambda t, out, a, x: t * _gammainc_density(a, x)),  # type: ignore[arg-type]
       vjp=(None, lambda ct, out, a, x: ct * _gammainc_density(a, x)),  # type: ignore[arg-type]
       domain=((0.0, INF), (0.0, INF)), saves=((), (0, 1)),
       doc="the regularized lower incomplete gamma P(a, x); d/dx = x^(a-1) exp(-x) / Gamma(a); a not differentiated")
_entry("gammaincc", sc.gammaincc, (sc.gammaincc,), sympy=lambda a, x: sympy.uppergamma(a, x) / sympy.gamma(a),
       nargs=2, elementwise=True, nondiff_args=frozenset({0}),
       jvp=(None, lambda t, out, a, x: -t * _gammainc_density(a, x)),  # type: ignore[arg-type]
       vjp=(None, lambda ct, out, a, x: -ct * _gammainc_density(a, x)),  # type: ignore[arg-type]
       domain=((0.0, INF), (0.0, INF)), saves=((), (0, 1)),
       doc="the regularized upper incomplete gamma Q(a, x) = 1 - P(a, x); a not differentiated")
_entry("betainc", sc.betainc, (sc.betainc,),
       sympy=lambda a, b, x: sympy.betainc_regularized(a, b, 0, x), nargs=3, elementwise=True,
       nondiff_args=frozenset({0, 1}),
       jvp=(None, None, lambda t, out, a, b, x: t * _betainc_density(a, b, x)),  # type: ignore[arg-type]
       vjp=(None, None, lambda ct, out, a, b, x: ct * _betainc_density(a, b, x)),  # type: ignore[arg-type]
       domain=((0.0, INF), (0.0, INF), (0.0, 1.0)), saves=((), (), (0, 1, 2)),
       doc="the regularized incomplete beta I_x(a, b); d/dx = x^(a-1) (1-x)^(b-1) / B(a, b); a, b not differentiated")
_entry("stdtr", sc.stdtr, (sc.stdtr,), sympy=_stdtr_sympy, nargs=2, elementwise=True,
       nondiff_args=frozenset({0}),
       jvp=(None, lambda t, out, df, x: t * _t_density(df, x)),  # type: ignore[arg-type]
       vjp=(None, lambda ct, out, df, x: ct * _t_density(df, x)),  # type: ignore[arg-type]
       domain=((0.0, INF), (-INF, INF)), saves=((), (0, 1)),
       doc="Student's t distribution function; d/dt = the t density; df not differentiated")

# --------------------------------------------------------------------------
# Logistic functions and x log y
# --------------------------------------------------------------------------
_entry("expit", sc.expit, (sc.expit,), sympy=lambda x: 1 / (1 + sympy.exp(-x)),
       partials=(lambda out, x: out * (1.0 - out),), domain=((-INF, INF),), saves=((OUT,),),
       doc="the logistic sigmoid; d/dx = expit(x) (1 - expit(x))")
_entry("logit", sc.logit, (sc.logit,), sympy=lambda x: sympy.log(x / (1 - x)),
       partials=(lambda out, x: 1.0 / (x * (1.0 - x)),), domain=((0.0, 1.0),), saves=((0,),),
       doc="log(x / (1 - x)); d/dx = 1 / (x (1 - x)), on (0, 1)")


def _x_over(x: Any, y: Any) -> Any:
    """``x / y``, 0 where ``x`` is 0 (also at ``y = 0``): xlogy's convention."""
    return np.where(x == 0, 0.0, x / np.where(x == 0, 1.0, y))


_entry("xlogy", sc.xlogy, (sc.xlogy,), sympy=lambda x, y: x * sympy.log(y),
       partials=(lambda out, x, y: np.log(y), lambda out, x, y: _x_over(x, y)),
       domain=((-INF, INF), (0.0, INF)), saves=((1,), (0, 1)),
       doc="x log(y), 0 at x = 0 whatever y; d/dx = log(y); d/dy = x / y, 0 where x = 0 (also at y = 0)")
_entry("xlog1py", sc.xlog1py, (sc.xlog1py,), sympy=lambda x, y: x * sympy.log(1 + y),
       partials=(lambda out, x, y: np.log1p(y), lambda out, x, y: _x_over(x, 1.0 + y)),
       domain=((-INF, INF), (-1.0, INF)), saves=((1,), (0, 1)),
       doc="x log(1 + y), 0 at x = 0 whatever y; d/dx = log1p(y); d/dy = x / (1 + y), 0 where x = 0")

# --------------------------------------------------------------------------
# Bessel functions
# --------------------------------------------------------------------------


def _i1_prime(out: Any, x: Any) -> Any:
    # I1'(x) = I0(x) - I1(x)/x, with its limit 1/2 at 0
    safe = np.where(x == 0, 1.0, x)
    return np.where(x == 0, 0.5, _p("bessel_i0", x) - out / safe)


_entry("bessel_i0", sc.i0, (sc.i0,), sympy=lambda x: sympy.besseli(0, x),
       partials=(lambda out, x: _p("bessel_i1", x),), domain=((-INF, INF),), saves=((0,),),
       doc="the modified Bessel function I0; d/dx = I1(x)")
_entry("bessel_i1", sc.i1, (sc.i1,), sympy=lambda x: sympy.besseli(1, x),
       partials=(_i1_prime,), domain=((-INF, INF),), saves=((OUT, 0),),
       doc="the modified Bessel function I1; d/dx = I0(x) - I1(x)/x, and its limit 1/2 at x = 0")

_entry("bessel_j0", sc.j0, (sc.j0,), sympy=lambda x: sympy.besselj(0, x),
       partials=(lambda out, x: -_p("bessel_j1", x),), domain=((-INF, INF),), saves=((0,),),
       doc="the Bessel function J0; d/dx = -J1(x)")
_entry("bessel_j1", sc.j1, (sc.j1,), sympy=lambda x: sympy.besselj(1, x),
       partials=(lambda out, x: 0.5 * (_p("bessel_j0", x) - _p("jv", 2.0, x)),), domain=((-INF, INF),),
       saves=((0,),), doc="the Bessel function J1; d/dx = (J0(x) - J2(x)) / 2")
_entry("bessel_y0", sc.y0, (sc.y0,), sympy=lambda x: sympy.bessely(0, x),
       partials=(lambda out, x: -_p("bessel_y1", x),), domain=((0.0, INF),), saves=((0,),),
       doc="the Bessel function Y0, for x > 0; d/dx = -Y1(x)")
_entry("bessel_y1", sc.y1, (sc.y1,), sympy=lambda x: sympy.bessely(1, x),
       partials=(lambda out, x: 0.5 * (_p("bessel_y0", x) - _p("yv", 2.0, x)),), domain=((0.0, INF),),
       saves=((0,),), doc="the Bessel function Y1, for x > 0; d/dx = (Y0(x) - Y2(x)) / 2")


def _order_rule(name: str, sign: float, extra: Any = None) -> tuple[Any, Any]:
    """JVP and VJP in x of an order-v Bessel function from the recurrence
    f'(v, x) = (f(v - 1, x) + sign f(v + 1, x)) / 2 (+ extra(out, v, x))."""
    def d(out: Any, v: Any, x: Any) -> Any:
        r = 0.5 * (_p(name, v - 1, x) + sign * _p(name, v + 1, x))
        return r if extra is None else r + extra(out, v, x)

    return (lambda t, out, v, x: t * d(out, v, x)), (lambda ct, out, v, x: ct * d(out, v, x))


def _order_entry(name: str, fn: Any, ufuncs: tuple[Any, ...], sympy_form: Any, sign: float, doc: str,
                 domain_x: tuple[float, float], extra: Any = None, saves: tuple[int, ...] = (0, 1)) -> None:
    jvp, vjp = _order_rule(name, sign, extra)
    _entry(name, fn, ufuncs, sympy=sympy_form, nargs=2, elementwise=True, nondiff_args=frozenset({0}),
           jvp=(None, jvp), vjp=(None, vjp), domain=((0.0, 3.0), domain_x), saves=((), saves), doc=doc)


_order_entry("jv", sc.jv, (sc.jv,), lambda v, x: sympy.besselj(_int_order(v), x), -1.0,
             "Bessel J_v(x) (scipy.special.jn is jv); d/dx = (J_{v-1}(x) - J_{v+1}(x)) / 2; v not differentiated",
             (-INF, INF))
_order_entry("yv", sc.yv, (sc.yv, sc.yn), lambda v, x: sympy.bessely(_int_order(v), x), -1.0,
             "Bessel Y_v(x) (scipy.special.yn too); d/dx = (Y_{v-1}(x) - Y_{v+1}(x)) / 2, for x > 0; "
             "v not differentiated", (0.0, INF))
_order_entry("iv", sc.iv, (sc.iv,), lambda v, x: sympy.besseli(_int_order(v), x), 1.0,
             "modified Bessel I_v(x); d/dx = (I_{v-1}(x) + I_{v+1}(x)) / 2; v not differentiated", (0.0, INF))
_order_entry("ive", sc.ive, (sc.ive,),
             lambda v, x: sympy.besseli(_int_order(v), x) * sympy.exp(-sympy.Abs(x)), 1.0,
             "exponentially scaled I_v(x) exp(-|x|); d/dx = (ive(v-1, x) + ive(v+1, x)) / 2 - sign(x) ive(v, x); "
             "sampled on x > 0 (|x| has its kink at 0); v not differentiated", (0.0, INF),
             extra=lambda out, v, x: -np.sign(x) * out, saves=(OUT, 0, 1))

# --------------------------------------------------------------------------
# Hurwitz zeta
# --------------------------------------------------------------------------


def _zeta_np(x: Any, q: Any) -> Any:
    if _traced(x, q):
        return bind(PRIMITIVES["zeta"], x, q)
    return _scalar(sc.zeta(x, q))


_entry("zeta", _zeta_np, (_scipy_ufuncs._zeta,), sympy=lambda x, q: sympy.zeta(_int_order(x), q), nargs=2,
       elementwise=True, nondiff_args=frozenset({0}),
       jvp=(None, lambda t, out, x, q: t * (-x * _p("zeta", x + 1, q))),  # type: ignore[arg-type]
       vjp=(None, lambda ct, out, x, q: ct * (-x * _p("zeta", x + 1, q))),  # type: ignore[arg-type]
       domain=((1.0, 5.0), (0.0, INF)), saves=((), (0, 1)),
       doc="the Hurwitz zeta(x, q); d/dq = -x zeta(x + 1, q); x is not differentiated")


# --------------------------------------------------------------------------
# Look-up from the dispatch, and the two SciPy functions that are not ufuncs
# --------------------------------------------------------------------------


def sympy_namespace() -> dict[str, Any]:
    """SymPy function name -> SciPy function, for compiling SymPy expressions of these entries.

    Example:
        >>> sympy_namespace()["erfinv"] is sc.erfinv
        True
    """
    return {"erf": sc.erf, "erfc": sc.erfc, "erfinv": sc.erfinv, "erfcinv": sc.erfcinv, "gamma": sc.gamma,
            "loggamma": sc.gammaln, "digamma": sc.psi, "polygamma": _polygamma_np, "beta": sc.beta,
            "besseli": sc.iv, "besselj": sc.jv, "bessely": sc.yv, "zeta": _zeta_np,
            "lowergamma": lambda a, x: sc.gammainc(a, x) * sc.gamma(a),
            "uppergamma": lambda a, x: sc.gammaincc(a, x) * sc.gamma(a),
            "betainc_regularized": lambda a, b, x1, x2: sc.betainc(a, b, x2) - sc.betainc(a, b, x1)}


def supported() -> list[str]:
    """The SciPy special functions diffkit differentiates, by their SciPy names.

    Example:
        >>> "erf" in supported() and "polygamma" in supported()
        True
    """
    names = {u for u in _UFUNCS if not u.startswith("_")} | {"polygamma", "zeta", "digamma", "jn", "multigammaln"}
    return sorted(names)


def lookup(ufunc: Any) -> Primitive | None:
    """The table's entry of a SciPy ufunc; ``None`` for one that is not SciPy's.

    Raises :class:`~diffkit.errors.UnsupportedOperation` for a SciPy ufunc
    that has no entry, naming the package.

    Example:
        >>> import scipy.special as sc
        >>> lookup(sc.erf).name, lookup(sc.jn).name
        ('erf', 'jv')
    """
    name = getattr(ufunc, "__name__", "")
    if getattr(sc, name, None) is not ufunc and getattr(_scipy_ufuncs, name, None) is not ufunc:
        return None
    prim = _UFUNCS.get(name)
    if prim is None:
        raise UnsupportedOperation(
            f"scipy.special.{name} is not supported by diffkit; supported: {', '.join(supported())}")
    return prim


def polygamma(n: Any, x: Any) -> Any:
    """``scipy.special.polygamma`` on traced values (SciPy's is a Python function,
    not a ufunc, so it does not dispatch); ``n`` is a non-negative integer.

    Example:
        >>> import diffkit as dk
        >>> bool(abs(dk.grad(lambda x: polygamma(1, x))(2.0) - polygamma(2, 2.0)) < 1e-12)
        True
    """
    _refuse_traced_constants(PRIMITIVES["polygamma"], "polygamma", (n, x))
    return bind(PRIMITIVES["polygamma"], n, x)


def zeta(x: Any, q: Any = None) -> Any:
    """``scipy.special.zeta`` on traced values: the Hurwitz zeta(x, q), differentiable in q
    (Riemann's zeta(x) when ``q`` is None, taken as zeta(x, 1), not differentiated in x).

    Example:
        >>> import diffkit as dk
        >>> float(dk.grad(lambda q: zeta(2.0, q))(1.0))   # -2 zeta(3)
        -2.404113806319188
    """
    _refuse_traced_constants(PRIMITIVES["zeta"], "zeta", (x, q))
    return bind(PRIMITIVES["zeta"], x, 1.0 if q is None else q)



def multigammaln(a: Any, d: int) -> Any:
    """``scipy.special.multigammaln`` on traced values (SciPy's is a Python function, not a
    ufunc): the log of the multivariate gamma function,
    ``d (d - 1) / 4 log(pi) + sum_{j<d} gammaln(a - j/2)``. Its derivative in ``a`` is
    ``sum_{j<d} digamma(a - j/2)``; the dimension ``d`` (a positive integer) is not
    differentiated. Like SciPy, it needs ``a > (d - 1) / 2``.

    Example:
        >>> import diffkit as dk
        >>> float(dk.grad(lambda a: multigammaln(a, 2))(3.0))  # digamma(3) + digamma(2.5)
        1.6259409757437102
    """
    if isinstance(d, Value) or int(d) != d or int(d) < 1:
        raise UnsupportedOperation("scipy.special.multigammaln: the dimension d must be a positive integer "
                                   "constant; it is not differentiated")
    if not _traced(a):
        return sc.multigammaln(a, d)
    d = int(d)
    v = np.asarray(concrete(a))
    if v.dtype.kind in "fiu" and np.any(v <= 0.5 * (d - 1)):
        raise InvalidArgument(f"scipy.special.multigammaln: condition a ({v}) > (d-1)/2 ({0.5 * (d - 1)}) "
                              "not met")
    total = _p("gammaln", a)
    for j in range(1, d):
        total = total + _p("gammaln", a - 0.5 * j)
    return total + 0.25 * d * (d - 1) * math.log(math.pi)
