"""The speed paths of the AD backends give the same numbers as the plain paths.

* Lazy factors in the reverse sweep (``vjp_scaled``): ``-ct``, ``c * ct`` and
  ``2 * x * ct`` hand a Python-float factor on instead of scaling an array;
  the factor must reach every input exactly once, be applied before a custom
  VJP (which need not be linear), survive in-place slice accumulation, batch
  cotangents and kept cotangents (``dk.graph``), keep float32 float32, and
  never hand out an array of the user's or the tape's as a gradient.
* Diagonal seeds (:class:`diffkit.backends.base.Diagonal`): a Jacobian of a
  vector function seeds ``diag(1)`` unformed; elementwise rules keep it
  diagonal and ``matmul`` scales the matrix's rows instead of multiplying by
  the identity. Every other primitive sees the formed identity.
* The ``max``/``min`` rule's numeric path splits ties as the generic one.

Expected values are hand derivations or the same derivative computed along
the plain path (forward mode with one tangent at a time, or the formed seed).
"""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
from diffkit.backends.base import Diagonal
from diffkit.backends.forward import Forward
from diffkit.backends.reverse import Reverse

RNG = np.random.default_rng(20240607)


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_grad(x):  # by hand
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return g


def columns(fun, x):
    """The Jacobian one forward pass per input element: no batch, no seed shortcut."""
    cols = [dk.jvp(fun, (x,), (np.eye(x.size)[k].reshape(x.shape),), backend="forward")[1]
            for k in range(x.size)]
    return np.moveaxis(np.array(cols), 0, -1).reshape(np.shape(fun(x)) + x.shape)


# --------------------------------------------------------------------------
# Lazy factors
# --------------------------------------------------------------------------


def test_rosenbrock_gradient_with_factors():
    x = RNG.normal(size=50)
    np.testing.assert_allclose(dk.grad(rosenbrock)(x), rosenbrock_grad(x), rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(dk.grad(rosenbrock)(x), dk.grad(rosenbrock, backend="forward")(x),
                               rtol=1e-13, atol=1e-12)


@pytest.mark.parametrize("fun, grad", [
    (lambda x: np.sum(-x), lambda x: -np.ones_like(x)),
    (lambda x: np.sum(np.negative(-x)), lambda x: np.ones_like(x)),
    (lambda x: np.sum(0.5 * (2.0 * x)), lambda x: np.ones_like(x)),
    (lambda x: np.sum(3.0 - x * 4.0), lambda x: -4.0 * np.ones_like(x)),
    (lambda x: np.sum(x**2 - x / 4), lambda x: 2.0 * x - 0.25),
    (lambda x: np.sum((-x) ** 2), lambda x: 2.0 * x),
    (lambda x: np.sum(np.sin(-x) * 2), lambda x: -2.0 * np.cos(-x)),
    (lambda x: np.mean(-x * x), lambda x: -2.0 * x / x.size),
    (lambda x: np.sum(x[1:] * 2 - x[:-1] * 3), lambda x: np.r_[-3.0, -np.ones(x.size - 2), 2.0]),
    (lambda x: np.sum(-x[::2]) + np.sum(x**2), lambda x: 2.0 * x - (np.arange(x.size) % 2 == 0)),
    (lambda x: np.sum(-(x[[0, 0, 2]] * 2.0)), lambda x: np.array([-4.0, 0, -2.0] + [0.0] * (x.size - 3))),
    (lambda x: np.sum(x[1:] ** 2) - np.sum(x[1:]), lambda x: np.r_[0.0, 2.0 * x[1:] - 1.0]),
])
def test_factors_reach_the_inputs_exactly_once(fun, grad):
    x = RNG.normal(size=6)
    np.testing.assert_allclose(dk.grad(fun)(x), grad(x), rtol=1e-14, atol=1e-14)


def test_factors_of_powers_of_two_are_exact():
    x = RNG.normal(size=7)
    g = dk.grad(lambda v: np.sum(-(v * 0.5) ** 2 * 4.0 - v))(x)
    np.testing.assert_array_equal(g, -2.0 * x - 1.0)


def test_factors_on_a_batch_of_cotangents():
    x = RNG.normal(size=4)
    a = RNG.normal(size=(3, 4))

    def f(v):
        return -(a @ (v**2 * 3.0)) / 2.0 - v[:3]

    want = -(a * 3.0 * x) - np.eye(3, 4)
    np.testing.assert_allclose(dk.jacobian(f)(x), want, rtol=1e-14, atol=1e-14)
    _, vjp_fn = dk.vjp(f, x)
    ct = RNG.normal(size=3)
    np.testing.assert_allclose(vjp_fn(ct)[0], ct @ want, rtol=1e-14, atol=1e-14)


def test_a_custom_vjp_sees_the_factor():
    # clip_gradient clips its cotangent: not linear, so the factor -5 must be applied first
    @dk.custom_vjp
    def clip_gradient(x):
        return x

    clip_gradient.defvjp(lambda x: (x, None), lambda res, g: (np.clip(g, -1.0, 1.0),))
    x = np.array([1.0, 2.0, 3.0])
    assert dk.grad(lambda v: np.sum(-5.0 * clip_gradient(v)))(x).tolist() == [-1.0, -1.0, -1.0]
    assert dk.grad(lambda v: np.sum(-(clip_gradient(v) * 0.25)))(x).tolist() == [-0.25] * 3
    np.testing.assert_array_equal(dk.jacobian(lambda v: -3.0 * clip_gradient(v))(x), -np.eye(3))


def test_a_gradient_is_never_an_array_of_the_caller():
    c = RNG.normal(size=5)
    x = RNG.normal(size=5)
    for fun in (lambda v: np.sum(v * c), lambda v: np.sum(c * v), lambda v: np.sum(v * c) * 1.0):
        for op in (dk.grad, dk.jacobian):
            g = op(fun)(x)
            np.testing.assert_array_equal(g, c)
            assert not np.shares_memory(g, c)
            g[:] = 0.0
            assert np.all(c != 0.0)
    g = dk.grad(lambda v: np.sum(v**2))(x)  # 2 * x, not x
    np.testing.assert_array_equal(g, 2.0 * x)
    assert not np.shares_memory(g, x)


def test_factors_keep_float32():
    x = RNG.normal(size=5).astype(np.float32)
    for fun in (rosenbrock, lambda v: np.sum(-(v**2) * 3.0), lambda v: np.sum(-v[1:] + v[:-1] / 2)):
        g = dk.grad(fun)(x)
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, dk.grad(fun, backend="forward")(x), rtol=1e-5)


def test_graph_shows_the_factored_gradients():
    g = dk.graph(lambda x: np.sum(-(x**2) * 3.0), np.array([1.0, 2.0]))
    assert g.node("x").grad.tolist() == [-6.0, -12.0]
    grads = [n.grad for n in g.nodes if n.grad is not None and np.shape(n.grad) == (2,)]
    assert any(np.array_equal(gr, [-3.0, -3.0]) for gr in grads)  # the square's cotangent, formed


def test_higher_order_through_factors():
    # reverse over reverse and forward over reverse: the factors meet traced cotangents
    f = lambda v: np.sum(-(v**2) * v * 0.5)
    x = RNG.normal(size=3)
    np.testing.assert_allclose(dk.hessian(f)(x), np.diag(-3.0 * x), rtol=1e-14, atol=1e-14)
    _, t = dk.jvp(dk.grad(f), (x,), (np.ones(3),), backend="reverse")
    np.testing.assert_allclose(t, -3.0 * x, rtol=1e-14)


# --------------------------------------------------------------------------
# Diagonal seeds
# --------------------------------------------------------------------------

A = RNG.normal(size=(4, 5)) / 3
B = RNG.normal(size=(5, 4)) / 3

DIAGONAL_CASES = {
    "tanh(A @ x)": lambda u: np.tanh(A @ u),
    "x @ B, then exp": lambda u: np.exp(u @ B),
    "elementwise chain": lambda u: np.sin(u) * u + u**2 - 3.0 / (2.0 + u),
    "x + x": lambda u: u + u * 2.0,
    "scalar of the batch": lambda u: u * np.sum(u),
    "broadcast scalar": lambda u: np.tanh(u) * 2.0 + np.sum(u**2) * u,
    "dense meets diagonal": lambda u: np.sin(u) + u @ B @ A,
    "matrix and vector": lambda u: B @ (A @ np.cos(u)) - u[::-1],
    "structural": lambda u: np.concatenate([u[1:], -u[:1]]) * np.exp(u),
    "reshape": lambda u: np.reshape(np.reshape(u, (5, 1)) * 2.0, (5,)) + u,
    "where": lambda u: np.where(u > 0, u**2, -u),
    "outer": lambda u: np.outer(u, u),
    "identity": lambda u: u,
    "constant": lambda u: A @ np.ones(5),
    "to a scalar": lambda u: np.sum(u**3),
    "max": lambda u: np.max(np.stack([u, -u]), axis=0),
}


@pytest.mark.parametrize("name", sorted(DIAGONAL_CASES))
@pytest.mark.parametrize("backend", ["forward", "reverse", "compiled"])
def test_diagonal_seeds_give_the_jacobian(name, backend):
    fun = DIAGONAL_CASES[name]
    x = RNG.normal(size=5)
    j = dk.jacobian(fun, backend=backend)(x)
    np.testing.assert_allclose(j, columns(fun, x), rtol=1e-13, atol=1e-14)
    assert type(j) is np.ndarray and j.flags.writeable and j.flags.owndata
    j[...] = 0.0  # writable, and nobody else's


@pytest.mark.parametrize("backend", ["forward", "reverse", "compiled"])
def test_diagonal_seeds_under_hessians_and_several_arguments(backend):
    f = lambda u, w: np.sum(np.tanh(A @ u) * w[:4]) + np.sum(u**3)
    u, w = RNG.normal(size=5), RNG.normal(size=5)
    h = dk.hessian(f, backend=backend)(u, w)
    y = A @ u
    want = A.T @ np.diag(-2.0 * np.tanh(y) * (1 - np.tanh(y) ** 2) * w[:4]) @ A + np.diag(6.0 * u)
    np.testing.assert_allclose(h, want, rtol=1e-12, atol=1e-13)
    ju, jw = dk.jacobian(lambda u, w: np.tanh(A @ u) * w[:4], argnums=(0, 1), backend=backend)(u, w)
    np.testing.assert_allclose(ju, (1 - np.tanh(y) ** 2)[:, None] * w[:4, None] * A, rtol=1e-13)
    np.testing.assert_allclose(jw, np.eye(4, 5) * np.tanh(y)[:, None], rtol=1e-13)


@pytest.mark.parametrize("backend", ["forward", "reverse", "compiled"])
def test_the_jacobian_of_a_linear_map_is_a_copy_of_its_matrix(backend):
    # the identity seed makes diag(1) @ A the matrix itself: it must not be handed out
    m = RNG.normal(size=(3, 4))
    keep = m.copy()
    for fun, want in ((lambda u: m @ u, m), (lambda u: u @ m.T, m), (lambda u: m.T @ u[:3], m.T[:, :3])):
        j = dk.jacobian(fun, backend=backend)(RNG.normal(size=4))
        np.testing.assert_array_equal(j[:, :want.shape[1]] if j.shape != want.shape else j, want)
        assert not np.shares_memory(j, m)
        j[...] = 0.0
    np.testing.assert_array_equal(m, keep)


def test_diagonal_seeds_only_for_float_vectors():
    for x in (np.arange(3.0).reshape(3, 1), np.array(2.0), np.arange(3)):
        j = dk.jacobian(lambda u: np.sin(u) * 2.0)(x)
        want = np.diag(2.0 * np.cos(np.ravel(x).astype(float))).reshape(np.shape(x) * 2)
        np.testing.assert_allclose(j, want, rtol=1e-15)
    j = dk.jacobian(lambda u: np.sin(u) * 2.0)(np.arange(3, dtype=np.float32))
    assert j.dtype == np.float32


def test_a_diagonal_batch_is_never_mixed_with_arrays_silently():
    d = Diagonal(np.array([1.0, 2.0]))
    with pytest.raises(TypeError):
        np.ones(2) + d
    np.testing.assert_array_equal(d.dense(), np.diag([1.0, 2.0]))
    assert d.batch == (2,)


def test_backends_without_diagonal_seeds_get_the_identity():
    class Plain(Reverse):
        diagonal_seeds = False

    x = RNG.normal(size=5)
    for fun in DIAGONAL_CASES.values():
        np.testing.assert_allclose(Plain().jacobian(fun, [x], [0])[1][0],
                                   Reverse().jacobian(fun, [x], [0])[1][0], rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(Forward().jacobian(fun, [x], [0])[1][0],
                                   Reverse().jacobian(fun, [x], [0])[1][0], rtol=1e-13, atol=1e-14)


# --------------------------------------------------------------------------
# max/min
# --------------------------------------------------------------------------


@pytest.mark.parametrize("reduce", [np.max, np.min])
def test_extreme_rule_splits_ties_on_both_paths(reduce):
    x = np.array([[1.0, 3.0, 3.0, 3.0], [2.0, 2.0, -1.0, 0.0], [5.0, 5.0, 5.0, 5.0]])
    x = x if reduce is np.max else -x
    w = np.array([1.0, 2.0, 3.0])
    g = dk.grad(lambda v: np.sum(reduce(v, axis=1) * w))(x)
    want = np.array([[0, 1 / 3, 1 / 3, 1 / 3], [1.0, 1.0, 0, 0], [0.75, 0.75, 0.75, 0.75]])
    np.testing.assert_array_equal(g, want)  # 1/3 exactly as 1.0 * (1 / 3)
    # the generic path (traced values: reverse over forward) agrees
    h = dk.jacobian(lambda v: dk.grad(lambda u: np.sum(reduce(u, axis=1) * w * v[0, 0]))(x), backend="forward")
    np.testing.assert_allclose(h(np.ones((1, 1)))[..., 0, 0], want, rtol=1e-15)
    g = dk.grad(lambda v: reduce(v))(x)  # one extreme of the whole array, four times
    assert g[2].tolist() == [0.25] * 4 and not g[:2].any()


# --------------------------------------------------------------------------
# Every speed-up against the plain path: accelerate=False runs the textbook
# sweep (dense seeds, no factors, no in-place updates, no math fast path)
# --------------------------------------------------------------------------
A4 = RNG.normal(size=(4, 4))
IDX = np.array([0, 2, 2, 3])


def _scalar_chain(x, y):
    for _ in range(20):
        x = np.sin(x) * 1.01 + x * y - 0.1 / (1.0 + x * x)
    return x ** 2 - np.exp(-y) * x


CORPUS = {
    "scalar code": (_scalar_chain, (0.3, 0.7)),
    "rosenbrock": (rosenbrock, (RNG.normal(size=9),)),
    "negations and quotients": (lambda x: np.sum(-(x / 4.0 - x[::-1] ** 2) * 3.0), (RNG.normal(size=6),)),
    "slices added into their parent": (lambda x: np.sum(x[1:] * x[:-1]) + np.sum(x[2:] ** 2 - x[:3].sum()),
                                       (RNG.normal(size=5),)),
    "fancy indexing with repeats": (lambda x: np.sum(np.tanh(x[IDX]) * x[IDX[::-1]]), (RNG.normal(size=4),)),
    "matrix-vector (diagonal seeds)": (lambda x: np.tanh(A4 @ x) * x, (RNG.normal(size=4),)),
    "vector-matrix": (lambda x: np.sin(x @ A4) - x, (RNG.normal(size=4),)),
    "broadcast and reductions": (lambda x, y: np.max(np.outer(x, y) + y, axis=0) * np.mean(x),
                                 (RNG.normal(size=3), RNG.normal(size=4))),
    "where and kinks": (lambda x: np.where(x > 0, x ** 3, -np.abs(x)) + np.maximum(x, 0.2), (RNG.normal(size=5),)),
    "float32": (lambda x: np.sum(np.exp(-x * x) * 2.0), (RNG.normal(size=5).astype(np.float32),)),
}


def _ops(accelerate):
    return {
        "reverse": dk.Reverse(accelerate=accelerate),
        "forward": dk.Forward(accelerate=accelerate),
    }


@pytest.mark.parametrize("backend", ["reverse", "forward"])
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_speedups_change_no_result(name, backend):
    f, args = CORPUS[name]
    fast, plain = _ops(True)[backend], _ops(False)[backend]
    out = f(*args)
    argnums = tuple(range(len(args)))
    # float64: a reassociated sum or math's libm against NumPy's differs by a few ulps at most
    tol = dict(rtol=1e-5 if np.result_type(*args) == np.float32 else 1e-13, atol=1e-13)
    if np.ndim(out) == 0:
        for a, b in zip(dk.grad(f, argnums=argnums, backend=fast)(*args),
                        dk.grad(f, argnums=argnums, backend=plain)(*args)):
            assert np.result_type(a) == np.result_type(b)
            np.testing.assert_allclose(a, b, **tol)
        for ra, rb in zip(dk.hessian(f, argnums=argnums, backend=fast)(*args),
                          dk.hessian(f, argnums=argnums, backend=plain)(*args)):
            for a, b in zip(ra, rb):
                np.testing.assert_allclose(a, b, **tol)
    for a, b in zip(dk.jacobian(f, argnums=argnums, backend=fast)(*args),
                    dk.jacobian(f, argnums=argnums, backend=plain)(*args)):
        np.testing.assert_allclose(a, b, **tol)


def test_the_plain_path_uses_no_speedup():
    # no math fast path (NumPy scalars come back), no diagonal seeds
    g = dk.grad(lambda x: np.sin(x) * x, backend=dk.Reverse(accelerate=False))(0.5)
    assert type(g) is not float and np.isclose(g, np.cos(0.5) * 0.5 + np.sin(0.5), rtol=1e-15)
    assert dk.Reverse(accelerate=False).diagonal_seeds is False
    assert dk.Forward(accelerate=False).diagonal_seeds is False
    assert repr(dk.Reverse(accelerate=False)) == "Reverse(accelerate=False)"
