"""The compiled backend: generated code, its cache and guards, its fallback, and its numbers.

Every test of the other files that runs on "forward" and "reverse" also runs on
"compiled" (their backend lists name it); this file checks what is the compiled
backend's own: one trace per shapes and branch, guards, buffers that never leak
into results, the reverse backend taking what cannot be traced (with a warning),
forward mode for tall Jacobians, and agreement with the reverse backend on random
functions of the table, within 4 ulps of the terms (the generated code
reassociates products of factors; each is the same operation on the same numbers).
"""

from __future__ import annotations

import importlib
import threading
import warnings

import numpy as np
import pytest
from hypothesis import given, note

import diffkit as dk
from diffkit.strategies import functions, points
from diffkit.testing import absolute_derivative

compiled = importlib.import_module("diffkit.backends.compiled")
EPS = float(np.finfo(np.float64).eps)


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_grad(x):  # by hand
    d = x[1:] - x[:-1] ** 2
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * d - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * d
    return g


@pytest.fixture
def traces(monkeypatch):
    """Counts the traces the compiled backend makes."""
    count = [0]
    real = compiled.trace_program

    def counting(*args, **kwargs):
        count[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(compiled, "trace_program", counting)
    return count


def test_rosenbrock_gradient_by_hand(traces):
    g = dk.grad(rosenbrock, backend="compiled")
    for seed in range(3):
        x = np.random.default_rng(seed).normal(size=50)
        np.testing.assert_allclose(g(x), rosenbrock_grad(x), rtol=1e-13, atol=1e-12)
    assert traces[0] == 1  # one trace for the three calls (same shape and dtype)
    g(np.ones(7))
    assert traces[0] == 2  # another shape: another trace


def test_results_never_share_the_buffers():
    # the generated code writes intermediates into buffers it keeps; what it returns is new
    f = lambda x: np.sum(np.sin(x) * x)  # noqa: E731
    g = dk.grad(f, backend="compiled")
    x1, x2 = np.linspace(0.0, 1.0, 5), np.linspace(1.0, 2.0, 5)
    a = g(x1)
    kept = a.copy()
    b = g(x2)
    np.testing.assert_array_equal(a, kept)
    assert not np.shares_memory(a, b)
    j = dk.jacobian(lambda x: np.tanh(x) * x, backend="compiled")
    ja = j(x1)
    jkept = ja.copy()
    j(x2)
    np.testing.assert_array_equal(ja, jkept)


def test_branches_become_guards(traces):
    def f(x):
        if x > 0:
            return x ** 3
        return np.sin(x)

    g = dk.grad(f, backend="compiled")
    assert g(2.0) == 12.0
    assert g(-1.0) == np.cos(-1.0)
    assert traces[0] == 2  # one variant per branch
    assert g(3.0) == 27.0 and g(-2.0) == np.cos(-2.0)
    assert traces[0] == 2  # both cached
    assert "raise _GuardFailed" in dk.source(f, 2.0)


def test_array_branches_and_masks_are_traced():
    # a comparison is part of the program: np.where's mask is recomputed per call
    f = lambda x: np.sum(np.where(x > 0, x ** 2, -x))  # noqa: E731
    g = dk.grad(f, backend="compiled")
    np.testing.assert_array_equal(g(np.array([1.0, -2.0, 3.0])), [2.0, -1.0, 6.0])
    np.testing.assert_array_equal(g(np.array([-1.0, 2.0, -3.0])), [-1.0, 4.0, -1.0])


def test_untraceable_functions_fall_back_with_one_warning():
    def f(x):
        return np.sum(np.sort(x) * np.arange(3.0))  # the order depends on the values

    with pytest.warns(RuntimeWarning, match=r"reverse backend instead: it reads the number of a traced "
                                            r"value \(numpy\.sort\)"):
        g = dk.grad(f, backend="compiled")(np.array([3.0, 1.0, 2.0]))
    np.testing.assert_array_equal(g, [2.0, 0.0, 1.0])  # 3 is the largest, 1 the smallest
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per function
        g = dk.grad(f, backend="compiled")(np.array([1.0, 3.0, 2.0]))
    np.testing.assert_array_equal(g, [0.0, 2.0, 1.0])


def test_custom_rules_fall_back():
    @dk.custom_vjp
    def clip_grad(x):
        return x

    clip_grad.defvjp(lambda x: (x, None), lambda res, g: (np.clip(g, -1.0, 1.0),))
    with pytest.warns(RuntimeWarning, match="custom rule"):
        g = dk.grad(lambda x: np.sum(clip_grad(x) * 5.0), backend="compiled")(np.ones(2))
    np.testing.assert_array_equal(g, [1.0, 1.0])


def test_source_reads_as_the_derivative():
    src = dk.source(lambda x, y: x * y + np.sin(x), 2.0, 3.0, argnums=(0, 1))
    assert src.startswith("def run(x, y, ct, buffers):")  # the arguments' names
    assert "math.sin(x)" in src and "dsin_" in src  # sin on floats, and its derivative (the table's)
    assert "ct * x" in src  # d/dy x*y, folded into the return
    # only what the output needs is computed: y ** 2 below is dead
    src = dk.source(lambda x, y: (y ** 2, x * 2.0)[1], 1.0, 2.0)
    assert "square" not in src and "power" not in src


def test_forward_mode_for_tall_jacobians():
    grid = np.linspace(0.0, 1.0, 200)
    f = lambda s: np.sin(s * grid) * s  # noqa: E731  R -> R^200
    J = dk.jacobian(f, backend="compiled")(0.7)
    np.testing.assert_allclose(J, grid * np.cos(0.7 * grid) * 0.7 + np.sin(0.7 * grid), rtol=1e-14)
    a = np.random.default_rng(1).normal(size=(5, 3))
    g = lambda u: np.tanh(a @ u)  # noqa: E731  R^3 -> R^5: forward, 3 tangents
    u = np.array([0.1, -0.2, 0.3])
    np.testing.assert_allclose(dk.jacobian(g, backend="compiled")(u),
                               (1 - np.tanh(a @ u) ** 2)[:, None] * a, rtol=1e-14)


def test_jvp_vjp_hessian_and_aux():
    f = lambda x: np.sum(np.exp(x) * x)  # noqa: E731
    x = np.array([0.2, -0.4])
    out, t = dk.jvp(f, (x,), (np.array([1.0, 2.0]),), backend="compiled")
    assert out == pytest.approx(f(x), rel=1e-15)
    assert t == pytest.approx(np.sum(np.exp(x) * (1 + x) * [1.0, 2.0]), rel=1e-14)
    out, vjp_fn = dk.vjp(lambda x: np.exp(x) * x, x, backend="compiled")
    np.testing.assert_allclose(vjp_fn(np.array([1.0, -1.0]))[0], np.exp(x) * (1 + x) * [1.0, -1.0], rtol=1e-14)
    np.testing.assert_allclose(dk.hessian(f, backend="compiled")(x), np.diag(np.exp(x) * (2 + x)), rtol=1e-14)
    (v, aux), g = dk.value_and_grad(lambda x: (np.sum(x ** 2), {"n": np.sum(x)}), has_aux=True,
                                    backend="compiled")(x)
    assert v == pytest.approx(0.2, rel=1e-15) and aux["n"] == pytest.approx(-0.2, rel=1e-15)
    np.testing.assert_array_equal(g, 2 * x)


def test_concurrent_calls_get_their_own_buffers():
    g = dk.grad(rosenbrock, backend="compiled")
    xs = [np.random.default_rng(s).normal(size=300) for s in range(8)]
    want = [rosenbrock_grad(x) for x in xs]
    got: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        for _ in range(20):
            got[i] = g(xs[i])
            np.testing.assert_allclose(got[i], want[i], rtol=1e-13, atol=1e-12)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(8):
        np.testing.assert_allclose(got[i], want[i], rtol=1e-13, atol=1e-12)


def test_scalar_code_is_math_on_floats():
    def chain(x):
        for _ in range(5):
            x = np.sin(x) * 0.999 + x * 0.5
        return x

    src = dk.source(chain, 0.3)
    assert "np." not in src.split("ct, buffers):")[1]  # no NumPy call per operation
    assert dk.grad(chain, backend="compiled")(0.3) == pytest.approx(dk.grad(chain)(0.3), rel=4 * EPS)


CASES = functions(variables=("x", "y"), max_depth=3).flatmap(lambda f: points(f).map(lambda p: (f, p)))


@given(CASES)
def test_compiled_agrees_with_reverse_within_4_ulps_of_the_terms(case):
    f, args = case
    note(f"f = {f.source!r}, args = {args!r}")
    want = np.asarray(dk.grad(f, argnums=(0, 1), backend="reverse")(*args), dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a function that falls back agrees trivially
        got = np.asarray(dk.grad(f, argnums=(0, 1), backend="compiled")(*args), dtype=float)
    bound = absolute_derivative(f, args, 1)
    scale = max(1.0, float(np.max(np.abs(np.asarray(bound, dtype=float))))) if bound is not None else 1.0
    both_nan = np.isnan(got) & np.isnan(want)
    err = np.where(both_nan, 0.0, np.abs(got - want))
    assert np.all(err <= 4 * EPS * scale), (got, want, scale)


ARRAY_CASES = functions(variables=("x", "y"), max_depth=3, shapes={"x": (3,)}, scalar_output=False).flatmap(
    lambda f: points(f).map(lambda p: (f, p)))


@given(ARRAY_CASES)
def test_compiled_jacobians_agree_with_reverse(case):
    # reverse mode with the identity seed kept diagonal, or forward mode for tall Jacobians
    f, args = case
    note(f"f = {f.source!r}, args = {args!r}")
    want = dk.jacobian(f, argnums=(0, 1), backend="reverse")(*args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = dk.jacobian(f, argnums=(0, 1), backend="compiled")(*args)
    for g, r in zip(got, want):
        g, r = np.asarray(g, dtype=float), np.asarray(r, dtype=float)
        assert g.shape == r.shape
        scale = max(1.0, float(np.max(np.abs(r[np.isfinite(r)]), initial=0.0)))
        np.testing.assert_allclose(g, r, rtol=0, atol=64 * EPS * scale, equal_nan=True)


@pytest.mark.parametrize("prim", sorted(compiled.accel.PARTIAL_INTO, key=lambda p: p.name), ids=lambda p: p.name)
def test_partials_into_a_buffer_are_the_tables(prim):
    x = np.random.default_rng(3).uniform(0.1, 2.0, size=(4, 5))  # inside every domain
    out = prim.numpy(x)
    buf = np.empty_like(x)
    got = compiled.accel.PARTIAL_INTO[prim](buf, out, x)
    assert got is buf
    np.testing.assert_array_equal(got, prim.partials[0](out, x))  # bitwise: the same operations


@pytest.mark.parametrize("j", [0, 1])
def test_matmul_vjp_into_a_buffer_is_the_tables(j):
    rng = np.random.default_rng(4)
    a, b, ct = rng.normal(size=(3, 4)), rng.normal(size=(4, 5)), rng.normal(size=(3, 5))
    buf = np.empty((3, 4) if j == 0 else (4, 5))
    got = compiled.accel.matmul_vjp_into(j, buf, ct, a, b)
    np.testing.assert_array_equal(got, dk.PRIMITIVES["matmul"].vjp[j](ct, a @ b, a, b))


VIEWS = {
    # intermediates read through views (reshape, transpose, slices) long after they were computed
    "reshape-transpose": lambda x: np.sum(np.reshape(np.sin(x), (2, 3)).T * np.reshape(np.cos(x), (3, 2))),
    "slices-of-a-temporary": lambda x: np.sum(np.tanh(x * 2.0)[1:] * np.exp(x)[:-1] + np.tanh(x * 2.0)[:-1]),
    "matrix-chain": lambda x: np.sum(np.tanh(np.reshape(x, (2, 3)) @ np.reshape(np.sin(x), (3, 2))) ** 2),
}


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_shared_buffers_never_overwrite_what_is_still_read(name):
    # the generated code lets intermediates with disjoint lifetimes share a buffer; a view
    # keeps its buffer alive: the gradient must be the reverse backend's
    f = VIEWS[name]
    x = np.linspace(-0.9, 1.1, 6)
    np.testing.assert_allclose(dk.grad(f, backend="compiled")(x), dk.grad(f)(x), rtol=4 * EPS, atol=4 * EPS)
    np.testing.assert_allclose(dk.jacobian(lambda v: f(v) * v, backend="compiled")(x),
                               dk.jacobian(lambda v: f(v) * v)(x), rtol=1e-13, atol=1e-13)


def test_buffers_are_shared():
    src = dk.source(rosenbrock, np.ones(6))
    writes = [ln.split("out=")[1].rstrip(")") for ln in src.splitlines() if "out=B" in ln]
    assert len(set(writes)) <= len(writes) - 3  # eight arrays written, five buffers


def test_an_array_over_a_number():
    # regression: d(x / y)/dy = -sum(ct * out) / y for an array x: out is an array factor
    # (it was taken for a number, which summed ct first: a wrong gradient in the standard suite)
    x = np.array([0.3, -1.2, 0.8])
    g = dk.grad(lambda x, y: np.sum(np.cos(x / y)), argnums=1, backend="compiled")(x, 1.7)
    assert float(g) == pytest.approx(float(np.sum(np.sin(x / 1.7) * x / 1.7 ** 2)), rel=1e-14)
    from diffkit.harness.testfunctions import layer_norm_loss

    v = np.array([0.3, -1.2, 0.8, 2.0, -0.5])
    np.testing.assert_allclose(dk.grad(layer_norm_loss, backend="compiled")(v), dk.grad(layer_norm_loss)(v),
                               rtol=1e-13, atol=1e-13)


def test_a_diagonal_seed_meeting_a_dense_cotangent():
    # regression (found by the thorough profile): x receives a dense batch of cotangents
    # through the power rule and diagonal ones through logaddexp; the sum is dense
    f = lambda x: np.logaddexp(np.logaddexp(x, x), (x ** 2) ** 3)  # noqa: E731
    x = np.array([0.1, 0.2, -0.3])
    np.testing.assert_allclose(dk.jacobian(f, backend="compiled")(x), dk.jacobian(f)(x), rtol=1e-14, atol=1e-15)
