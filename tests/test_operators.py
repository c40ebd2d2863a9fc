"""The public operators on both AD backends: shapes, argnums, nesting, custom rules.

Expected values are hand derivations (stated next to each) or another
operator's result on the other backend.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import diffkit as dk

BACKENDS = ["symbolic", "forward", "reverse"]
EPS = np.finfo(float).eps


def f_xy(x, y):
    return np.sin(x) * np.exp(y) + x**2 * y


def grad_f_xy(x, y):  # by hand
    return np.cos(x) * np.exp(y) + 2 * x * y, np.sin(x) * np.exp(y) + x**2


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_argnums(backend):
    gx, gy = grad_f_xy(1.0, 2.0)
    assert dk.grad(f_xy, backend=backend)(1.0, 2.0) == pytest.approx(gx, rel=4 * EPS)
    assert dk.grad(f_xy, argnums=1, backend=backend)(1.0, 2.0) == pytest.approx(gy, rel=4 * EPS)
    both = dk.grad(f_xy, argnums=(0, 1), backend=backend)(1.0, 2.0)
    assert isinstance(both, tuple) and both == pytest.approx((gx, gy), rel=4 * EPS)
    assert dk.grad(f_xy, argnums=-1, backend=backend)(1.0, 2.0) == pytest.approx(gy, rel=4 * EPS)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_definition_form(backend):
    # callable, Function, expression string, SymPy expression: the same derivative
    x, y = sympy.symbols("x y")
    forms = [f_xy, dk.Function(f_xy), "sin(x)*exp(y) + x**2*y",
             dk.Function.parse("sin(x)*exp(y) + x**2*y"), sympy.sin(x) * sympy.exp(y) + x**2 * y]
    want = grad_f_xy(1.0, 2.0)
    for form in forms:
        got = dk.grad(form, argnums=(0, 1), backend=backend)(1.0, 2.0)
        assert got == pytest.approx(want, rel=8 * EPS), form


@pytest.mark.parametrize("backend", BACKENDS)
def test_value_and_grad_has_aux(backend):
    def f(x):
        return np.sum(x**2), {"norm": np.sqrt(np.sum(x**2))}

    x = np.array([3.0, 4.0])
    (value, aux), g = dk.value_and_grad(f, has_aux=True, backend=backend)(x)
    assert value == 25.0 and aux["norm"] == 5.0
    np.testing.assert_array_equal(g, [6.0, 8.0])
    g2, aux2 = dk.grad(f, has_aux=True, backend=backend)(x)
    np.testing.assert_array_equal(g2, [6.0, 8.0])
    assert aux2["norm"] == 5.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_shapes_follow_jax(backend):
    x = np.arange(1.0, 7.0).reshape(2, 3)
    assert dk.grad(lambda m: np.sum(m**2), backend=backend)(x).shape == (2, 3)
    jac = dk.jacobian(lambda m: m[:, :2] ** 2, backend=backend)(x)
    assert jac.shape == (2, 2, 2, 3)
    # d (m_ij^2) / d m_kl = 2 m_ij [i=k][j=l]
    want = np.zeros((2, 2, 2, 3))
    for i in range(2):
        for j in range(2):
            want[i, j, i, j] = 2 * x[i, j]
    np.testing.assert_array_equal(jac, want)
    hess = dk.hessian(lambda v: v**3, backend=backend)(np.array([1.0, 2.0]))
    assert hess.shape == (2, 2, 2)  # out + in + in: d2 v_i^3 = 6 v_i on the diagonal
    np.testing.assert_array_equal(hess[0], [[6.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(hess[1], [[0.0, 0.0], [0.0, 12.0]])
    scalar = dk.grad(lambda s: s**3, backend=backend)(2.0)
    assert np.shape(scalar) == () and scalar == 12.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_jacobian_tuple_argnums(backend):
    def f(a, b):
        return a * b[0] + b[1]

    a = np.array([1.0, 2.0, 3.0])
    ja, jb = dk.jacobian(f, argnums=(0, 1), backend=backend)(a, np.array([5.0, 7.0]))
    np.testing.assert_array_equal(ja, 5.0 * np.eye(3))
    np.testing.assert_array_equal(jb, np.stack([a, np.ones(3)], axis=1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_hessian_tuple_argnums(backend):
    # f = x^2 y^3: f_xx = 2 y^3, f_xy = 6 x y^2, f_yy = 6 x^2 y
    h = dk.hessian(lambda x, y: x**2 * y**3, argnums=(0, 1), backend=backend)(2.0, 3.0)
    assert np.array(h, dtype=float).tolist() == [[54.0, 108.0], [108.0, 72.0]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_hessian_symmetric_and_matches_other_backend(backend):
    def f(v):
        return np.sum(np.sin(v[:-1] * v[1:])) + np.prod(v) ** 2

    v = np.array([0.3, -1.2, 0.7, 2.0])
    h = dk.hessian(f, backend=backend)(v)
    np.testing.assert_allclose(h, h.T, rtol=0, atol=1e-13)
    other = "forward" if backend == "reverse" else "reverse"
    np.testing.assert_allclose(h, dk.hessian(f, backend=other)(v), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("order, want", [(0, 0.0), (1, 1.0), (2, 0.0), (3, -1.0), (4, 0.0), (5, 1.0)])
def test_derivative_orders(backend, order, want):
    assert dk.derivative(np.sin, order=order, backend=backend)(0.0) == pytest.approx(want, abs=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nested_grad_of_grad(backend):
    # d2/dx2 x^3 y at (2, 5) = 6 x y = 60
    g = dk.grad(dk.grad(lambda x, y: x**3 * y, backend=backend), backend=backend)
    assert g(2.0, 5.0) == 60.0
    # mixed: d/dy d/dx x^3 y = 3 x^2 = 12
    assert dk.grad(dk.grad(lambda x, y: x**3 * y, backend=backend), argnums=1, backend=backend)(2.0, 5.0) == 12.0


@pytest.mark.parametrize("outer", BACKENDS)
@pytest.mark.parametrize("inner", ["forward", "reverse"])
def test_perturbation_confusion(outer, inner):
    # Siskind and Pearlmutter: d/dx [x * d/dy (x + y)] at any point is 1, not 2
    def f(x):
        return x * dk.derivative(lambda y: x + y, backend=inner)(1.0)

    assert dk.derivative(f, backend=outer)(1.0) == 1.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_jvp_vjp(backend):
    def f(v):
        return np.stack([v[0] * v[1], np.sin(v[0]), v[1] ** 2])

    v = np.array([0.5, 2.0])
    jac = np.array([[2.0, 0.5], [np.cos(0.5), 0.0], [0.0, 4.0]])  # by hand
    out, t = dk.jvp(f, (v,), (np.array([1.0, -1.0]),), backend=backend)
    np.testing.assert_allclose(out, [1.0, np.sin(0.5), 4.0], rtol=EPS)
    np.testing.assert_allclose(t, jac @ [1.0, -1.0], rtol=4 * EPS)
    out, vjp_fn = dk.vjp(f, v, backend=backend)
    (ct,) = vjp_fn(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(ct, np.array([1.0, 2.0, 3.0]) @ jac, rtol=4 * EPS)


def test_vjp_multiple_primals_and_shape_check():
    out, vjp_fn = dk.vjp(lambda a, b: a * b, np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    ga, gb = vjp_fn(np.ones(2))
    np.testing.assert_array_equal(ga, [3.0, 4.0])
    np.testing.assert_array_equal(gb, [1.0, 2.0])
    with pytest.raises(dk.ShapeError, match="cotangent has shape"):
        vjp_fn(np.ones(3))


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_inputs_promote(backend):
    g = dk.grad(lambda v: np.sum(v**2), backend=backend)(np.array([1, 2, 3]))
    assert g.dtype == np.float64
    np.testing.assert_array_equal(g, [2.0, 4.0, 6.0])
    assert dk.grad(lambda x: x**2, backend=backend)(3) == 6.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_errors_name_the_function(backend):
    def vector_valued(v):
        return v * 2

    with pytest.raises(dk.ShapeError, match="vector_valued.*jacobian"):
        dk.grad(vector_valued, backend=backend)(np.ones(2))
    with pytest.raises(dk.ShapeError, match="argnums"):
        dk.grad(vector_valued, argnums=3, backend=backend)(np.ones(2))
    with pytest.raises(ValueError, match="unknown backend"):
        dk.grad(vector_valued, backend="magic")


@pytest.mark.parametrize("backend", BACKENDS)
def test_unsupported_function_names_function_and_backend(backend):
    with pytest.raises(dk.UnsupportedOperation) as e:
        dk.grad(lambda v: np.sum(np.histogram(v)[1]), backend=backend)(np.ones(4))
    assert "numpy.histogram" in str(e.value) and backend in str(e.value)
    assert "<lambda>" in str(e.value)


def test_backends_and_instances():
    assert set(dk.backends()) >= {"forward", "reverse"}
    g1 = dk.grad(np.sin, backend=dk.Forward())(0.0)
    g2 = dk.grad(np.sin, backend=dk.Reverse())(0.0)
    g3 = dk.grad(np.sin)(0.0)  # default: reverse
    assert g1 == g2 == g3 == 1.0


# ---------------------------------------------------------------------------
# Custom rules
# ---------------------------------------------------------------------------


@dk.custom_jvp
def log1pexp(x):
    return np.log1p(np.exp(x))


@log1pexp.defjvp
def _log1pexp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return log1pexp(x), t * (1.0 - 1.0 / (1.0 + np.exp(x)))  # stable for large x


def test_symbolic_backend_closing_over_a_traced_value_is_a_clear_error():
    # the symbolic backend traces its own arguments; a value of an enclosing
    # transformation captured by a closure cannot become a SymPy symbol
    def f(x):
        return x * dk.derivative(lambda y: x + y, backend="symbolic")(1.0)

    with pytest.raises(dk.UnsupportedOperation, match="symbolic trace"):
        dk.derivative(f, backend="reverse")(1.0)


def test_symbolic_backend_differentiates_the_function_not_the_rule():
    # custom rules are for the AD backends; the symbolic backend checks them against f itself
    assert dk.grad(log1pexp, backend="symbolic")(0.0) == pytest.approx(0.5, rel=EPS)


@pytest.mark.parametrize("backend", ["forward", "reverse", "compiled"])
def test_custom_jvp_is_used(backend):
    # the naive derivative exp(x)/(1+exp(x)) overflows to nan at x = 1000; the rule gives 1
    with np.errstate(over="ignore"):  # the primal log1p(exp(1000)) itself overflows to inf
        assert dk.grad(log1pexp, backend=backend)(1000.0) == 1.0
    x = np.array([-2.0, 0.0, 3.0])
    # the rule's 1 - 1/(1 + e^x) and the closed form 1/(1 + e^-x) round differently
    np.testing.assert_allclose(dk.jacobian(log1pexp, backend=backend)(x).diagonal(),
                               1 / (1 + np.exp(-x)), rtol=16 * EPS)
    # second derivative through the rule: sigma(x) (1 - sigma(x)), 1/4 at 0
    assert dk.derivative(log1pexp, order=2, backend=backend)(0.0) == pytest.approx(0.25, rel=4 * EPS)


@dk.custom_vjp
def clip_gradient(x):
    return x


clip_gradient.defvjp(lambda x: (x, None), lambda res, g: (np.clip(g, -1.0, 1.0),))


def test_custom_vjp_is_used_in_reverse_mode():
    # the rule clips the incoming cotangent: d/dx [5 clip_gradient(x)] = clip(5, -1, 1) = 1
    assert dk.grad(lambda x: 5.0 * clip_gradient(x))(2.0) == 1.0
    jac = dk.jacobian(lambda v: 0.5 * clip_gradient(v))(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(jac, 0.5 * np.eye(2))


@dk.custom_vjp
def scaled_identity(x, y):
    return x + y


# a deliberately "wrong" but linear rule: d/dx is reported as 2, d/dy as 3
scaled_identity.defvjp(lambda x, y: (x + y, None), lambda res, g: (2.0 * g, 3.0 * g))


@pytest.mark.parametrize("backend", ["forward", "reverse", "compiled"])
def test_custom_vjp_is_used(backend):
    # forward mode builds the Jacobian from the backward pass, so both modes see the rule
    g = dk.grad(lambda x, y: 5.0 * scaled_identity(x, y), argnums=(0, 1), backend=backend)(2.0, 1.0)
    assert g == (10.0, 15.0)
    jac = dk.jacobian(lambda v: scaled_identity(v, v[::-1]), backend=backend)(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(jac, [[2.0, 3.0], [3.0, 2.0]])


def test_custom_rules_without_ad_run_the_function():
    assert log1pexp(0.0) == pytest.approx(np.log(2.0), rel=EPS)
    assert clip_gradient(7.0) == 7.0


def test_custom_vjp_wrong_arity_is_a_clear_error():
    @dk.custom_vjp
    def f(x, y):
        return x * y

    f.defvjp(lambda x, y: (x * y, (x, y)), lambda res, g: (g * res[1],))
    with pytest.raises(dk.DiffkitError, match="one cotangent per argument"):
        dk.grad(f)(1.0, 2.0)


@pytest.mark.parametrize("backend", ["forward", "reverse", "compiled"])
def test_custom_rules_with_wrongly_shaped_results_are_clear_errors(backend):
    # a bwd returning a cotangent of the wrong shape used to fail deep inside NumPy
    @dk.custom_vjp
    def f(x):
        return np.sin(x)

    f.defvjp(lambda x: (np.sin(x), x), lambda x, g: (np.ones(3) * g[0],))
    with pytest.raises(dk.DiffkitError, match=r"bwd returned cotangent 0 of shape \(3,\); expected .* \(2,\)"):
        dk.jacobian(f, backend=backend)(np.array([1.0, 2.0]))

    @dk.custom_jvp
    def g(x):
        return np.sin(x)

    g.defjvp(lambda p, t: (np.sin(p[0]), np.ones(3) * t[0][0]))
    with pytest.raises(dk.DiffkitError, match=r"JVP rule returned a tangent of shape \(3,\)"):
        dk.jacobian(g, backend=backend)(np.array([1.0, 2.0]))


def test_reverse_jvp_uses_double_vjp():
    # the reverse backend computes J t by transposing its VJP (reverse over reverse)
    def f(v):
        return np.array([v[0] ** 2 * v[1], np.exp(v[1])])

    v = np.array([1.5, 0.5])
    t = np.array([0.25, -2.0])
    _, jt_rev = dk.jvp(f, (v,), (t,), backend="reverse")
    _, jt_fwd = dk.jvp(f, (v,), (t,), backend="forward")
    np.testing.assert_allclose(jt_rev, jt_fwd, rtol=4 * EPS)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kink_masks_keep_float64_for_python_floats(backend):
    # regression: the masks of maximum/minimum were cast to float16 when every operand was a
    # Python float (NumPy treats Python floats as "weak"), rounding gradients to 3 digits
    g = dk.grad(lambda x, y: np.maximum(x, y) * 1.2345678901234, argnums=(0, 1), backend=backend)(2.0, 1.0)
    assert g == (1.2345678901234, 0.0)


def f_kw(x, y=1.0, *, p=2):
    return np.sum(np.sin(x) * y + x**p)


@pytest.mark.parametrize("backend", BACKENDS + ["numeric"])
def test_keyword_arguments_pass_through_as_constants(backend):
    # keywords are constants, never differentiated (as in JAX); by hand:
    # d/dx [sin(x) y + x**p] = y cos(x) + p x**(p-1), d2/dx2 = -y sin(x) + p (p-1) x**(p-2)
    rel = 1e-7 if backend == "numeric" else 4 * EPS
    x = 0.5
    for y, p in ((1.0, 2), (2.0, 2), (3.0, 3), (2.0, 3)):
        g = y * np.cos(x) + p * x**(p - 1)
        h = -y * np.sin(x) + p * (p - 1) * x**(p - 2)
        assert dk.grad(f_kw, backend=backend)(x, y=y, p=p) == pytest.approx(g, rel=rel)
        value, grad = dk.value_and_grad(f_kw, backend=backend)(x, y=y, p=p)
        assert (value, grad) == pytest.approx((np.sin(x) * y + x**p, g), rel=rel)
        assert dk.hessian(f_kw, backend=backend)(x, y=y, p=p) == pytest.approx(h, rel=10 * rel)
        assert dk.derivative(f_kw, order=2, backend=backend)(x, y=y, p=p) == pytest.approx(h, rel=10 * rel)
    assert dk.grad(f_kw, backend=backend)(x) == pytest.approx(np.cos(x) + 2 * x, rel=rel)  # the defaults
    v = np.array([0.5, 1.0])
    # jacobian, and a keyword that is an array (not hashable)
    jac = dk.jacobian(lambda x, w=None: np.sin(x) * w, backend=backend)(v, w=np.array([2.0, 3.0]))
    np.testing.assert_allclose(jac, np.diag(np.cos(v) * [2.0, 3.0]), rtol=rel)
    # has_aux with keywords
    (_, aux), g = dk.value_and_grad(lambda x, y=1.0: (x * y, y), has_aux=True, backend=backend)(2.0, y=4.0)
    assert (g, aux) == pytest.approx((4.0, 4.0), rel=rel)
    # a keyword never becomes an argnum: only positional arguments are differentiated
    with pytest.raises(dk.ShapeError):
        dk.grad(f_kw, argnums=1, backend=backend)(x, y=2.0)


def test_keyword_bindings_do_not_keep_the_function_alive():
    import gc
    import weakref

    from diffkit import operators

    def h(x, y=1.0):
        return x * y

    assert dk.grad(h, backend="symbolic")(1.0, y=3.0) == 3.0
    assert h in operators._BOUND
    ref = weakref.ref(h)
    del h
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("backend", ["forward", "reverse", "numeric"])
def test_builtin_round_of_a_traced_value(backend):
    # round() is NumPy's rounding (np.rint, halves to even; np.round with digits):
    # piecewise constant, so by hand d/dx [round(x) * x] = round(x) away from the jumps
    rel = 1e-9 if backend == "numeric" else 0.0
    value, g = dk.value_and_grad(lambda x: round(x) * x, backend=backend)(2.3)
    assert value == pytest.approx(2.0 * 2.3, rel=1e-15) and g == pytest.approx(2.0, rel=rel)
    assert dk.grad(lambda x: round(x) * x, backend=backend)(2.3) == pytest.approx(2.0, rel=rel)
    assert dk.grad(lambda x: round(x) * x, backend=backend)(3.5) == pytest.approx(4.0, rel=rel)  # half to even
    assert dk.grad(lambda x: round(x, 1) * x, backend=backend)(2.34) == pytest.approx(np.round(2.34, 1), rel=rel)
    assert dk.grad(lambda x: round(x, -1) * x, backend=backend)(23.4) == pytest.approx(20.0, rel=rel)
    if backend == "numeric":  # it calls f with floats, and Python's round(float) is an int
        with pytest.raises(dk.InvalidType):
            dk.grad(lambda x: round(x), backend=backend)(-1.7)
    else:  # a traced value's round is a float array, as in JAX
        assert dk.grad(lambda x: round(x), backend=backend)(-1.7) == 0.0
    with pytest.raises(TypeError):  # as round(2.3, 1.5)
        dk.grad(lambda x: round(x, 1.5) * x, backend=backend)(2.3)


def test_builtin_round_of_traced_arrays_matches_numpy():
    v = np.array([2.3, 2.5, -1.7, 0.449])
    for backend in ("forward", "reverse"):
        out, g = dk.value_and_grad(lambda x: np.sum(round(x) * x), backend=backend)(v)
        assert out == np.sum(np.round(v) * v)
        np.testing.assert_array_equal(g, np.round(v))
        out, g = dk.value_and_grad(lambda x: np.sum(round(x, 1) * x), backend=backend)(v)
        assert out == np.sum(np.round(v, 1) * v)
        np.testing.assert_array_equal(g, np.round(v, 1))
