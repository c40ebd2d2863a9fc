"""Tests of the numeric backend (``dk.Numeric``) and its tools.

1. stencil weights (Fornberg) against the textbook tables;
2. the convergence order of each method, measured by halving the step;
3. complex step refused on non-analytic code, with the reason in the result;
4. domain edges: central stencils shrink or turn one-sided, never NaN;
5. float32: steps, result dtype and accuracy follow the dtype;
6. the Taylor test and the error-vs-step sweep;
7. agreement with the AD backends on the table's elementwise primitives,
   within the reported error estimates (which must also be tight);
8. every operator (grad, jacobian, hessian, derivative of orders 1-4, jvp, vjp)
   against AD and hand values, with JAX's shapes and argnums;
9. vectorized evaluation, evaluation counts, configuration, nesting.

Tolerances derive from the dtype's epsilon and each method's order (see the
constants); points are fixed.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import mpmath
import numpy as np
import pytest

import diffkit as dk
from diffkit.backends.numeric import NumericResult, fornberg_weights
from diffkit.backends.numeric.evaluator import _Evaluator
from diffkit.backends.numeric.lines import _contour_level
from diffkit.backends.numeric.stencils import _extrapolation_weights
from diffkit.primitives import PRIMITIVES

EPS = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)

ORDER_SLACK = 0.25
"""An observed convergence order log2(e(h) / e(h/2)) is within this of the
theoretical one once the step is in the asymptotic regime (the next term of the
error series changes the ratio by a few percent)."""

AD_RTOL = 16 * EPS
"""What the AD reference itself may be off by (a few rounded operations): added
to the numeric error estimate when the two are compared."""

SMOOTH_ESTIMATE = 1e-6
"""An error estimate for a smooth function at a well-scaled point must not be
looser than this (relative): an estimate that always says 'about 1' is useless."""

mpmath.mp.dps = 50


def truth(f: Callable[[Any], Any], x: float, n: int = 1) -> float:
    return float(mpmath.diff(f, mpmath.mpf(x), n))


def observed_order(err_h: float, err_half: float) -> float:
    return math.log2(err_h / err_half)


# ---------------------------------------------------------------------------
# 1. Stencil weights
# ---------------------------------------------------------------------------

TABLES = [
    # (offsets, derivative order, weights) from the standard tables (Fornberg 1988, Table 1)
    ([-1, 0, 1], 1, [-1 / 2, 0, 1 / 2]),
    ([-2, -1, 0, 1, 2], 1, [1 / 12, -2 / 3, 0, 2 / 3, -1 / 12]),
    ([-1, 0, 1], 2, [1, -2, 1]),
    ([-2, -1, 0, 1, 2], 2, [-1 / 12, 4 / 3, -5 / 2, 4 / 3, -1 / 12]),
    ([-2, -1, 0, 1, 2], 3, [-1 / 2, 1, 0, -1, 1 / 2]),
    ([-2, -1, 0, 1, 2], 4, [1, -4, 6, -4, 1]),
    ([0, 1], 1, [-1, 1]),
    ([0, 1, 2], 1, [-3 / 2, 2, -1 / 2]),
    ([0, 1, 2, 3], 1, [-11 / 6, 3, -3 / 2, 1 / 3]),
    ([0, 1, 2, 3], 2, [2, -5, 4, -1]),
    ([-2, -1, 0], 1, [1 / 2, -2, 3 / 2]),
    ([-3, -1, 1, 3], 3, [-1 / 8, 3 / 8, -3 / 8, 1 / 8]),
]


@pytest.mark.parametrize("offsets, order, expected", TABLES)
def test_fornberg_weights_match_tables(offsets: list[int], order: int, expected: list[float]) -> None:
    np.testing.assert_allclose(fornberg_weights(offsets, order), expected, rtol=8 * EPS, atol=8 * EPS)


def test_fornberg_weights_columns_and_exactness() -> None:
    # several stencils at once (one per column), and exactness on a polynomial of full degree
    nodes = np.array([[-1.0, -2.0], [0.3, 0.5], [1.0, 1.5], [2.5, 3.0]])
    w = fornberg_weights(nodes, 2)
    for col in range(2):
        np.testing.assert_allclose(w[:, col], fornberg_weights(nodes[:, col], 2), rtol=4 * EPS)
        poly = lambda t: 2.0 - t + 0.5 * t**2 + 0.25 * t**3  # f''(0) = 1
        assert abs(np.sum(w[:, col] * poly(nodes[:, col])) - 1.0) < 64 * EPS
    with pytest.raises(ValueError, match="needs more than"):
        fornberg_weights([0.0, 1.0], 2)


def test_extrapolation_weights_are_richardson() -> None:
    # one step of Richardson for an h**2 error with h and h/2: (4 D(h/2) - D(h)) / 3
    np.testing.assert_allclose(_extrapolation_weights(np.array([1.0, 0.5]), [2]), [-1 / 3, 4 / 3], rtol=4 * EPS)
    # h and h/2 with error terms h**2 and h**4 from three steps
    c = _extrapolation_weights(np.array([1.0, 0.5, 0.25]), [2, 4])
    np.testing.assert_allclose(c, [1 / 45, -20 / 45, 64 / 45], rtol=16 * EPS)


# ---------------------------------------------------------------------------
# 2. Convergence orders
# ---------------------------------------------------------------------------

F_SMOOTH = (np.exp, mpmath.exp, 0.3)


@pytest.mark.parametrize("method, order, expected", [
    ("forward", 1, 1), ("backward", 1, 1), ("forward", 2, 2), ("backward", 3, 3),
    ("central", 2, 2), ("central", 4, 4), ("central", 6, 6),
])
def test_finite_difference_convergence_order(method: str, order: int, expected: int) -> None:
    f, g, x = F_SMOOTH
    t = truth(g, x)
    # steps in the truncation-dominated range for this order: large enough that
    # round-off (eps / h) stays far below the truncation error h**p
    h = {1: 1e-3, 2: 1e-2, 3: 4e-2, 4: 5e-2, 6: 2e-1}[expected]
    errs = [abs(dk.Numeric(method=method, order=order, step=s).derivative_result(f, x).value - t)
            for s in (h, h / 2)]
    assert abs(observed_order(*errs) - expected) < ORDER_SLACK


@pytest.mark.parametrize("n", [1, 2])
def test_second_and_first_derivative_stencils_converge(n: int) -> None:
    f, g, x = np.sin, mpmath.sin, 0.7
    t = truth(g, x, n)
    h = 2e-2
    errs = [abs(dk.Numeric(method="central", step=s).derivative_result(f, x, order=n).value - t)
            for s in (h, h / 2)]
    assert abs(observed_order(*errs) - 2) < ORDER_SLACK


def test_complex_step_convergence_order_and_round_off() -> None:
    f, g, x = F_SMOOTH
    t = truth(g, x)
    # with a large step the truncation h**2 f'''/6 shows: order 2
    errs = [abs(dk.Numeric(method="complex", step=s).derivative_result(f, x).value - t) for s in (0.02, 0.01)]
    assert abs(observed_order(*errs) - 2) < ORDER_SLACK
    # with the default (tiny) step nothing but round-off is left: no subtraction
    r = dk.Numeric(method="complex").derivative_result(f, x)
    assert abs(r.value - t) <= 2 * EPS * abs(t)
    assert r.step < 1e-20


@pytest.mark.parametrize("n", [2, 3, 4])
def test_complex_contour_convergence_order(n: int) -> None:
    # n points on a circle of radius r (and their mirror images): error O(r**(2n))
    f, g, x = np.exp, mpmath.exp, 0.3
    t = truth(g, x, n)
    ev = _Evaluator(f, [x], [0], None)
    U = np.ones((1, 1))
    r = {2: 0.4, 3: 0.8, 4: 1.2}[n]
    errs = [abs(float(_contour_level(ev, U, n, np.array([s]))[0][0, 0]) - t) for s in (r, r / 2)]
    assert abs(observed_order(*errs) - 2 * n) < 2 * ORDER_SLACK


def test_richardson_beats_every_plain_stencil() -> None:
    f, g, x = np.log1p, mpmath.log1p, 0.4
    t = truth(g, x)
    rich = dk.Numeric(method="richardson").derivative_result(f, x)
    # extrapolated to high order: round-off limited, about eps**(6/7) relative
    assert abs(rich.value - t) <= 1e-13 * abs(t)
    assert abs(rich.value - t) <= rich.error <= SMOOTH_ESTIMATE * abs(t)
    for order in (2, 4):
        plain = dk.Numeric(method="central", order=order).derivative_result(f, x)
        assert abs(plain.value - t) > abs(rich.value - t)


# ---------------------------------------------------------------------------
# 3. Complex step refused where the code is not analytic
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("f, x, why", [
    (lambda x: np.abs(x) * np.sin(x), -1.2, "absolute is not complex-analytic"),
    (lambda x: np.maximum(x, 0.5) * x, 1.5, "maximum is not complex-analytic"),
    (lambda x: np.where(x > 0, np.sin(x), x), 0.8, "greater is piecewise constant"),
    (lambda x: np.hypot(x, 2.0), 0.5, "hypot is not complex-analytic"),
    (lambda x: np.logaddexp(x, 1.0), 0.3, "logaddexp is not complex-analytic"),
    (lambda x: np.linalg.slogdet(np.stack([np.stack([x, 1.0]), np.stack([2.0, x])]))[1], 3.0,
     "logabsdet is not complex-analytic"),
    (lambda x: math.sin(x), 0.4, "does not run on diffkit's traced values"),
])
def test_complex_step_refused_with_reason(f: Callable[[Any], Any], x: float, why: str) -> None:
    ad = float(dk.derivative(f, backend="forward")(x)) if "math" not in why and "traced" not in why \
        else math.cos(x)
    for method in ("auto", "complex"):
        r = dk.Numeric(method=method).derivative_result(f, x)
        assert r.method == "richardson"
        assert r.reason is not None and r.reason.startswith("complex step refused") and why in r.reason
        assert abs(r.value - ad) <= r.error + AD_RTOL * abs(ad)


def test_two_reasons_are_named_together() -> None:
    r = dk.Numeric().derivative_result(lambda x: np.abs(x) + np.maximum(x, 0.0), 1.3)
    assert "absolute, maximum are not complex-analytic" in r.reason


def test_complex_step_follows_the_table_not_numpys_complex_semantics() -> None:
    # np.linalg.norm of a complex array conjugates (|z|); through diffkit's dispatch it
    # is sqrt(sum(x*x)), whose analytic continuation the complex step needs
    f = lambda v: np.linalg.norm(v) * np.var(v)
    v = np.array([0.3, -1.2, 2.0])
    r = dk.Numeric().gradient_result(f, (v,))
    assert r.method == "complex" and r.reason is None
    np.testing.assert_allclose(r.value, dk.grad(f)(v), rtol=8 * EPS)


def test_where_with_a_constant_mask_is_analytic() -> None:
    mask = np.array([True, False, True])
    f = lambda v: np.sum(np.where(mask, np.sin(v), v**2))
    r = dk.Numeric().gradient_result(f, (np.array([0.1, 0.2, 0.3]),))
    assert r.method == "complex"
    np.testing.assert_allclose(r.value, [np.cos(0.1), 0.4, np.cos(0.3)], rtol=4 * EPS)


def test_refusal_is_remembered_per_function_and_constants() -> None:
    calls: list[int] = []

    def f(x: Any, mode: str) -> Any:
        calls.append(1)
        return np.abs(x) if mode == "abs" else np.sin(x)

    B = dk.Numeric(vectorize=False)  # one call per point: calls == evaluations
    r1 = B.gradient_result(f, (0.7, "abs"))
    first = len(calls)
    calls.clear()
    r2 = B.gradient_result(f, (0.7, "abs"))
    assert r1.reason == r2.reason and "absolute" in r2.reason
    # the refused complex evaluation is not repeated; the values are the same
    assert r2.nfev == len(calls) == first - 1 and r2.value == r1.value
    # another constant is another signature: no refusal leaks over
    r3 = B.gradient_result(f, (0.7, "sin"))
    assert r3.method == "complex" and r3.reason is None


# ---------------------------------------------------------------------------
# 4. Domain edges
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["sqrt", "log"])
@pytest.mark.parametrize("method", ["auto", "richardson", "central"])
def test_just_right_of_zero(name: str, method: str) -> None:
    f, g, x = getattr(np, name), getattr(mpmath, name), 1e-10
    t = truth(g, x)
    r = dk.Numeric(method=method).derivative_result(f, x)
    assert np.isfinite(r.value) and np.isfinite(r.error)
    # central stencils shrink to the distance to the edge: the plain one keeps its
    # order-2 accuracy eps**(2/3), the adaptive ones reach round-off
    rtol = {"auto": 4 * EPS, "richardson": 1e-12, "central": 1e-9}[method]
    assert abs(r.value - t) <= rtol * abs(t)
    assert abs(r.value - t) <= r.error


@pytest.mark.parametrize("method", ["richardson", "central"])
def test_on_the_edge_one_sided(method: str) -> None:
    # sqrt(x)**2 is x for x >= 0 and NaN below: at 0 only a forward stencil exists
    f = lambda x: np.sqrt(x) ** 2 * np.exp(x)
    r = dk.Numeric(method=method).derivative_result(f, 0.0)
    assert "forward" in r.method and "one-sided (forward)" in r.reason
    tol = 1e-13 if method == "richardson" else 1e-9
    assert abs(r.value - 1.0) <= tol and abs(r.value - 1.0) <= r.error
    # and at the right end of [.., 1], backward
    g = lambda x: np.sqrt(1.0 - x) ** 2 * np.sin(x)
    r = dk.Numeric(method=method).derivative_result(g, 1.0)
    assert "backward" in r.method and abs(r.value + math.sin(1.0)) <= r.error


def test_edge_via_python_exceptions() -> None:
    # math.sqrt raises outside its domain: such a point counts as outside, like NaN
    r = dk.Numeric().derivative_result(lambda x: math.sqrt(x) * 3.0, 1e-8)
    assert r.method == "richardson" and "traced values" in r.reason
    t = 1.5 / math.sqrt(1e-8)
    assert abs(r.value - t) <= 1e-11 * t and abs(r.value - t) <= r.error


def test_no_finite_neighbour_is_nan_with_reason() -> None:
    f = lambda x: np.where(x == 0.5, 1.0, np.nan) * x
    r = dk.Numeric(method="richardson").derivative_result(f, 0.5)
    assert np.isnan(r.value) and "no finite stencil" in r.reason


# ---------------------------------------------------------------------------
# 5. float32
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["auto", "richardson", "central", "forward"])
def test_float32_steps_dtype_and_accuracy(method: str) -> None:
    x = np.float32(0.7)
    f = lambda v: np.sin(v) * np.exp(v)
    t = truth(lambda v: mpmath.sin(v) * mpmath.exp(v), float(x))
    r = dk.Numeric(method=method).derivative_result(f, x)
    assert r.value.dtype == np.float32
    # accuracy follows float32's epsilon: round-off for complex step, the optimal
    # stencil error eps**(p/(p+1)) for plain ones (p = 2 central, 1 forward)
    rtol = {"auto": 8 * EPS32, "richardson": 64 * EPS32, "central": 16 * EPS32 ** (2 / 3),
            "forward": 16 * EPS32 ** 0.5}[method]
    assert abs(float(r.value) - t) <= rtol * abs(t)
    assert abs(float(r.value) - t) <= float(r.error)
    if method == "central":  # the step is eps32**(1/3) (times the scale max(|x|, 1)), not float64's
        assert 0.5 * EPS32 ** (1 / 3) <= r.step <= 2 * EPS32 ** (1 / 3)
    if method == "forward":
        assert 0.5 * EPS32 ** 0.5 <= r.step <= 2 * EPS32 ** 0.5


def test_float32_arrays_keep_their_dtype() -> None:
    v = np.array([0.5, 1.5], dtype=np.float32)
    f = lambda v: np.sum(np.sin(v) * v)
    for backend in (dk.Numeric(), dk.Numeric(method="richardson")):
        g = dk.grad(f, backend=backend)(v)
        H = dk.hessian(f, backend=backend)(v)
        J = dk.jacobian(lambda v: np.sin(v) * v, backend=backend)(v)
        assert g.dtype == H.dtype == J.dtype == np.float32
        np.testing.assert_allclose(g, np.sin(v) + v * np.cos(v), rtol=64 * EPS32)
        # second differences lose eps**(1/3) of float32's digits (round-off eps / h**2
        # against the extrapolated truncation); the complex contour keeps nearly all
        rtol = 64 * EPS32 if backend.method == "auto" else 16 * EPS32 ** (2 / 3)
        exact = np.diag(2 * np.cos(v.astype(float)) - v * np.sin(v.astype(float)))
        np.testing.assert_allclose(H, exact, atol=rtol * 2)
        r = backend.hessian_result(f, (v,))
        assert np.all(np.abs(r.value - exact) <= r.error + 4 * EPS32)


# ---------------------------------------------------------------------------
# 6. Taylor test and step sweep
# ---------------------------------------------------------------------------

def _rosen(v: Any) -> Any:
    return np.sum(100.0 * (v[1:] - v[:-1] ** 2) ** 2 + (1 - v[:-1]) ** 2)


def test_taylor_test_passes_true_gradient_and_fails_perturbed() -> None:
    x = np.array([0.3, -0.4, 1.1, 0.8])
    dx = np.array([1.0, 0.5, -0.7, 0.2])
    res = dk.taylor_test(_rosen, x, dx)
    assert res.ok and res.min_order > 1.9
    g = dk.grad(_rosen)(x)
    assert dk.taylor_test(_rosen, x, dx, grad=g).ok
    bad = dk.taylor_test(_rosen, x, dx, grad=g * 1.01)
    assert not bad.ok and bad.min_order < 1.2
    # the zeroth-order remainder shrinks as h
    assert np.all(np.abs(res.orders0 - 1) < 0.2)
    assert "passed" in str(res) and "FAILED" in str(bad)


def test_taylor_test_on_a_scalar_and_a_linear_function() -> None:
    assert dk.taylor_test(np.sin, 0.4, 1.0, grad=np.cos).ok
    # a linear function: every remainder is round-off, which is a pass
    res = dk.taylor_test(lambda v: 3.0 * v + 1.0, 0.5, 1.0, grad=3.0)
    assert res.ok and math.isinf(res.min_order)


def _baydin(x: Any) -> Any:
    # Baydin et al. 2018, Fig. 3
    return 64 * x * (1 - x) * (1 - 2 * x) ** 2 * (1 - 8 * x + 8 * x * x) ** 2


def test_step_sweep_v_shapes_baydin_fig3() -> None:
    s = dk.step_sweep(_baydin, 0.2)
    assert s.reason is None
    h_f, e_f = s.best("forward")
    h_c, e_c = s.best("central")
    _, e_cs = s.best("complex")
    assert 1e-9 <= e_f <= 1e-6 and 1e-12 <= e_c <= 1e-8 and e_cs <= 1e-14
    # the bottoms sit near the textbook steps sqrt(eps) and eps**(1/3)
    assert 1e-10 < h_f < 1e-6 and 1e-7 < h_c < 1e-3
    # a V: round-off on the left, truncation on the right
    for errs in (s.forward, s.central):
        finite = errs[np.isfinite(errs)]  # below eps * x the step vanishes: x + h == x
        assert finite[-1] > 100 * finite.min() and finite[0] > 100 * finite.min()
    # the complex step stays at round-off for every small step
    assert np.all(s.complex[s.steps <= 1e-8] <= 1e-14)


def test_step_sweep_non_analytic_has_no_complex_column() -> None:
    s = dk.step_sweep(lambda x: np.abs(x) * x, 0.5, steps=[1e-3, 1e-6], reference=1.0)
    assert np.all(np.isnan(s.complex)) and "absolute" in s.reason
    assert s.best("central")[1] < 1e-8


# ---------------------------------------------------------------------------
# 7. Agreement with AD on the table's elementwise primitives
# ---------------------------------------------------------------------------

def _inside(lo: float, hi: float, k: int) -> float:
    """A point inside (lo, hi), different for each argument k (ties of maximum avoided)."""
    if math.isfinite(lo) and math.isfinite(hi):
        return lo + (hi - lo) * (0.35, 0.7, 0.55)[k]
    if math.isfinite(lo):
        return lo + (0.8, 1.9, 1.2)[k]
    if math.isfinite(hi):
        return hi - (0.8, 1.9, 1.2)[k]
    return (0.45, -1.3, 0.9)[k]


SMOOTH_PRIMS = [name for name, p in PRIMITIVES.items()
                if p.elementwise and p.differentiable and p.nargs in (1, 2) and name != "sign"]


@pytest.mark.parametrize("name", SMOOTH_PRIMS)
@pytest.mark.parametrize("method", ["auto", "richardson"])
def test_table_primitives_agree_with_ad(name: str, method: str) -> None:
    prim = PRIMITIVES[name]
    args = [_inside(lo, hi, k) for k, (lo, hi) in enumerate(prim.domain)]
    f = lambda *a: getattr(np, name)(*a) if hasattr(np, name) else prim.numpy(*a)
    nums = tuple(range(prim.nargs))
    r = dk.Numeric(method=method).gradient_result(f, tuple(args), argnums=nums)
    ad = dk.grad(f, argnums=nums)(*args)
    expect_complex = prim.complex_safe and name not in ("logaddexp", "logaddexp2")
    assert (r.method == "complex") == (expect_complex and method == "auto"), r.reason
    for v, e, a in zip(r.value, r.error, ad):
        assert abs(v - a) <= e + AD_RTOL * abs(a)
        assert e <= SMOOTH_ESTIMATE * max(abs(a), 1.0)


@pytest.mark.parametrize("name", [n for n in SMOOTH_PRIMS if PRIMITIVES[n].nargs == 1])
def test_table_second_derivatives_agree_with_ad(name: str) -> None:
    prim = PRIMITIVES[name]
    x = _inside(*prim.domain[0], 0)
    f = getattr(np, name)
    r = dk.Numeric().derivative_result(f, x, order=2)
    ad = float(dk.derivative(f, order=2)(x))
    assert abs(r.value - ad) <= r.error + 4 * AD_RTOL * abs(ad)
    assert r.error <= SMOOTH_ESTIMATE * max(abs(ad), 1.0)


# ---------------------------------------------------------------------------
# 8. Operators, shapes and argnums
# ---------------------------------------------------------------------------

def f_xy(x: Any, y: Any) -> Any:
    return np.sin(x) * np.exp(y) + x**2 * y


BACKENDS = [dk.Numeric(), dk.Numeric(method="richardson"), "numeric"]
RTOL_OP = 1e-9
"""Operators' values against AD: Richardson's and complex step's accuracy is far
better (round-off), Hessian entries by polarization lose a few digits to cancellation."""


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_grad_and_value_and_grad(backend: Any) -> None:
    g = dk.grad(f_xy, argnums=(0, 1), backend=backend)(1.0, 2.0)
    assert isinstance(g, tuple) and len(g) == 2
    np.testing.assert_allclose(g, dk.grad(f_xy, argnums=(0, 1))(1.0, 2.0), rtol=RTOL_OP)
    v, gx = dk.value_and_grad(f_xy, backend=backend)(1.0, 2.0)
    assert v == f_xy(1.0, 2.0) and np.shape(gx) == ()
    (v, aux), gx = dk.value_and_grad(lambda x, y: (f_xy(x, y), "aux"), has_aux=True, backend=backend)(1.0, 2.0)
    assert aux == "aux" and abs(gx - dk.grad(f_xy)(1.0, 2.0)) < RTOL_OP * 10
    with pytest.raises(dk.ShapeError, match="scalar"):
        dk.grad(lambda v: v * 2, backend=backend)(np.ones(2))


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_jacobian_shapes_as_jax(backend: Any) -> None:
    A = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])

    def f(W: Any, v: Any) -> Any:
        return np.tanh(W @ v)[:, None] * np.ones((1, 4))   # out (2, 4)

    W = A * 0.3
    v = np.array([0.2, -0.4, 0.1])
    Jw, Jv = dk.jacobian(f, argnums=(0, 1), backend=backend)(W, v)
    Rw, Rv = dk.jacobian(f, argnums=(0, 1))(W, v)
    assert Jw.shape == (2, 4, 2, 3) and Jv.shape == (2, 4, 3)
    np.testing.assert_allclose(Jw, Rw, rtol=RTOL_OP, atol=RTOL_OP)
    np.testing.assert_allclose(Jv, Rv, rtol=RTOL_OP, atol=RTOL_OP)
    assert dk.jacobian(np.sin, backend=backend)(0.5).shape == ()


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_hessian_shapes_and_values(backend: Any) -> None:
    H = dk.hessian(f_xy, argnums=(0, 1), backend=backend)(1.0, 2.0)
    R = dk.hessian(f_xy, argnums=(0, 1))(1.0, 2.0)
    np.testing.assert_allclose(np.array(H, dtype=float), np.array(R, dtype=float), rtol=RTOL_OP, atol=RTOL_OP)
    f = lambda v: np.array([np.sum(v**3), v[0] * v[1]])   # vector output: out + in + in
    v = np.array([1.0, 2.0])
    Hv = dk.hessian(f, backend=backend)(v)
    assert Hv.shape == (2, 2, 2)
    np.testing.assert_allclose(Hv, [[[6, 0], [0, 12]], [[0, 1], [1, 0]]], atol=1e-8)
    blocks = dk.hessian(lambda a, b: np.sum(a**2) * b, argnums=(0, 1), backend=backend)(np.ones(3), 2.0)
    assert blocks[0][0].shape == (3, 3) and blocks[0][1].shape == (3,) and blocks[1][1].shape == ()


@pytest.mark.parametrize("order, expected", [(1, math.cos(0.5)), (2, -math.sin(0.5)),
                                             (3, -math.cos(0.5)), (4, math.sin(0.5))])
@pytest.mark.parametrize("method", ["auto", "richardson"])
def test_derivative_orders(order: int, expected: float, method: str) -> None:
    d = dk.derivative(np.sin, order=order, backend=dk.Numeric(method=method))(0.5)
    # complex contour: round-off in r |f'| / r**n; finite differences: eps / h**n
    rtol = {"auto": 1e-12, "richardson": {1: 1e-13, 2: 1e-10, 3: 1e-8, 4: 1e-6}[order]}[method]
    assert abs(d - expected) <= rtol * abs(expected)
    r = dk.Numeric(method=method).derivative_result(np.sin, 0.5, order=order)
    assert abs(r.value - expected) <= r.error
    assert dk.Numeric().derivative_result(np.sin, 0.5, order=0).value == np.sin(0.5)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_jvp_and_vjp(backend: Any) -> None:
    f = lambda x, y: np.sin(x) * y[::-1]
    x, y = np.array([0.3, 1.1]), np.array([2.0, -1.0])
    tx, ty = np.array([1.0, 0.5]), np.array([-0.2, 0.3])
    out, t = dk.jvp(f, (x, y), (tx, ty), backend=backend)
    out_r, t_r = dk.jvp(f, (x, y), (tx, ty), backend="forward")
    np.testing.assert_array_equal(out, out_r)
    np.testing.assert_allclose(t, t_r, rtol=RTOL_OP)
    out, vjp_fn = dk.vjp(f, x, y, backend=backend)
    ct = np.array([1.0, -2.0])
    cts = vjp_fn(ct)
    cts_r = dk.vjp(f, x, y)[1](ct)
    assert len(cts) == 2
    for a, b in zip(cts, cts_r):
        np.testing.assert_allclose(a, b, rtol=RTOL_OP)
    # tangents of any size (they are rescaled to a relative step internally), large arguments
    for scale in (0.3, 7.0):
        xs = x * 50.0
        _, t = dk.jvp(f, (xs, y), (tx * scale, ty * scale), backend=backend)
        np.testing.assert_allclose(t, dk.jvp(f, (xs, y), (tx * scale, ty * scale), backend="forward")[1],
                                   rtol=RTOL_OP)
    # zero tangents cost nothing but f(x) and give zeros
    _, t0 = dk.jvp(f, (x, y), (np.zeros(2), np.zeros(2)), backend=backend)
    assert np.all(t0 == 0)


def test_jvp_batched_tangents_and_cost() -> None:
    B = dk.Numeric()
    f = lambda v: np.sin(v) * 2.0
    v = np.array([0.1, 0.2, 0.3])
    T = np.eye(3)
    out, t = B.jvp(f, [v], [0], [T], nb=1)
    np.testing.assert_allclose(t, np.diag(2 * np.cos(v)), rtol=8 * EPS, atol=1e-300)
    r = B.jvp_result(lambda v: np.stack([v[0] * v[1], np.exp(v[1])]), (np.array([0.3, -0.8]),),
                     (np.array([-0.545, -0.366]),))
    np.testing.assert_allclose(r.value, [-0.545 * -0.8 - 0.366 * 0.3, -0.366 * np.exp(-0.8)], rtol=8 * EPS)
    r = B.jvp_result(lambda x, y: x * np.exp(y), (2.0, 0.0), (1.0, 1.0))
    # complex step: one evaluation for the derivative, two (about 1000 ulps on either side of x)
    # for its round-off, plus f(x)
    assert r.method == "complex" and r.nfev == 4 and abs(r.value - 3.0) <= r.error
    r = dk.Numeric(method="forward").jvp_result(lambda x: np.exp(x), (0.5,), (1.0,))
    assert r.method == "forward" and r.nfev <= 4


# ---------------------------------------------------------------------------
# 9. Vectorization, counts, configuration, nesting
# ---------------------------------------------------------------------------

class Counter:
    def __init__(self, f: Callable[..., Any]):
        self.f = f
        self.calls: list[tuple[int, ...]] = []
        self.points = 0

    def __call__(self, v: Any) -> Any:
        shape = np.shape(v)
        self.calls.append(shape)
        self.points += int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        return self.f(v)


@pytest.mark.parametrize("f, broadcasts", [
    (lambda v: np.sin(v) * v[..., ::-1], True),
    (lambda v: v - np.mean(v), False),          # right shape, rows mixed: must be caught
    (lambda v: np.sum(v**2), False),            # wrong shape
])
def test_vectorized_evaluation(f: Callable[..., Any], broadcasts: bool) -> None:
    v = np.array([0.3, 1.1, -0.4, 2.0])
    c = Counter(f)
    J = dk.jacobian(c, backend=dk.Numeric(method="richardson"))(v)
    np.testing.assert_allclose(J, dk.jacobian(f, backend="forward")(v), rtol=1e-10, atol=1e-10)
    batched = sum(1 for s in c.calls if len(s) > 1)
    if broadcasts:
        assert batched >= 3 and len(c.calls) < 20
    else:
        assert batched <= 1  # the one attempt that found out
    looped = dk.jacobian(f, backend=dk.Numeric(method="richardson", vectorize=False))(v)
    np.testing.assert_allclose(J, looped, rtol=1e-12, atol=1e-12)


def test_nfev_counts_every_point() -> None:
    f = Counter(lambda v: np.sum(np.abs(v) ** 3))
    r = dk.Numeric(vectorize=False).gradient_result(f, (np.array([0.5, -1.0, 2.0]),))
    assert r.nfev == f.points == len(f.calls)
    c = Counter(np.exp)
    r = dk.Numeric().derivative_result(c, 0.3)
    # complex step, its round-off estimate (two points), and f(x) itself (a NaN there means no
    # derivative)
    assert r.nfev == 4 == len(c.calls)


def test_outside_the_domain_is_nan_not_a_confident_number() -> None:
    # regression: the complex step through log(-1) is finite (2.6e31-style garbage)
    r = dk.Numeric().derivative_result(np.log, -1.0)
    assert np.isnan(r.value)
    assert np.isnan(dk.grad(np.sqrt, backend="numeric")(-1.0))


def test_result_object_fields() -> None:
    r = dk.Numeric().gradient_result(f_xy, (1.0, 2.0), argnums=(0, 1))
    assert isinstance(r, NumericResult) and isinstance(r.value, tuple) and isinstance(r.error, tuple)
    assert r.method == "complex" and r.reason is None and r.nfev >= 3
    assert all(0 < s < 1e-20 for s in r.step)
    with pytest.raises(AttributeError):
        r.value = 0  # type: ignore[misc]
    r = dk.Numeric(method="richardson").hessian_result(lambda v: np.sum(np.sin(v)), (np.ones(2),))
    assert r.value.shape == r.error.shape == r.step.shape == (2, 2)
    assert "nfev=" in repr(r)


def test_configuration() -> None:
    assert "numeric" in dk.backends()
    assert isinstance(dk.get_backend("numeric"), dk.Numeric)
    with pytest.raises(ValueError, match="method"):
        dk.Numeric(method="spline")
    with pytest.raises(ValueError, match="order"):
        dk.Numeric(order=0)
    with pytest.raises(ValueError, match="step"):
        dk.Numeric(step=-1.0)
    assert repr(dk.Numeric(method="central", order=4)) == "Numeric(method='central', order=4)"
    assert dk.Numeric() == dk.Numeric() and hash(dk.Numeric(step=0.1)) == hash(dk.Numeric(step=0.1))


def test_nesting() -> None:
    # numeric over numeric works (values, not traces, cross the boundary)
    d2 = dk.derivative(dk.derivative(np.sin, backend="numeric"), backend="numeric")(0.5)
    assert abs(d2 + math.sin(0.5)) < 1e-8
    # AD over numeric would differentiate a difference quotient: refused with advice
    with pytest.raises(dk.TracingError, match="concrete points"):
        dk.grad(dk.grad(np.sin, backend="numeric"), backend="reverse")(0.5)


def test_custom_jvp_function_runs_as_written() -> None:
    @dk.custom_jvp
    def softplus(x: Any) -> Any:
        return np.log1p(np.exp(x))

    @softplus.defjvp
    def _(primals: Any, tangents: Any) -> Any:
        (x,), (t,) = primals, tangents
        return softplus(x), t * 999.0   # a wrong rule: numeric does not use it

    r = dk.Numeric().derivative_result(softplus, 0.0)
    assert r.method == "complex" and abs(r.value - 0.5) <= r.error


def test_complex_inputs_are_refused() -> None:
    with pytest.raises(TypeError, match="real"):
        dk.grad(lambda z: np.sum(z), backend="numeric")(np.array([1 + 1j]))


# ---------------------------------------------------------------------------
# Error estimates on many smooth functions (the benchmark's figure, small and large)
# ---------------------------------------------------------------------------

def _compositions(count: int, seed: int) -> list[tuple[Callable[..., Any], Callable[..., Any], float]]:
    rng = np.random.default_rng(seed)
    ops = [("sin", np.sin, mpmath.sin), ("exp", np.exp, mpmath.exp), ("tanh", np.tanh, mpmath.tanh),
           ("atan", np.arctan, mpmath.atan), ("sq", np.square, lambda v: v * v),
           ("hyp", lambda v: np.sqrt(1 + v * v), lambda v: mpmath.sqrt(1 + v * v)),
           ("hypot", lambda v: np.hypot(v, 0.7), lambda v: mpmath.hypot(v, 0.7))]
    out = []
    for _ in range(count):
        picks = [ops[i] for i in rng.integers(0, len(ops), size=rng.integers(1, 4))]
        cs = rng.uniform(0.5, 1.5, size=len(picks))

        def fn(v: Any, picks: Any = picks, cs: Any = cs) -> Any:
            for (_, npf, _), c in zip(picks, cs):
                v = npf(c * v)
            return v

        def mf(v: Any, picks: Any = picks, cs: Any = cs) -> Any:
            for (_, _, mpf), c in zip(picks, cs):
                v = mpf(c * v)
            return v

        out.append((fn, mf, float(rng.uniform(-1.5, 1.5))))
    return out


def _coverage(count: int, seed: int, order: int) -> tuple[float, float]:
    hits, digits = [], []
    for fn, mf, x in _compositions(count, seed):
        t = truth(mf, x, order)
        r = dk.Numeric().derivative_result(fn, x, order=order)
        err = abs(float(r.value) - t)
        hits.append(err <= float(r.error))
        digits.append(-math.log10(max(err / abs(t), 1e-17)) if t else 16.0)
    return float(np.mean(hits)), float(np.median(digits))


def test_error_estimates_bound_the_error_small() -> None:
    cover, digits = _coverage(24, seed=3, order=1)
    assert cover == 1.0 and digits >= 13


@pytest.mark.slow
@pytest.mark.parametrize("order", [1, 2])
def test_error_estimates_bound_the_error(order: int) -> None:
    cover, digits = _coverage(300, seed=11, order=order)
    # 96-97% of the first derivatives and 99.7% of the second before the estimates were made
    # bounds (bench/bench_estimates.py); 100% of both since
    assert cover >= 0.99 and digits >= (13 if order == 1 else 11)


def test_complex_step_estimate_with_an_argument_at_zero() -> None:
    # Regression: the step is relative to |x_i| (tiny at x_i = 0), and the round-off measured on
    # the combination of all directions was divided by each direction's own step: 9.7e61 for b.
    w, b = np.array([1.0, 2.0, 3.0]), np.zeros(3)
    r = dk.Numeric().gradient_result(lambda w, b: np.sum(np.sin(w) + b), (w, b), argnums=(0, 1))
    assert r.method == "complex"
    np.testing.assert_allclose(r.value[0], np.cos(w), rtol=4 * EPS)
    np.testing.assert_array_equal(r.value[1], 1.0)
    for err, exact in zip(r.error, (np.cos(w), np.ones(3))):
        assert np.all(err <= 64 * EPS * np.max(np.abs(exact)))
    # mixed magnitudes: the estimate still bounds the error of every element
    x = np.array([1e-3, 0.0, 1.0, 1e3])
    r = dk.Numeric().gradient_result(lambda v: np.sum(np.sin(v) * v), (x,))
    exact = np.sin(x) + x * np.cos(x)
    assert np.all(np.abs(r.value - exact) <= r.error + 4 * EPS * np.abs(exact))
    assert np.all(r.error <= 1e-12 * np.max(np.abs(exact)))
