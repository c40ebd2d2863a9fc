"""diffkit's own property tests: random functions from the primitive table, every backend.

Functions and points come from :mod:`diffkit.strategies`. The number of
examples comes from the Hypothesis profile (tests/conftest.py loads
``diffkit-ci``: derandomized, 100 per property, about 20 s in all);
``--hypothesis-profile=thorough`` runs 5,000 per property.

Every bug these tests found is fixed and pinned below, as an ``@example`` or
as an explicit regression test.
"""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import event, example, given, note
from hypothesis import strategies as st

import diffkit as dk
from diffkit.harness.crosscheck import AD_RTOL_EPS, NUMERIC_SAFETY
from diffkit.strategies import functions, point_problem, points
from diffkit.testing import absolute_derivative

EPS64 = float(np.finfo(np.float64).eps)
AD_BACKENDS = ("forward", "reverse")
VARS = ("x", "y")
ARRAY_SHAPES = {"x": (3,)}

# Tolerances follow from eps. A derivative from forward, reverse or symbolic
# evaluation is the exact derivative of the expression up to the rounding of a
# few dozen floating-point operations per element (depth 3 plus the domain
# transforms), each off by at most eps/2 relative to the terms it combines.
# AD_RTOL_EPS = 256 eps (5.7e-14), the harness's own bound, covers that with room.
# The terms can be far larger than the result where they cancel (the second
# derivative of hypot(x, x) is 0, made of terms of size 1/|x|), so the scale is
# the derivative computed with absolute values of every local partial
# (dk.testing.absolute_derivative: a running error bound), at least 1.


def ad_tol(f: dk.Function, args: tuple, order: int, *values: object, dtype: object = np.float64) -> float:
    """256 eps of ``dtype`` times the magnitude of the terms the order-``order`` derivative sums."""
    eps = float(np.finfo(dtype).eps)
    bound = absolute_derivative(f, args, order)
    scale = max([1.0] + [float(np.max(np.abs(np.asarray(v, dtype=float)), initial=0.0))
                         for v in values + ((bound,) if bound is not None else ())])
    return AD_RTOL_EPS * eps * scale


def primal_tol(f: dk.Function, args: tuple, out: object) -> float:
    """How far two evaluations of ``f`` may differ when each elementary function may differ
    by an ulp (math's libm against NumPy's): 4 eps times the graph's condition number,
    the sum over its nodes of |d out / d node| |node| (found by the thorough run:
    arccosh(2)**6 differs by 6 ulps between the two, each 3 ulps from the truth)."""
    cond = 0.0
    for n in dk.graph(f, *args).nodes:
        if n.op not in ("input", "constant") and n.grad is not None:
            term = np.abs(np.asarray(n.grad, dtype=float)) * np.abs(np.asarray(n.value, dtype=float))
            cond += float(np.sum(term[np.isfinite(term)]))
    return 4 * EPS64 * max(1.0, float(np.max(np.abs(np.asarray(out, dtype=float)))), cond)


def as_array(value: object) -> np.ndarray:
    """Nested tuples (tuple argnums) as one float64 array."""
    return np.asarray(value, dtype=np.float64)


def assert_close(got: object, want: object, tol: float, what: str) -> None:
    got, want = as_array(got), as_array(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}"
    err = np.abs(got - want)
    assert np.all(err <= tol), (f"{what}: {got.tolist()} vs {want.tolist()}, "
                                f"error {float(np.max(err)):.3g} > tol {tol:.3g}")


@st.composite
def cases(draw: st.DrawFn, max_depth: int = 3, shapes: dict | None = None,
          scalar_output: bool | None = None, dtype: object = np.float64,
          analytic: bool = False) -> tuple[dk.Function, tuple]:
    """A function and a point inside its domain: one strategy, so ``@example`` can pin both."""
    f = draw(functions(variables=VARS, max_depth=max_depth, shapes=shapes, scalar_output=scalar_output,
                       analytic=analytic))
    args = draw(points(f, dtype=dtype))
    return f, args


def case(text: str, *args: float) -> tuple[dk.Function, tuple]:
    """A pinned case: an expression over x and y and its point."""
    return dk.Function.parse(text, variables=VARS), tuple(args)


def note_case(f: dk.Function, args: tuple) -> None:
    note(f"f = {f.source!r}, args = {args!r}")


# --------------------------------------------------------------------------
# First derivatives
# --------------------------------------------------------------------------


@given(cases())
@example(case("x**2", 0.0, 0.0))
@example(case("logaddexp(x, 2)", 1.0, 0.0))
def test_forward_reverse_symbolic_gradients_agree(fa):
    f, args = fa
    note_case(f, args)
    g = {b: as_array(dk.grad(f, argnums=(0, 1), backend=b)(*args)) for b in ("reverse", "forward", "symbolic")}
    note(f"gradients: {g}")
    tol = ad_tol(f, args, 1, *g.values())
    assert_close(g["forward"], g["reverse"], tol, "forward vs reverse")
    assert_close(g["symbolic"], g["reverse"], tol, "symbolic vs reverse")


@given(cases())
@example(case("expm1(tanh(hypot(x**2, x / (1.1 + y**2))))", 1.3203125, 2.0))  # estimate 1.6x too small
@example(case("x * exp(tanh(hypot(x, x)))", 0.015625, 0.0))  # a kink within the numeric step
def test_numeric_gradient_within_its_error_estimate(fa):
    """|numeric - reverse| <= estimate + 256 eps (the reverse result's own rounding), per example.

    Strict: the estimate must bound the error (the harness adds a safety factor of
    NUMERIC_SAFETY on top). The thorough run once found it 1.6x too small (pinned above).
    """
    f, args = fa
    note_case(f, args)
    r = dk.Numeric().gradient_result(f, args, (0, 1))
    value, error = as_array(r.value), as_array(r.error)
    rev = as_array(dk.grad(f, argnums=(0, 1), backend="reverse")(*args))
    note(f"numeric {value.tolist()} +- {error.tolist()} ({r.method}), reverse {rev.tolist()}")
    err = np.abs(value - rev)
    eps_term = ad_tol(f, args, 1, rev)
    event(f"numeric method: {r.method}")
    assert np.all(err <= error + eps_term), (
        f"numeric gradient {value.tolist()} ({r.method}) differs from reverse {rev.tolist()} by "
        f"{err.tolist()}, more than its error estimate {error.tolist()} (+ {eps_term:.3g}); "
        f"ratio {float(np.max(err / np.maximum(error + eps_term, 1e-300))):.3g}")


@pytest.mark.parametrize("text, x", [
    ("x * abs(x)", 0.015625), ("x * hypot(x, x)", 0.015625),      # found by the thorough run
    ("abs(x)", 1e-8), ("maximum(x, 0) * x", 3e-4), ("abs(abs(x) - 1) * x", 1.001),
    ("clip(x, -1, 1) * x", 0.999), ("minimum(x, 2 * x) ** 2", -0.01),
])
def test_numeric_step_stays_on_one_side_of_a_nearby_kink(text, x):
    """Regression: a kink closer than the starting step (x*abs(x) at 1/64 gave 0.0274, exact
    0.03125, with an estimate 37x too small): the probe now measures the distance to the
    nearest kink and keeps the stencils inside it."""
    f = dk.Function.parse(text)
    exact = float(dk.precise(f, (x,), op="grad"))
    for method in ("auto", "central", "forward"):
        r = dk.Numeric(method=method).gradient_result(f, (x,))
        assert abs(float(r.value) - exact) <= float(r.error) + 1e-15 * abs(exact), (method, r)


def test_numeric_error_estimate_is_a_bound():
    """Regression: the Richardson estimate was 1.6x too small here (fixed in 0ef3448)."""
    f, args = case("expm1(tanh(hypot(x**2, x / (1.1 + y**2))))", 1.3203125, 2.0)
    r = dk.Numeric().gradient_result(f, args, (0, 1))
    exact = as_array([float(v) for v in dk.precise(f, args, op="grad", argnums=(0, 1))])
    assert np.all(np.abs(as_array(r.value) - exact) <= as_array(r.error))


EXP2_TANH = dk.Function(lambda x, y: np.exp2(np.tanh(y)), variables=VARS, name="np.exp2(np.tanh(y))")


UNIT = st.floats(-1, 1, allow_nan=False)


@given(cases(shapes=ARRAY_SHAPES), st.lists(UNIT, min_size=4, max_size=4), st.lists(UNIT, min_size=3, max_size=3))
@example((EXP2_TANH, (np.zeros(3), 0.3125)), [0.0] * 4, [0.0] * 3)  # math.pow vs np.exp2: 1 ulp apart
@example((dk.Function.parse("(arccosh(2 + y**2)**3)**2", variables=VARS), (np.zeros(3), 0.0)),
         [0.0] * 4, [0.0] * 3)  # math.acosh vs np.arccosh 1 ulp apart, to the 6th power
def test_jvp_vjp_transposition(fa, u_flat, v_flat):
    """<v, J u> == <J^T v, u> on the forward and reverse backends, for array functions."""
    f, args = fa
    note_case(f, args)
    u = (np.array(u_flat[:3]), u_flat[3])  # shaped like x (3,) and y ()
    out = np.asarray(f(*args))
    v = np.array(v_flat[:out.size]).reshape(out.shape)
    # the inner products sum terms bounded by |v|^T A |u|, A the absolute Jacobian
    A = absolute_derivative(f, args, 1)
    bound = float(np.sum(np.abs(v)[..., None] * A * np.abs(np.array(u_flat)))) if A is not None else 0.0
    tol = ad_tol(f, args, 1, bound)
    for b in AD_BACKENDS:
        y, ju = dk.jvp(f, args, u, backend=b)
        y2, vjp_fn = dk.vjp(f, *args, backend=b)
        jtv = vjp_fn(v)
        lhs = float(np.sum(v * np.asarray(ju)))
        rhs = sum(float(np.sum(np.asarray(c) * np.asarray(t))) for c, t in zip(jtv, u))
        note(f"{b}: <v, J u> = {lhs!r}, <J^T v, u> = {rhs!r}")
        # the AD backends evaluate Python floats with math (exp2 as math.pow): equal to NumPy's
        # result to rounding, not bit for bit
        assert_close(y, out, primal_tol(f, args, out), f"{b} jvp primal output")
        assert_close(y2, out, primal_tol(f, args, out), f"{b} vjp primal output")
        assert abs(lhs - rhs) <= tol, f"{b}: {lhs!r} vs {rhs!r}, error {abs(lhs - rhs):.3g} > tol {tol:.3g}"


# --------------------------------------------------------------------------
# Second derivatives
# --------------------------------------------------------------------------


@given(cases())
@example((dk.Function.parse("arctanh(0.9*tanh(hypot(arccosh(2 + 0.5**2), x**3)))", variables=VARS), (1.5, 0.0)))
def test_hessian_symmetric_and_equal_across_backends(fa):
    f, args = fa
    note_case(f, args)
    H = {b: as_array(dk.hessian(f, argnums=(0, 1), backend=b)(*args)) for b in ("reverse", "forward", "symbolic")}
    note(f"hessians: {H}")
    tol = ad_tol(f, args, 2, *H.values())
    for b, h in H.items():
        assert_close(h, h.T, tol, f"{b} hessian symmetry")
    assert_close(H["forward"], H["reverse"], tol, "forward vs reverse (forward-over-reverse) hessian")
    # tol bounds each backend's rounding error; two of them may sit on opposite sides of the
    # truth (the thorough run: symbolic 4.1e-14 above, reverse 2.7e-14 below, tol 6.0e-14)
    assert_close(H["symbolic"], H["reverse"], 2 * tol, "symbolic vs reverse hessian")


NESTINGS = [(outer, inner) for outer in ("forward", "reverse", "symbolic") for inner in ("forward", "reverse")]


@given(cases(max_depth=2), st.sampled_from(NESTINGS))
def test_grad_of_grad_is_the_hessian_diagonal(fa, nesting):
    f, args = fa
    outer, inner = nesting
    note_case(f, args)
    H = as_array(dk.hessian(f, argnums=(0, 1), backend="symbolic")(*args))
    diag = []
    for i in (0, 1):
        gg = dk.grad(dk.grad(f, argnums=i, backend=inner), argnums=i, backend=outer)
        diag.append(float(gg(*args)))
    note(f"{outer} over {inner}: {diag}, hessian diagonal {np.diag(H).tolist()}")
    assert_close(diag, np.diag(H), ad_tol(f, args, 2, H), f"grad ({outer}) of grad ({inner})")


# --------------------------------------------------------------------------
# Array functions: shape rules and agreement
# --------------------------------------------------------------------------


SUM_X_PLUS_Y = dk.Function(lambda x, y: np.sum(x + y), variables=VARS, name="np.sum(x + y)")
SQRT_X0 = dk.Function(lambda x, y: np.sqrt(1 + x[0] ** 2), variables=VARS, name="np.sqrt(1 + x[0]**2)")


@given(cases(shapes=ARRAY_SHAPES, max_depth=2))
@example((SQRT_X0, (np.zeros(3), 0.0)))
@example((SUM_X_PLUS_Y, (np.zeros(3), 0.0)))
def test_shape_rules_and_agreement_for_array_functions(fa):
    f, args = fa
    note_case(f, args)
    out_shape = np.shape(f(*args))
    jac, hess = {}, {}
    for b in dk.backends():
        for i, a in enumerate(args):
            J = np.asarray(dk.jacobian(f, argnums=i, backend=b)(*args))
            assert J.shape == out_shape + np.shape(a), f"{b} jacobian wrt {f.variables[i]}: {J.shape}"
            Hm = np.asarray(dk.hessian(f, argnums=i, backend=b)(*args))
            assert Hm.shape == out_shape + np.shape(a) * 2, f"{b} hessian wrt {f.variables[i]}: {Hm.shape}"
            jac[b, i], hess[b, i] = J, Hm
            if out_shape == ():
                g = np.asarray(dk.grad(f, argnums=i, backend=b)(*args))
                assert g.shape == np.shape(a), f"{b} grad wrt {f.variables[i]}: {g.shape}"
    tol1, tol2 = ad_tol(f, args, 1), ad_tol(f, args, 2)
    for i in range(len(args)):
        for b in ("forward", "symbolic"):
            assert_close(jac[b, i], jac["reverse", i], tol1, f"{b} jacobian {i}")
            assert_close(hess[b, i], hess["reverse", i], tol2, f"{b} hessian {i}")


@pytest.mark.parametrize("backend", ["reverse", "symbolic"])
def test_reverse_grad_of_a_broadcast_scalar_under_sum(backend):
    # regression: d/dy sum(x + y) for x of shape (3,) and scalar y was 1 (the sum's lazily small
    # cotangent reached the broadcast scalar without being summed over x's shape)
    assert float(dk.grad(SUM_X_PLUS_Y, argnums=1, backend=backend)(np.zeros(3), 0.0)) == 3.0


def test_forward_and_numeric_grad_of_a_broadcast_scalar_under_sum():
    for b in ("forward", "numeric"):
        assert float(dk.grad(SUM_X_PLUS_Y, argnums=1, backend=b)(np.zeros(3), 0.0)) == pytest.approx(3.0)


def test_symbolic_grad_of_one_array_element():
    """Regression: sympy's lambdify met a 0-d object array (fixed in 0ef3448)."""
    g = dk.grad(lambda x: x[0] ** 2, backend="symbolic")(np.ones(2))
    np.testing.assert_array_equal(g, [2.0, 0.0])


# --------------------------------------------------------------------------
# The user-facing check of docs/testing.md
# --------------------------------------------------------------------------


@given(cases())
@example(case("sqrt(1 + arctan2(x, 1.1 + x**2)**2) / (1.1 + square(expm1(tanh(x)))**2)", 1e-5, 0.0))
@example(case("sqrt(1 + (x + hypot(x, x))**2)", 0.015625, 0.0))
@example(case("log2(1 + arctan2(sinh(tanh(x)), 1.1 + logaddexp(x, y)**2)**2)", 0.0, 0.0))
def test_assert_backends_agree_on_drawn_functions(fa):
    f, args = fa
    note_case(f, args)
    dk.assert_backends_agree(f, args, op="grad", argnums=(0, 1), time_budget=0)


def test_harness_numeric_tolerance_where_f_and_its_derivative_vanish():
    """Regression: where f and f' both vanish (x = 0) the numeric cap sqrt(eps) * max(|f'|, |f|/|x|)
    collapsed to 3e-24, failing an honest error of 7.2e-14 (estimate 5.0e-14). The cap now scales
    with the largest intermediate value (here 1.58), which the round-off scales with."""
    dk.assert_backends_agree("log2(1 + arctan2(sinh(tanh(x)), 1.1 + logaddexp(x, 0)**2)**2)", (0.0,))


def test_harness_numeric_tolerance_for_a_small_derivative():
    """Regression: the numeric tolerance was capped at sqrt(eps) relative to a tiny df/dx (fixed in 0ef3448)."""
    dk.assert_backends_agree("hypot(1, x) / (1.1 + expm1(x)**4)", (5e-6,), op="grad")
