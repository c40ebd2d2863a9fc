"""The symbolic backend: tracing into SymPy, DAG-aware and naive derivatives,
compilation and caching, mpmath references, expression swell.

Expected values come from SymPy's own diff, mpmath.diff, hand derivations
and Baydin et al. (2018) Table 1.
"""

from __future__ import annotations

import time

import mpmath
import numpy as np
import pytest
import sympy

import diffkit as dk
from diffkit.backends.symbolic import SizeLimitError, compile_derivative
from diffkit.swell import logistic, run_step, swell_table

EPS = np.finfo(float).eps
x, y = sympy.symbols("x y", real=True)


def test_diff_returns_sympy_expressions():
    assert dk.diff("sin(x)*exp(y)", "x") == sympy.exp(y) * sympy.cos(x)
    assert dk.diff("x**3", order=2) == 6 * x
    assert dk.diff(lambda x, y: x * y**2, "y") == 2 * x * y
    assert dk.diff(lambda x, y: x * y**2, 1, order=2) == 2 * x
    assert dk.diff("4*x*(1 - x)") == 4 - 8 * x
    assert sympy.simplify(dk.diff("sin(x)**2 + cos(x)**2", simplify=True)) == 0



@pytest.mark.parametrize("text, wrt, want", [
    ("x**x", None, x**x * (sympy.log(x) + 1)),                       # x**x = exp(x log x)
    ("sin(x)**2", None, 2 * sympy.sin(x) * sympy.cos(x)),
    ("exp(sin(x))", None, sympy.exp(sympy.sin(x)) * sympy.cos(x)),
    ("log(x**2 + 1)", None, 2 * x / (x**2 + 1)),
    ("x**y", "y", x**y * sympy.log(x)),
    ("(x + 1)**y", "y", (x + 1)**y * sympy.log(x + 1)),
])
def test_diff_gives_the_hand_derived_form(text, wrt, want):
    # hand derivations, written as people write them: no Piecewise for the power
    # rule's convention at x = 0, which is outside the domain of log x
    got = dk.diff(text, wrt)
    assert got == want
    assert not got.has(sympy.Piecewise)
    raw = dk.diff(text, wrt, simplify=False)
    for point in (0.3, 1.7):  # the raw form is the same function on the domain
        at = {x: point, y: 2.5}
        assert float(raw.subs(at)) == pytest.approx(float(want.subs(at)), rel=1e-13)


def test_diff_simplify_false_is_the_raw_form():
    assert str(dk.diff("x**x", simplify=False)) == (
        "x*x**(x - 1) + Piecewise((0, Eq(x, 0)), (x**x*log(Piecewise((1, Eq(x, 0)), (x, True))), True))")
    assert dk.diff("x**y", "y", simplify=False).has(sympy.Piecewise)
    # the tidy form of a higher derivative has no guard either, and agrees with SymPy's diff
    d2 = dk.diff("x**x", order=2)
    assert not d2.has(sympy.Piecewise)
    assert float(d2.subs(x, 1.3)) == pytest.approx(float(sympy.diff(x**x, x, 2).subs(x, 1.3)), rel=1e-13)
    # a guard the user wrote is kept: sinc's derivative at 0 is 0
    sinc = dk.diff(lambda x: np.where(x == 0, 1.0, np.sin(x) / x))
    assert sinc.has(sympy.Piecewise) and sinc.subs(x, 0) == 0
    assert dk.diff("sigmoid(x)", simplify="full") == 1 / (4 * sympy.cosh(x / 2)**2)
    with pytest.raises(dk.InvalidArgument):
        dk.diff("x", simplify="yes")


def test_diff_tidying_is_bounded():
    # past TIDY_NODES only the linear guard removal runs: no sympy.simplify, no factoring
    from unittest import mock

    from diffkit.backends import symbolic
    with mock.patch.object(symbolic, "TIDY_NODES", 5), \
            mock.patch.object(sympy, "simplify", side_effect=AssertionError("simplify ran")):
        got = dk.diff("x**x", simplify="full")
    assert not got.has(sympy.Piecewise)
    assert got == x * x**(x - 1) + x**x * sympy.log(x)

@pytest.mark.parametrize("text", ["sin(x)*exp(x**2)", "log(1 + x**2)/x", "tanh(x)**3 - sqrt(x)",
                                  "atan(x)*cosh(x)", "x**x", "logaddexp(x, 2*x)", "hypot(x, 3)"])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_dag_and_naive_agree_with_sympy(text, order):
    expr = sympy.sympify(text.replace("logaddexp(x, 2*x)", "log(exp(x) + exp(2*x))")
                         .replace("hypot(x, 3)", "sqrt(x**2 + 9)").replace("atan", "atan"),
                         locals={"x": x})
    want = sympy.diff(expr, x, order)
    for method in ("dag", "naive"):
        got = dk.diff(text, order=order, method=method)
        for point in (0.3, 1.7):
            assert float(got.subs(x, point)) == pytest.approx(float(want.subs(x, point)), rel=1e-12)


def test_kinks_follow_the_table():
    # the same conventions as the AD backends (docs/conventions.md)
    assert dk.diff(lambda x: np.abs(x)).subs(x, 0) == 0
    assert dk.diff(lambda x: np.maximum(x, 0.0)).subs(x, 0) == sympy.Rational(1, 2)
    assert dk.diff(lambda x: np.where(x > 0, x, 0.0)).subs(x, 0) == 0
    for backend in ("symbolic", "forward", "reverse"):
        g = dk.grad(lambda a, b: np.maximum(a, b), argnums=(0, 1), backend=backend)(1.0, 1.0)
        assert g == (0.5, 0.5)
        assert dk.grad(lambda v: np.clip(v, -1.0, 1.0), backend=backend)(1.0) == 0.5



def test_symbolic_compilation_is_shared_between_operator_calls():
    # dk.hessian(f, backend="symbolic") makes a backend instance per operator: the
    # compiled derivative is found again through the function, not rebuilt each time
    from unittest import mock

    from diffkit.backends import symbolic

    def f(v, scale):
        return scale * np.sum(np.sin(v) * v**2)

    v = np.array([0.3, -1.2, 2.0])
    want = 2.0 * np.diag((2 - v**2) * np.sin(v) + 4 * v * np.cos(v))   # by hand: (v^2 sin v)''
    with mock.patch.object(symbolic, "compile_derivative", wraps=symbolic.compile_derivative) as built:
        first = dk.hessian(f, backend="symbolic")(v, 2.0)
        assert built.call_count == 1
        for _ in range(3):
            again = dk.hessian(f, backend="symbolic")(v, 2.0)
            assert np.array_equal(again, first)
        assert built.call_count == 1
        dk.hessian(f, backend="symbolic")(v[:2], 2.0)            # another shape: built again
        assert built.call_count == 2
        dk.hessian(f, backend=dk.Symbolic(cse=False))(v, 2.0)     # other options: built again
        assert built.call_count == 3
        # an argument that is not differentiated stays a number in the trace (int(n), range(n)
        # work on it): another value is another derivative, the same value finds the first
        np.testing.assert_allclose(dk.hessian(f, backend="symbolic")(v, 3.0), 1.5 * first, rtol=1e-15)
        assert built.call_count == 4
        dk.hessian(f, backend="symbolic")(v + 0.5, 3.0)           # another point, same branches
        assert built.call_count == 4
    np.testing.assert_allclose(first, want, rtol=1e-14, atol=1e-15)


def test_symbolic_compilation_cache_does_not_keep_the_function_alive():
    import gc
    import weakref

    from diffkit.backends import symbolic

    def g(x):
        return x**3

    assert dk.hessian(g, backend="symbolic")(2.0) == 12.0
    # the cache is keyed by g, or by the operators' output wrapper that refers to g weakly
    assert any(k is g or getattr(k, "_fn", lambda: None)() is g for k in symbolic._SHARED.keys())
    ref = weakref.ref(g)
    del g
    gc.collect()
    assert ref() is None
    assert all(k is not None for k in symbolic._SHARED.keys())

def test_every_operator_on_the_symbolic_backend():
    def f(v):
        return np.stack([v[0] * np.sin(v[1]), np.exp(v[0] * v[1])])

    v = np.array([0.4, 1.3])
    for op in (dk.jacobian, dk.hessian):
        np.testing.assert_allclose(op(f, backend="symbolic")(v), op(f, backend="reverse")(v), rtol=1e-13)
    t = np.array([0.5, -2.0])
    _, jt = dk.jvp(f, (v,), (t,), backend="symbolic")
    np.testing.assert_allclose(jt, dk.jacobian(f)(v) @ t, rtol=1e-13)
    _, vjp_fn = dk.vjp(f, v, backend="symbolic")
    np.testing.assert_allclose(vjp_fn(np.array([1.0, 3.0]))[0], np.array([1.0, 3.0]) @ dk.jacobian(f)(v),
                               rtol=1e-13)
    for order in range(4):
        assert dk.derivative(np.sin, order=order, backend="symbolic")(0.5) == pytest.approx(
            [np.sin(0.5), np.cos(0.5), -np.sin(0.5), -np.cos(0.5)][order], rel=4 * EPS)


def test_nesting_with_ad_backends():
    # d/dx of the symbolic gradient, taken by reverse mode over it, and the other way round
    def f(a, b):
        return a**3 * b

    outer = dk.grad(dk.grad(f, backend="symbolic"), backend="reverse")(2.0, 5.0)
    inner = dk.grad(dk.grad(f, backend="reverse"), backend="symbolic")(2.0, 5.0)
    assert outer == inner == 60.0  # 6 a b


def test_compiled_once_per_shape_and_setup_reported():
    be = dk.Symbolic()
    g = dk.grad(lambda v: np.sum(np.sin(v) * v**2), backend=be)
    v = np.linspace(0.1, 1.0, 20)
    np.testing.assert_allclose(g(v), np.sin(v) * 2 * v + np.cos(v) * v**2, rtol=1e-14)
    assert len(be._cache) == 1
    g(v + 1.0)
    assert len(be._cache) == 1  # same shape: no new trace
    g(np.ones(3))
    assert len(be._cache) == 2
    (comp,) = next(iter(be._cache.values()))  # one variant: the function has no branches
    assert comp.setup_time > 0 and comp.setup_time == comp.trace_time + comp.derivative_time + comp.compile_time


def test_compiled_evaluation_is_vectorized_over_points():
    comp = compile_derivative(lambda v: logistic(v, 6), [0.3], "grad", (0,))
    pts = np.linspace(0.0, 1.0, 1001)
    value, deriv = comp.evaluate(pts)
    _, want = dk.jvp(lambda v: logistic(v, 6), (pts,), (np.ones_like(pts),), backend="forward")
    np.testing.assert_allclose(deriv, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(value, logistic(pts, 6), rtol=1e-13)


def test_control_flow_without_a_point_is_a_clear_error():
    def relu(v):
        return v if v > 0 else 0.0 * v

    with pytest.raises(dk.TracingError, match="np.where"):
        dk.diff(relu)           # an expression for every x: the branch is not known
    assert dk.grad(relu, backend="reverse")(1.0) == 1.0  # the AD backends compare values


def test_control_flow_follows_the_point_and_is_guarded():
    from unittest import mock

    from diffkit.backends import symbolic

    def f(x, y):
        if x * y > 1.0:          # value-dependent branch
            return np.sin(x) * y
        while x < 4.0:           # a loop whose trip count depends on x
            x = x * 2.0
        return x ** 2 + y

    be = dk.Symbolic()
    g = dk.grad(f, argnums=(0, 1), backend=be)
    with mock.patch.object(symbolic, "compile_derivative", wraps=symbolic.compile_derivative) as built:
        # (2, 3): first branch; by hand (y cos x, sin x)
        np.testing.assert_allclose(g(2.0, 3.0), (3.0 * np.cos(2.0), np.sin(2.0)), rtol=1e-15)
        np.testing.assert_allclose(g(1.5, 2.0), (2.0 * np.cos(1.5), np.sin(1.5)), rtol=1e-15)
        assert built.call_count == 1            # same branch: the guarded derivative serves
        # (0.3, 1): the loop doubles x four times (0.3 -> 4.8): f = (16 x)^2 + y, df/dx = 512 x
        np.testing.assert_allclose(g(0.3, 1.0), (512 * 0.3, 1.0), rtol=1e-15)
        # (0.6, 1): three doublings (0.6 -> 4.8): f = (8 x)^2 + y, df/dx = 128 x
        np.testing.assert_allclose(g(0.6, 1.0), (128 * 0.6, 1.0), rtol=1e-15)
        assert built.call_count == 3            # each new branch traced once, at its point
        np.testing.assert_allclose(g(0.31, 1.0), (512 * 0.31, 1.0), rtol=1e-15)
        assert built.call_count == 3
    for point in [(2.0, 3.0), (0.3, 1.0), (0.6, 1.0)]:
        np.testing.assert_allclose(g(*point), dk.grad(f, argnums=(0, 1), backend="reverse")(*point), rtol=1e-15)


def test_integer_and_undifferentiated_arguments_stay_numbers():
    def power_sum(x, n, c):
        return sum(x ** k for k in range(int(n))) * float(c)

    g = dk.grad(power_sum, argnums=0, backend="symbolic")
    assert g(2.0, 4, np.float64(0.5)) == pytest.approx((1 + 2 * 2.0 + 3 * 2.0 ** 2) * 0.5, rel=1e-15)
    assert g(2.0, 3, 1.0) == pytest.approx(1 + 2 * 2.0, rel=1e-15)
    # differentiated, the same argument is a symbol: int() of it has no derivative
    with pytest.raises(dk.TracingError, match="int"):
        dk.grad(power_sum, argnums=1, backend="symbolic")(2.0, 4.0, 1.0)


def test_size_limit_is_a_clear_error():
    with pytest.raises(SizeLimitError, match="backend='reverse'"):
        dk.grad(lambda v: np.sum(v), backend=dk.Symbolic(size_limit=10))(np.ones(11))
    assert dk.grad(lambda v: np.sum(v), backend=dk.Symbolic(size_limit=11))(np.ones(11)).shape == (11,)


def test_unsupported_function_names_the_backend():
    with pytest.raises(dk.UnsupportedOperation, match="symbolic"):
        dk.grad(lambda v: np.sum(np.linalg.eigh(v)[0]), backend="symbolic")(np.eye(2))


# ---------------------------------------------------------------------------
# mpmath references
# ---------------------------------------------------------------------------

MP_CASES = [
    ("exp(x)*sin(x)", lambda t: mpmath.exp(t) * mpmath.sin(t)),
    ("log(1 + x**2)", lambda t: mpmath.log(1 + t**2)),
    ("atan(x)/x", lambda t: mpmath.atan(t) / t),
    ("sqrt(x)*cosh(x)", lambda t: mpmath.sqrt(t) * mpmath.cosh(t)),
    ("tanh(x**2)", lambda t: mpmath.tanh(t**2)),
    ("x**x", lambda t: t**t),
    ("1/(1 + exp(-x))", lambda t: 1 / (1 + mpmath.exp(-t))),
]


@pytest.mark.parametrize("text, mp_fn", MP_CASES, ids=[c[0] for c in MP_CASES])
@pytest.mark.parametrize("order", [1, 2])
def test_precise_matches_mpmath_diff_to_40_digits(text, mp_fn, order):
    point = 0.7
    got = dk.precise(text, (point,), op="derivative", order=order, dps=50)
    with mpmath.workdps(60):
        want = mpmath.diff(mp_fn, mpmath.mpf(point), order)
        assert abs(got - want) <= mpmath.mpf(10) ** -40 * abs(want)


def test_precise_shapes_follow_the_operators():
    g = dk.precise(lambda v: np.sum(v**3), (np.array([1.0, 2.0]),), op="grad")
    assert g.shape == (2,) and [float(e) for e in g] == [3.0, 12.0]
    h = dk.precise(lambda a, b: a**2 * b, (1.5, 2.0), op="hessian", argnums=(0, 1))
    assert [[float(e) for e in row] for row in h] == [[4.0, 3.0], [3.0, 0.0]]


# ---------------------------------------------------------------------------
# Expression swell (Baydin et al. 2018, Table 1)
# ---------------------------------------------------------------------------


def test_swell_counts_match_the_paper():
    rows = swell_table(5, timeout=60, steps=("function", "naive", "dag", "ad"))
    assert [r["naive_ops"] for r in rows] == [0, 2, 21, 82, 264]
    # the DAG-aware derivative grows linearly, the tree exponentially
    dag = [r["dag_nodes"] for r in rows]
    steps = [b - a for a, b in zip(dag[2:], dag[3:])]
    assert len(set(steps)) == 1, dag  # a constant number of new nodes per step from n = 3
    for r in rows:
        assert r["dag_value"] == pytest.approx(r["ad_value"], rel=1e-13)
        assert r["naive_value"] == pytest.approx(r["ad_value"], rel=1e-13)


def test_swell_step_past_its_limit_is_a_timeout_row():
    t0 = time.perf_counter()
    row = run_step("expanded", 10, timeout=0.5)  # sympy.expand takes minutes at n = 10
    assert row == {"expanded_status": "timeout"}
    assert time.perf_counter() - t0 < 10


def test_swell_cli_markdown():
    from typer.testing import CliRunner

    from diffkit.cli import app

    result = CliRunner().invoke(app, ["swell", "--n", "3", "--format", "markdown", "--timeout", "30"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("| ")]
    assert len(lines) == 4  # header and n = 1, 2, 3
    assert lines[3].split("|")[3].strip() == "21"
