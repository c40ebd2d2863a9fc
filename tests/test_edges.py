"""No silent zeros, and domain edges answered as NumPy answers them.

* A function whose output has no derivative (None, a string, a dict, a bool, an
  integer, an integer or boolean array such as a comparison) raises
  :class:`diffkit.InvalidType` on every operator and every backend, naming the
  function, the backend and what it returned, instead of a zero derivative (as JAX:
  ``jax.grad(lambda x: 3)(1.0)`` raises). A float output that does not depend on the
  argument keeps its zero derivative.
* Where NumPy's evaluation of a derivative is inf or NaN (``sqrt`` at 0, ``arccos``
  at 1), every backend gives inf or NaN, never a Python exception: the AD backends'
  scalar fast paths compute on Python floats, whose ``0.5 / 0.0`` raises where
  NumPy's float64 gives inf, so they redo such a step on NumPy scalars.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import diffkit as dk
from diffkit.core.primitive import PRIMITIVES

INF = math.inf

AD = {
    "forward": dk.Forward(),
    "forward-plain": dk.Forward(accelerate=False),
    "reverse": dk.Reverse(),
    "reverse-plain": dk.Reverse(accelerate=False),
}
EXACT = {**AD, "symbolic": dk.Symbolic()}
"""Backends that give a derivative's exact value at a domain edge (inf, -inf or NaN)."""
ALL = {**EXACT, "numeric": dk.Numeric()}


@pytest.fixture(autouse=True)
def _quiet():
    # NumPy warns (divide by zero, invalid value) where it gives inf or NaN; so does diffkit
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def same(got, want) -> bool:
    """Equal, with NaN equal to NaN and inf only to the same inf."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    return got.shape == want.shape and bool(np.all((got == want) | (np.isnan(got) & np.isnan(want))))


# ---------------------------------------------------------------------------------
# No silent zeros
# ---------------------------------------------------------------------------------


def returns_none(x):
    x * 2.0  # the forgotten return


def returns_str(x):
    return "a"


def returns_dict(x):
    return {"value": x}


def returns_comparison(x):
    return x > 0


def returns_bool(x):
    return True


def returns_int(x):
    return 3


def returns_int_array(x):
    return np.arange(3)


BAD = {
    returns_none: "None",
    returns_str: "a str ('a')",
    returns_dict: "a dict",
    returns_comparison: "",  # a bool (a NumPy bool, or a SymPy condition on the symbolic backend)
    returns_bool: "a bool (True)",
    returns_int: "an int (3)",
    returns_int_array: "an array of dtype int64 and shape (3,)",
}

OPERATORS = {
    "grad": lambda f, be: dk.grad(f, backend=be)(1.0),
    "value_and_grad": lambda f, be: dk.value_and_grad(f, backend=be)(1.0),
    "jacobian": lambda f, be: dk.jacobian(f, backend=be)(np.array([1.0, 2.0])),
    "hessian": lambda f, be: dk.hessian(f, backend=be)(1.0),
    "jvp": lambda f, be: dk.jvp(f, (1.0,), (1.0,), backend=be),
    "vjp": lambda f, be: dk.vjp(f, 1.0, backend=be)[1](1.0),
    "derivative": lambda f, be: dk.derivative(f, backend=be)(1.0),
    "derivative-2": lambda f, be: dk.derivative(f, order=2, backend=be)(1.0),
}


@pytest.mark.parametrize("op", list(OPERATORS))
@pytest.mark.parametrize("backend", list(ALL))
@pytest.mark.parametrize("f", list(BAD), ids=lambda f: f.__name__)
def test_an_output_without_derivative_raises(f, backend, op):
    if f is returns_dict and op in ("jacobian", "hessian", "jvp", "vjp"):
        pytest.skip("a dict of floats is a pytree output there, as in JAX (tests/test_pytrees.py)")
    be = ALL[backend]
    with pytest.raises(dk.InvalidType) as info:
        OPERATORS[op](f, be)
    msg = str(info.value)
    assert f.__name__ in msg, msg                 # the function
    assert f"backend '{be.name}'" in msg, msg     # the backend
    assert f"returned {BAD[f]}" in msg, msg       # what it returned
    assert isinstance(info.value, TypeError) and isinstance(info.value, dk.DiffkitError)


@pytest.mark.parametrize("backend", list(ALL))
def test_a_comparison_is_named_with_a_hint(backend):
    with pytest.raises(dk.InvalidType, match=r"bool|condition") as info:
        dk.grad(lambda x: x > 0, backend=ALL[backend])(1.0)
    assert "np.where(x > 0, 1.0, 0.0)" in str(info.value)
    assert "<lambda>" in str(info.value)


@pytest.mark.parametrize("backend", list(ALL))
def test_an_expression_string_is_named_as_written(backend):
    with pytest.raises(dk.InvalidType, match=r"\[in grad of x > 0, backend '\w+'\]"):
        dk.grad("x > 0", backend=ALL[backend])(1.0)


@pytest.mark.parametrize("backend", list(ALL))
def test_the_main_output_with_aux_is_checked(backend):
    with pytest.raises(dk.InvalidType, match="returned None"):
        dk.grad(lambda x: (None, x), has_aux=True, backend=ALL[backend])(1.0)


@pytest.mark.parametrize("backend", list(ALL))
def test_a_constant_float_keeps_its_zero_derivative(backend):
    be = ALL[backend]
    assert same(dk.grad(lambda x: 3.0, backend=be)(1.0), 0.0)
    assert same(dk.value_and_grad(lambda x: 3.0, backend=be)(1.0), (3.0, 0.0))
    assert same(dk.jacobian(lambda x: np.ones(2), backend=be)(np.array([1.0, 2.0])), np.zeros((2, 2)))
    assert same(dk.hessian(lambda x: 3.0, backend=be)(1.0), 0.0)
    assert same(dk.derivative(lambda x: 3.0, order=2, backend=be)(1.0), 0.0)
    assert same(dk.jvp(lambda x: 3.0, (1.0,), (1.0,), backend=be), (3.0, 0.0))
    assert same(dk.vjp(lambda x: np.float32(3.0), 1.0, backend=be)[1](1.0), (0.0,))
    # a float made from a comparison is fine: the derivative is 0 where it exists
    assert same(dk.grad(lambda x: np.where(x > 0, 1.0, 0.0), backend=be)(1.0), 0.0)


def test_integer_arguments_are_still_promoted():
    assert same(dk.grad(lambda x: x * x)(3), 6.0)


# ---------------------------------------------------------------------------------
# Domain edges: the examples
# ---------------------------------------------------------------------------------

EDGES = [
    # (name, function, point, NumPy's value of the derivative there)
    ("arccos at 1", np.arccos, 1.0, -INF),
    ("arccos at -1", np.arccos, -1.0, -INF),
    ("arcsin at 1", np.arcsin, 1.0, INF),
    ("arcsin at -1", np.arcsin, -1.0, INF),
    ("sqrt at 0", np.sqrt, 0.0, INF),
    ("log at 0", np.log, 0.0, INF),
    ("log2 at 0", np.log2, 0.0, INF),
    ("log10 at 0", np.log10, 0.0, INF),
    ("log1p at -1", np.log1p, -1.0, INF),
    ("arctanh at 1", np.arctanh, 1.0, INF),
    ("arctanh at -1", np.arctanh, -1.0, INF),
    ("arccosh at 1", np.arccosh, 1.0, INF),
    ("cbrt at 0", np.cbrt, 0.0, INF),
    ("x**0.5 at 0", lambda x: x**0.5, 0.0, INF),
    ("x**-1 at 0", lambda x: x**-1, 0.0, -INF),
    ("x**-2.0 at 0", lambda x: x**-2.0, 0.0, -INF),
    ("1/x at 0", lambda x: 1 / x, 0.0, -INF),
    ("1.0/x at -0.0", lambda x: 1.0 / x, -0.0, -INF),
    ("reciprocal at 0", np.reciprocal, 0.0, -INF),
    ("x/0", lambda x: x / 0.0, 1.0, INF),
    ("x**0.5 at -1 (a negative base)", lambda x: x**0.5, -1.0, np.nan),
    ("x**1.5 at -1 (a negative base)", lambda x: x**1.5, -1.0, np.nan),
    ("sqrt at -1", np.sqrt, -1.0, np.nan),
    ("log at -1", np.log, -1.0, -1.0),  # log(-1) is NaN, its derivative rule 1/x is not
    ("hypot at the origin", lambda x: np.hypot(x, 0.0), 0.0, np.nan),  # 0/0, its kink
    ("exp overflows", lambda x: np.exp(x), 1000.0, INF),
    ("x**3.5 overflows", lambda x: x**3.5, 1e200, INF),
]
EDGE_IDS = [e[0] for e in EDGES]


@pytest.mark.parametrize("backend", list(EXACT))
@pytest.mark.parametrize("name, f, x, want", EDGES, ids=EDGE_IDS)
def test_domain_edges_give_numpy_values(name, f, x, want, backend):
    be = EXACT[backend]
    assert same(dk.grad(f, backend=be)(x), want)
    assert same(dk.grad(f, backend=be)(np.float64(x)), want)
    assert same(dk.derivative(f, backend=be)(x), want)
    assert same(dk.value_and_grad(f, backend=be)(x)[1], want)
    assert same(dk.jvp(f, (x,), (1.0,), backend=be)[1], want)
    assert same(dk.vjp(f, x, backend=be)[1](1.0)[0], want)
    assert type(dk.grad(f, backend=be)(x)) is np.float64
    if backend != "symbolic":  # (which computes in float64)
        g32 = dk.grad(f, backend=be)(np.float32(x))
        assert type(g32) is np.float32 and same(g32, want)


@pytest.mark.parametrize("backend", list(EXACT))
@pytest.mark.parametrize("name, f, x, want", EDGES, ids=EDGE_IDS)
def test_domain_edges_on_arrays(name, f, x, want, backend):
    be = EXACT[backend]
    assert same(dk.grad(lambda v: np.sum(f(v)), backend=be)(np.array([x])), [want])
    xs = np.array([x, x])
    g = dk.grad(lambda v: np.sum(f(v)), backend=be)(xs)
    jac = dk.jacobian(f, backend=be)(xs)
    assert same(np.diag(jac), [want, want])
    off = jac[[0, 1], [1, 0]]
    if backend in ("forward", "reverse") or np.isfinite(want):
        assert same(g, [want, want])
        assert same(off, [0.0, 0.0])
    else:
        # Off the diagonal the derivative is 0, but a dense batch of unit tangents (or
        # cotangents) gives 0 * inf = NaN there, as in any AD that forms the seed (JAX's
        # jacfwd too); forward mode then sums the NaN into the gradient. The accelerated
        # backends keep the seed diagonal. SymPy's own 0 * oo is NaN as well (x / 0.0).
        assert np.all((off == 0) | np.isnan(off))
        assert np.all((g == want) | np.isnan(g))
        if backend != "forward-plain":
            assert same(g, [want, want])


@pytest.mark.parametrize("name, f, x, want", EDGES, ids=EDGE_IDS)
def test_numeric_answers_with_a_float_at_domain_edges(name, f, x, want):
    # a stencil cannot give inf: a large number of the right sign, or NaN where f(x) is not finite
    got = dk.grad(f, backend="numeric")(x)
    assert type(got) is np.float64
    if not np.isnan(got) and not np.isnan(want):
        assert np.sign(got) == np.sign(want)


@pytest.mark.parametrize("backend", list(EXACT))
def test_the_exact_examples(backend):
    be = EXACT[backend]
    assert dk.grad(np.arccos, backend=be)(1.0) == -INF
    assert dk.grad(np.arcsin, backend=be)(1.0) == INF
    assert dk.grad(np.sqrt, backend=be)(0.0) == INF
    assert dk.grad(np.log, backend=be)(0.0) == INF
    assert dk.derivative(lambda x: x**0.5, backend=be)(0.0) == INF
    assert dk.grad(lambda x: 1 / x, backend=be)(0.0) == -INF
    assert dk.grad(np.arctanh, backend=be)(1.0) == INF
    assert dk.grad(np.arctanh, backend=be)(-1.0) == INF
    assert np.isnan(dk.grad(lambda x: x**0.5, backend=be)(-1.0))


@pytest.mark.parametrize("backend", list(AD))
def test_the_value_is_numpys_too(backend):
    # the primal at a negative base is NumPy's NaN, not Python's complex number
    value, g = dk.value_and_grad(lambda x: x**0.5, backend=AD[backend])(-4.0)
    assert np.isnan(value) and np.isnan(g) and type(value) is np.float64
    value, g = dk.value_and_grad(lambda x: (-8.0) ** x, backend=AD[backend])(1.0 / 3.0)
    assert np.isnan(value) and np.isnan(g)
    # NumPy: 0.0**-1 = inf (Python raises); d/dy x**y at x == 0 is 0 by the table's convention
    assert same(dk.value_and_grad(lambda x: 0.0 ** x, backend=AD[backend])(-1.0), (INF, 0.0))
    assert same(dk.value_and_grad(lambda x: 0 ** x, backend=AD[backend])(-1.0), (INF, 0.0))


@pytest.mark.parametrize("backend", list(AD))
def test_a_warning_as_numpy_gives_one(backend):
    with warnings.catch_warnings(record=True) as seen, np.errstate(divide="warn"):
        warnings.simplefilter("always")
        assert dk.grad(np.sqrt, backend=AD[backend])(0.0) == INF
    assert any(issubclass(w.category, RuntimeWarning) for w in seen)


@pytest.mark.parametrize("backend", list(AD))
def test_numpy_error_settings_are_respected(backend):
    with np.errstate(divide="raise"), pytest.raises(FloatingPointError):
        dk.grad(np.sqrt, backend=AD[backend])(0.0)


@pytest.mark.parametrize("backend", list(AD))
def test_the_scalar_path_resumes_after_an_edge(backend):
    # an edge inside a longer scalar computation: later steps are exact again
    f = lambda x: np.sqrt(x) * 0.0 + np.sin(x) * 2.0
    g = dk.grad(f, backend=AD[backend])(0.0)
    assert np.isnan(g)  # 0 * inf, as NumPy
    f = lambda x: np.sqrt(x - x) + np.sin(x) * 2.0
    assert same(dk.grad(f, backend=AD[backend])(0.5), np.nan)  # inf - inf
    f = lambda x: np.sin(x) * np.sqrt(x * x)
    assert same(dk.grad(f, backend=AD[backend])(0.0), np.nan)  # sin(0) * inf
    f = lambda x: np.sin(x) + np.sqrt(1.0 - x)
    assert same(dk.grad(f, backend=AD[backend])(1.0), -INF)


# ---------------------------------------------------------------------------------
# Nested: second derivatives at domain edges
# ---------------------------------------------------------------------------------

SECOND = [
    ("sqrt at 0", np.sqrt, 0.0, -INF),
    ("x**0.5 at 0", lambda x: x**0.5, 0.0, -INF),
    ("log at 0", np.log, 0.0, -INF),
    ("1/x at 0", lambda x: 1.0 / x, 0.0, INF),  # 2/x**3 at +0
    ("arccos at 1", np.arccos, 1.0, -INF),
    ("arcsin at 1", np.arcsin, 1.0, INF),
    ("arctanh at 1", np.arctanh, 1.0, INF),
    ("arctanh at -1", np.arctanh, -1.0, -INF),
]


@pytest.mark.parametrize("backend", list(EXACT))
@pytest.mark.parametrize("name, f, x, want", SECOND, ids=[s[0] for s in SECOND])
def test_second_derivatives_at_domain_edges(name, f, x, want, backend):
    be = EXACT[backend]
    for got in (dk.derivative(f, order=2, backend=be)(x), dk.hessian(f, backend=be)(x)):
        # inf of the right sign, or NaN: at a singular point the chain rule may multiply
        # an infinite cotangent by an exact 0 (reverse mode differentiates (1 - x)(1 + x)
        # as 2 * ct - 0 * ct), where forward mode multiplies the infinity last
        assert type(got) is np.float64
        assert got == want or np.isnan(got), got
    if name in ("sqrt at 0", "x**0.5 at 0", "log at 0", "1/x at 0") or backend.startswith("forward"):
        assert dk.derivative(f, order=2, backend=be)(x) == want


# ---------------------------------------------------------------------------------
# Every elementwise primitive of the table at the finite ends of its domain
# ---------------------------------------------------------------------------------

LN2, LN10 = math.log(2.0), math.log(10.0)

ANALYTIC = {
    # NumPy's evaluation of each partial derivative, written out by hand (not the table's rules)
    "divide": (lambda x, y: 1.0 / y, lambda x, y: -x / y**2),
    "power": (lambda x, y: y * x ** (y - 1.0), lambda x, y: x**y * np.log(x)),
    "sqrt": (lambda x: 1.0 / (2.0 * np.sqrt(x)),),
    "cbrt": (lambda x: 1.0 / (3.0 * np.cbrt(x) ** 2),),
    "reciprocal": (lambda x: -1.0 / x**2,),
    "log": (lambda x: 1.0 / x,),
    "log2": (lambda x: 1.0 / (x * LN2),),
    "log10": (lambda x: 1.0 / (x * LN10),),
    "log1p": (lambda x: 1.0 / (1.0 + x),),
    "tan": (lambda x: 1.0 / np.cos(x) ** 2,),
    "arcsin": (lambda x: 1.0 / np.sqrt(1.0 - x**2),),
    "arccos": (lambda x: -1.0 / np.sqrt(1.0 - x**2),),
    "arctan2": (lambda y, x: x / (x**2 + y**2), lambda y, x: -y / (x**2 + y**2)),
    "arccosh": (lambda x: 1.0 / np.sqrt(x**2 - 1.0),),
    "arctanh": (lambda x: 1.0 / (1.0 - x**2),),
}
OTHER = 0.7
"""The other argument of a binary primitive, inside its domain."""


def _edge_cases():
    cases = []
    for name, prim in PRIMITIVES.items():
        if not (prim.elementwise and prim.differentiable and prim.domain):
            continue
        for i, (lo, hi) in enumerate(prim.domain):
            for end in (lo, hi):
                if math.isfinite(end):
                    cases.append((name, i, end))
    return cases


EDGE_CASES = _edge_cases()


def test_the_analytic_table_covers_every_primitive_with_an_edge():
    assert {name for name, _, _ in EDGE_CASES} == set(ANALYTIC)
    assert {"sqrt", "arccos", "arctanh", "log1p", "divide", "power"} <= set(ANALYTIC)


def _args(name, i, end):
    n = PRIMITIVES[name].nargs
    return [end if k == i else OTHER for k in range(n)]


def _want(name, i, args):
    with np.errstate(all="ignore"):
        return float(ANALYTIC[name][i](*[np.float64(a) for a in args]))


def _agree(got, want) -> bool:
    """The same sign and inf-ness (NaN with NaN); finite values to many digits."""
    got = float(got)
    if math.isnan(want) or math.isnan(got):
        return math.isnan(want) and math.isnan(got)
    if math.isinf(want) or math.isinf(got):
        return got == want
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("kind", ["float", "array"])
@pytest.mark.parametrize("backend", list(ALL))
@pytest.mark.parametrize("name, i, end", EDGE_CASES, ids=[f"{n}-arg{i}-{e:g}" for n, i, e in EDGE_CASES])
def test_every_primitive_at_its_domain_edges(name, i, end, backend, kind):
    be = ALL[backend]
    fn = getattr(np, name)
    args = _args(name, i, end)
    want = _want(name, i, args)
    if kind == "array":
        args = [np.array([a]) for a in args]
        f = lambda *a: np.sum(fn(*a))
    else:
        f = fn
    try:
        got = dk.grad(f, argnums=i, backend=be)(*args)
    except dk.DiffkitError:
        return  # refused clearly (none is, today); never a raw Python exception
    got = np.asarray(got, dtype=float).reshape(-1)[0]
    if backend != "numeric":
        assert _agree(got, want), (got, want)
    elif math.isfinite(want):
        assert math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9), (got, want)
    elif not np.isnan(got) and not math.isnan(want):
        assert np.sign(got) == np.sign(want), (got, want)  # a one-sided stencil: large, right sign


@pytest.mark.parametrize("backend", list(EXACT))
@pytest.mark.parametrize("name, i, end", EDGE_CASES, ids=[f"{n}-arg{i}-{e:g}" for n, i, e in EDGE_CASES])
def test_every_primitive_at_its_domain_edges_nested(name, i, end, backend):
    # second order (hessian: forward over the backend's own gradient): no exception,
    # and a float; inf or NaN wherever the first derivative is infinite
    be = EXACT[backend]
    args = _args(name, i, end)
    fn = getattr(np, name)
    try:
        h = dk.hessian(fn, argnums=i, backend=be)(*args)
    except dk.DiffkitError:
        return
    assert type(h) is np.float64
    if math.isinf(_want(name, i, args)):
        assert not np.isfinite(h)
