"""Pytree arguments (nested dicts, lists, tuples, namedtuples; JAX's conventions) on every
operator and every backend, against derivatives worked out by hand."""

from __future__ import annotations

import collections

import numpy as np
import pytest

import diffkit as dk

BACKENDS = ["forward", "reverse", "compiled", "numeric", "symbolic"]

Params = collections.namedtuple("Params", "w b")


def close(a, b, tol):
    """Same pytree structure and leaves within ``tol``."""
    la, ta = dk.tree_flatten(a)
    lb, tb = dk.tree_flatten(b)
    assert ta == tb, (ta, tb)
    for x, y in zip(la, lb):
        assert np.shape(x) == np.shape(y)
        np.testing.assert_allclose(np.asarray(x, dtype=float), np.asarray(y, dtype=float), rtol=tol, atol=tol)


def tol_of(backend):
    return 1e-6 if backend == "numeric" else 1e-12


# ---------------------------------------------------------------------------
# the tree utilities
# ---------------------------------------------------------------------------


def test_flatten_order_is_jax():
    leaves, tree = dk.tree_flatten({"w": [1.0, (2.0, None)], "b": 3.0, "a": Params(4.0, 5.0)})
    assert leaves == [4.0, 5.0, 3.0, 1.0, 2.0]  # keys sorted: a, b, w; namedtuple in field order
    assert tree.num_leaves == 5
    assert repr(tree) == "PyTreeDef({'a': Params(w=*, b=*), 'b': *, 'w': [*, (*, None)]})"
    back = dk.tree_unflatten(tree, leaves)
    assert back == {"w": [1.0, (2.0, None)], "b": 3.0, "a": Params(4.0, 5.0)}
    assert type(back["a"]) is Params


def test_ordered_dict_keeps_insertion_order():
    d = collections.OrderedDict([("z", 1.0), ("a", 2.0)])
    leaves, tree = dk.tree_flatten(d)
    assert leaves == [1.0, 2.0]
    assert type(dk.tree_unflatten(tree, leaves)) is collections.OrderedDict


def test_none_has_no_leaves_and_arrays_are_leaves():
    leaves, tree = dk.tree_flatten([None, np.arange(3.0)])
    assert len(leaves) == 1 and tree.num_leaves == 1
    assert dk.tree_structure(None).num_leaves == 0


def test_tree_map_and_structure_mismatch():
    assert dk.tree_map(lambda a, b: a * b, (1.0, [2.0]), (3.0, [4.0])) == (3.0, [8.0])
    with pytest.raises(dk.InvalidArgument, match="differ in structure"):
        dk.tree_map(lambda a, b: a, (1.0, 2.0), [1.0, 2.0])
    with pytest.raises(dk.InvalidArgument, match="3 leaves"):
        dk.tree_unflatten(dk.tree_structure((1.0, 2.0, 3.0)), [1.0])


def test_register_pytree_node():
    class Box:
        def __init__(self, inner, scale):
            self.inner, self.scale = inner, scale

    dk.register_pytree_node(Box, lambda b: ((b.inner,), b.scale), lambda scale, ch: Box(ch[0], scale))
    g = dk.grad(lambda b: b.scale * np.sum(b.inner ** 2))(Box(np.array([1.0, 2.0]), 3.0))
    assert isinstance(g, Box) and g.scale == 3.0  # aux data is kept, not differentiated
    np.testing.assert_allclose(g.inner, [6.0, 12.0])
    with pytest.raises(dk.InvalidArgument):
        dk.register_pytree_node(dict, lambda d: ((), None), lambda a, c: {})


# ---------------------------------------------------------------------------
# the operators, every backend
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_of_dict(backend):
    g = dk.grad(lambda p: p["w"] * p["b"], backend=backend)({"w": 1.0, "b": 2.0})
    close(g, {"w": 2.0, "b": 1.0}, tol_of(backend))
    assert list(g) == ["b", "w"]  # rebuilt in JAX's (sorted) key order


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_of_nested_tree(backend):
    # f = w * sum(v**2) * x + sum(t[0] * t[1]); by hand:
    # df/dw = sum(v**2) x, df/dv = 2 w v x, df/dt0 = t1, df/dt1 = t0, df/dx = w sum(v**2)
    def f(p, x):
        return p["w"] * np.sum(p["layer"].w ** 2) * x + np.sum(p["pair"][0] * p["pair"][1])

    v = np.array([1.0, 2.0])
    t0, t1 = np.array([0.5, -1.0]), np.array([3.0, 4.0])
    p = {"w": 2.0, "layer": Params(v, None), "pair": [t0, t1], "skip": None}
    gp, gx = dk.grad(f, argnums=(0, 1), backend=backend)(p, 3.0)
    close(gp, {"w": 5.0 * 3.0, "layer": Params(2 * 2.0 * v * 3.0, None), "pair": [t1, t0], "skip": None},
          tol_of(backend))
    assert type(gp["layer"]) is Params
    close(gx, 2.0 * 5.0, tol_of(backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_of_tuple_and_list_arguments(backend):
    # a tuple of parameters (this used to raise NumPy's ValueError)
    # f = sum(t0**2 * t1) over the two entries of t1: df/dt0 = 2 t0 sum(t1), df/dt1 = t0**2
    g = dk.grad(lambda t: np.sum(t[0] ** 2 * t[1]), backend=backend)((3.0, np.array([1.0, 2.0])))
    assert type(g) is tuple
    close(g, (18.0, np.array([9.0, 9.0])), tol_of(backend))
    g = dk.grad(lambda xs: xs[0] * xs[1] * xs[2], backend=backend)([1.0, 2, 3.0])  # an int leaf promotes
    assert type(g) is list
    close(g, [6.0, 3.0, 2.0], tol_of(backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_of_namedtuple(backend):
    g = dk.grad(lambda p: p.w * p.b ** 2, backend=backend)(Params(1.0, 3.0))
    assert type(g) is Params
    close(g, Params(9.0, 6.0), tol_of(backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_value_and_grad_with_aux_and_keywords(backend):
    def loss(p, x, scale=1.0):
        r = p["a"] * x + p["c"]
        return scale * np.sum(r ** 2), {"r": r}

    x = np.array([1.0, 2.0])
    p = {"a": 0.5, "c": -1.0}
    (val, aux), g = dk.value_and_grad(loss, has_aux=True, backend=backend)(p, x, scale=2.0)
    r = p["a"] * x + p["c"]
    np.testing.assert_allclose(val, 2.0 * np.sum(r ** 2))
    np.testing.assert_allclose(aux["r"], r)
    close(g, {"a": 4.0 * np.sum(r * x), "c": 4.0 * np.sum(r)}, tol_of(backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_argnums_selects_whole_arguments(backend):
    f = lambda a, b: a["u"] * b[0] + b[1]  # noqa: E731
    gb, ga = dk.grad(f, argnums=(1, 0), backend=backend)({"u": 2.0}, (3.0, 4.0))
    close(gb, (2.0, 1.0), tol_of(backend))
    close(ga, {"u": 3.0}, tol_of(backend))
    close(dk.grad(f, argnums=1, backend=backend)({"u": 2.0}, (3.0, 4.0)), (2.0, 1.0), tol_of(backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_jacobian_of_tree_argument(backend):
    # y = [w*b, w, b**2]: dy/dw = [b, 1, 0], dy/db = [w, 0, 2b]
    f = lambda p: np.stack([p["w"] * p["b"], p["w"], p["b"] ** 2])  # noqa: E731
    J = dk.jacobian(f, backend=backend)({"w": 1.0, "b": 2.0})
    close(J, {"w": np.array([2.0, 1.0, 0.0]), "b": np.array([1.0, 0.0, 4.0])}, tol_of(backend))
    # array leaves: shape out.shape + leaf.shape
    J = dk.jacobian(lambda t: t[0] * t[1], backend=backend)((np.array([1.0, 2.0]), np.array([3.0, 5.0])))
    close(J, (np.diag([3.0, 5.0]), np.diag([1.0, 2.0])), tol_of(backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_hessian_nests_as_jax(backend):
    # f = w**2 b + b**3: H = [[2b, 2w], [2w, 6b]]
    H = dk.hessian(lambda p: p["w"] ** 2 * p["b"] + p["b"] ** 3, backend=backend)({"w": 1.0, "b": 2.0})
    tol = 1e-5 if backend == "numeric" else 1e-12
    close(H, {"b": {"b": 12.0, "w": 2.0}, "w": {"b": 2.0, "w": 4.0}}, tol)
    # two arguments, one a tuple: H[i][j], argument i's structure outside, j's inside
    f = lambda t, z: t[0] * t[1] * z ** 2  # noqa: E731
    H = dk.hessian(f, argnums=(0, 1), backend=backend)((1.0, 2.0), 3.0)
    # d2/dt0dt1 = z**2, d2/dt0dz = 2 t1 z, d2/dt1dz = 2 t0 z, d2/dz2 = 2 t0 t1
    close(H[0][0], ((0.0, 9.0), (9.0, 0.0)), tol)
    close(H[0][1], (12.0, 6.0), tol)
    close(H[1][0], (12.0, 6.0), tol)
    close(H[1][1], 4.0, tol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hessian_with_array_leaves(backend):
    # f = sum(v**2) * s: d2/dv2 = 2 s I, d2/dv ds = 2 v, d2/ds2 = 0
    v = np.array([1.0, -2.0])
    H = dk.hessian(lambda p: np.sum(p["v"] ** 2) * p["s"], backend=backend)({"v": v, "s": 3.0})
    tol = 1e-5 if backend == "numeric" else 1e-12
    close(H, {"s": {"s": 0.0, "v": 2 * v}, "v": {"s": 2 * v, "v": 6.0 * np.eye(2)}}, tol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hessian_of_a_pytree_output(backend):
    # the output's structure outside, then the argument's twice (as jax.hessian)
    f = lambda p: {"a": p["w"] ** 2 * p["b"], "b": (p["w"] * p["b"], np.sin(p["w"]))}  # noqa: E731
    H = dk.hessian(f, backend=backend)({"w": 1.0, "b": 2.0})
    tol = 1e-5 if backend == "numeric" else 1e-12
    # w**2 b: [[2b, 2w], [2w, 0]]; w b: [[0, 1], [1, 0]]; sin w: [[-sin w, 0], [0, 0]]
    close(H["a"], {"b": {"b": 0.0, "w": 2.0}, "w": {"b": 2.0, "w": 4.0}}, tol)
    close(H["b"][0], {"b": {"b": 0.0, "w": 1.0}, "w": {"b": 1.0, "w": 0.0}}, tol)
    close(H["b"][1], {"b": {"b": 0.0, "w": 0.0}, "w": {"b": 0.0, "w": -np.sin(1.0)}}, tol)
    # a list output with an array leaf and two arguments: H[k][i][j] of shape leaf + () + ()
    H = dk.hessian(lambda x, y: [x ** 3 * y, x * y * np.array([1.0, 2.0])], argnums=(0, 1),
                   backend=backend)(2.0, 3.0)
    assert isinstance(H, list) and len(H) == 2
    close(H[0], ((36.0, 12.0), (12.0, 0.0)), tol)  # 6xy, 3x**2; 3x**2, 0
    close(H[1], ((np.zeros(2), np.array([1.0, 2.0])), (np.array([1.0, 2.0]), np.zeros(2))), tol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_jvp_and_vjp_with_tree_tangents(backend):
    def f(p, x):
        return p["w"] * np.sum(p["v"]) * x

    p = {"w": 2.0, "v": np.array([1.0, 3.0])}
    out, t = dk.jvp(f, (p, 1.5), ({"w": 1.0, "v": np.array([0.0, 1.0])}, 0.5), backend=backend)
    # t = dw sum(v) x + w sum(dv) x + w sum(v) dx = 6 + 3 + 4
    close(out, 12.0, 1e-12)
    close(t, 13.0, tol_of(backend))
    out, vjp_fn = dk.vjp(f, p, 1.5, backend=backend)
    cts = vjp_fn(2.0)
    close(cts, ({"w": 2.0 * 4.0 * 1.5, "v": np.array([6.0, 6.0])}, 2.0 * 8.0), tol_of(backend))


def test_jvp_tangent_structure_must_match():
    with pytest.raises(dk.ShapeError, match="differs in structure"):
        dk.jvp(lambda p: p["a"] * 2.0, ({"a": 1.0},), ({"b": 1.0},))


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_numeric_leaf_names_its_path(backend):
    with pytest.raises(dk.InvalidType, match=r"leaf p\['b'\]\[1\] of a pytree argument must be numeric.*str 'a'"):
        dk.grad(lambda p: p["w"] * 2.0, backend=backend)({"w": 1.0, "b": [1.0, "a"]})


@pytest.mark.parametrize("backend", BACKENDS)
def test_undifferentiated_tree_arguments_pass_through(backend):
    # argument 1 is a dict of data, not differentiated: passed as it is
    data = {"x": np.array([3.0, 4.0]), "s": [2.0]}
    g = dk.grad(lambda w, d: np.sum(w * d["x"]) * d["s"][0], backend=backend)(np.array([1.0, 2.0]), data)
    close(g, np.array([6.0, 8.0]), tol_of(backend))
    H = dk.hessian(lambda w, d: np.sum(w ** 2 * d["x"]), backend=backend)(np.array([1.0, 2.0]), data)
    close(H, np.diag([6.0, 8.0]), 1e-5 if backend == "numeric" else 1e-12)


def test_nested_grad_of_tree():
    # d/dx of grad wrt p of p["a"] * x**2 -> d/dx (x**2) = 2x
    inner = lambda x: dk.grad(lambda p: p["a"] * x ** 2)({"a": 1.0})["a"]  # noqa: E731
    for be in ("forward", "reverse"):
        close(dk.grad(inner, backend=be)(3.0), 6.0, 1e-12)


def test_empty_tree_has_empty_gradient():
    g = dk.grad(lambda p, x: x * 2.0, argnums=(0, 1))({"n": None}, 1.0)
    assert g[0] == {"n": None}
    close(g[1], 2.0, 1e-12)


# ---------------------------------------------------------------------------
# pytree outputs: jacobian, jvp, vjp
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_jacobian_of_tree_output(backend):
    # output structure outside, the argument's inside (as jax.jacobian)
    f = lambda p: {"prod": p["w"] * p["b"], "vec": np.stack([p["w"], p["b"] ** 2]), "n": None}  # noqa: E731
    J = dk.jacobian(f, backend=backend)({"w": 1.0, "b": 2.0})
    close(J, {"n": None, "prod": {"b": 1.0, "w": 2.0},
              "vec": {"b": np.array([0.0, 4.0]), "w": np.array([1.0, 0.0])}}, tol_of(backend))
    # a tuple output of two array arguments: d(x*y)/dx = y I, d(x*y)/dy = x, d(x+y)/dx = I, d(x+y)/dy = 1
    x = np.array([1.0, 2.0])
    J = dk.jacobian(lambda x, y: (x * y, x + y), argnums=(0, 1), backend=backend)(x, 3.0)
    close(J, ((3.0 * np.eye(2), x), (np.eye(2), np.ones(2))), tol_of(backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_jvp_vjp_of_tree_output(backend):
    f = lambda x, y: {"s": x * y, "v": np.stack([x, y ** 2])}  # noqa: E731
    out, t = dk.jvp(f, (2.0, 3.0), (1.0, 0.5), backend=backend)
    close(out, {"s": 6.0, "v": np.array([2.0, 9.0])}, 1e-12)
    close(t, {"s": 3.0 * 1.0 + 2.0 * 0.5, "v": np.array([1.0, 2 * 3.0 * 0.5])}, tol_of(backend))
    out, vjp_fn = dk.vjp(f, 2.0, 3.0, backend=backend)
    # cotangent (1, [10, 100]): d/dx = y + 10, d/dy = x + 100 * 2y
    close(vjp_fn({"s": 1.0, "v": np.array([10.0, 100.0])}), (13.0, 602.0), tol_of(backend))
    with pytest.raises(dk.ShapeError, match="differs in structure"):
        vjp_fn([1.0, 2.0])
    with pytest.raises(dk.ShapeError, match="shape"):
        vjp_fn({"s": 1.0, "v": np.ones(3)})


@pytest.mark.parametrize("backend", BACKENDS)
def test_vjp_tree_output_with_aux(backend):
    out, vjp_fn, aux = dk.vjp(lambda x: ((x, [x * 2.0]), "note"), 2.0, has_aux=True, backend=backend)
    close(out, (2.0, [4.0]), 1e-12)
    assert aux == "note"
    close(vjp_fn((1.0, [1.0])), (3.0,), tol_of(backend))


def test_tree_output_on_a_compiled_symbolic_derivative():
    # the second call reuses the compiled derivative (the function is not traced again),
    # a timeout traces in a child process: the output's structure is known either way
    f = lambda x: {"a": x ** 2, "b": (x, 3.0 * x)}  # noqa: E731
    for be in (dk.Symbolic(), dk.Symbolic(timeout=60)):
        for x in (2.0, 5.0):
            close(dk.jacobian(f, backend=be)(x), {"a": 2 * x, "b": (1.0, 3.0)}, 1e-12)
            close(dk.jvp(f, (x,), (2.0,), backend=be)[1], {"a": 4 * x, "b": (2.0, 6.0)}, 1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_outputs_without_derivative_still_refused(backend):
    with pytest.raises(dk.InvalidType, match="returned a dict"):
        dk.jacobian(lambda x: {"a": x, "s": "text"}, backend=backend)(1.0)
    with pytest.raises(dk.InvalidType, match="returned None"):
        dk.jacobian(lambda x: None, backend=backend)(1.0)
    with pytest.raises(dk.InvalidType, match="returned a dict"):
        dk.grad(lambda x: {"a": x}, backend=backend)(1.0)  # grad needs a scalar, as in JAX


# ---------------------------------------------------------------------------
# lists and object arrays of traced values where NumPy takes an array
# ---------------------------------------------------------------------------

W = np.array([2.0, 3.0])

# f(x, y, w) and its gradient in (x, y) at x = 2, y = 3, w = [2, 3], by hand
LISTS = {
    "np.stack([x, y])": (lambda x, y, w: np.sum(np.stack([x, y]) * w), (2.0, 3.0)),
    "np.array([x, y]) * w": (lambda x, y, w: np.sum(np.array([x, y]) * w), (2.0, 3.0)),
    "np.array([x, y]) @ w": (lambda x, y, w: np.array([x, y]) @ w, (2.0, 3.0)),
    "np.array([x, y]).sum()": (lambda x, y, w: np.array([x, y]).sum(), (1.0, 1.0)),
    "np.sum([x*x, y])": (lambda x, y, w: np.sum([x * x, y]), (4.0, 1.0)),
    "np.dot([x, y], w)": (lambda x, y, w: np.dot([x, y], w), (2.0, 3.0)),
    "np.dot(w, [x, y])": (lambda x, y, w: np.dot(w, [x, y]), (2.0, 3.0)),
    "np.matmul([x, y], w)": (lambda x, y, w: np.matmul([x, y], w), (2.0, 3.0)),
    "np.einsum('i,i->', [x, y], w)": (lambda x, y, w: np.einsum("i,i->", [x, y], w), (2.0, 3.0)),
    "np.concatenate([[x], [y]])": (lambda x, y, w: np.sum(np.concatenate([[x], [y]]) * w), (2.0, 3.0)),
    "np.concatenate([w, [x, y]])": (lambda x, y, w: np.sum(np.concatenate([w, [x * y, y]])), (3.0, 3.0)),
    "np.stack([w, [x, y]])": (lambda x, y, w: np.sum(np.stack([w, [x, y]]) ** 2), (4.0, 6.0)),
    "np.append(w, [x, y])": (lambda x, y, w: np.sum(np.append(w, [x, y * y])), (1.0, 6.0)),
    "np.hstack([[x], [y]])": (lambda x, y, w: np.sum(np.hstack([[x], [y]]) * w), (2.0, 3.0)),
    "w + [x, y]": (lambda x, y, w: np.sum((w + [x, y]) ** 2), (8.0, 12.0)),
    "w * (x, y)": (lambda x, y, w: np.sum(w * (x, y)), (2.0, 3.0)),
    "np.where(w > 0, [x, y], w)": (lambda x, y, w: np.sum(np.where(w > 2.5, [x, y], w)), (0.0, 1.0)),
    "np.maximum([x, 1.0], w)": (lambda x, y, w: np.sum(np.maximum([x * y, 1.0], w)), (3.0, 2.0)),
    "np.exp([x, y])": (lambda x, y, w: np.sum(np.exp([x, y])), (np.exp(2.0), np.exp(3.0))),
    "np.prod([x, y])": (lambda x, y, w: np.prod([x, y]), (3.0, 2.0)),
    "np.linalg.norm([x, y])": (lambda x, y, w: np.linalg.norm([x, y]), (2.0 / np.sqrt(13.0), 3.0 / np.sqrt(13.0))),
    "np.asarray([x, y]) ** 2": (lambda x, y, w: np.sum(np.asarray([x, y]) ** 2), (4.0, 6.0)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(LISTS))
def test_lists_of_traced_values(case, backend):
    f, expected = LISTS[case]
    g = dk.grad(f, argnums=(0, 1), backend=backend)(2.0, 3.0, W)
    close(g, expected, tol_of(backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_mean_of_a_list(backend):
    # NumPy's mean of an object array divides its sum through dtype.type, which keeps
    # a traced value traced
    for f in (lambda x, y: np.mean([x, y * y]), lambda x, y: np.array([x, y * y]).mean()):
        close(dk.grad(f, argnums=(0, 1), backend=backend)(2.0, 3.0), (0.5, 3.0), tol_of(backend))


@pytest.mark.parametrize("backend", ["forward", "reverse", "compiled"])
def test_linalg_of_an_object_array_says_what_to_write(backend):
    with pytest.raises(dk.TracingError, match=r"np\.stack"):
        dk.grad(lambda x, y: np.linalg.det(np.array([[x, 1.0], [y, x]])), backend=backend)(2.0, 3.0)
    g = dk.grad(lambda x, y: np.linalg.det(np.stack([np.stack([x, 1.0]), np.stack([y, x])])),
                argnums=(0, 1), backend=backend)(2.0, 3.0)
    close(g, (4.0, -1.0), 1e-12)  # det = x**2 - y


# ---------------------------------------------------------------------------
# in-place updates of traced arrays (the index_update primitive, JAX's .at[].set)
# ---------------------------------------------------------------------------


def fill_buffer(x, y):
    a = np.zeros(3) * x              # a traced array: its entries may then be set
    for i in range(3):
        a[i] = x ** (i + 1) * y
    return np.sum(a)                 # (x + x**2 + x**3) y


def set_masked(x, y):
    a = x * np.array([1.0, 2.0, 3.0])
    a[np.array([False, True, True])] += y   # [x, 2x + y, 3x + y]
    return np.sum(a * a)


def set_slice(x, y):
    a = x * np.ones((2, 3))
    a[:, 1:] = np.stack([y, 2 * y])  # each row [x, y, 2y]
    return np.sum(a ** 2)            # 2 x**2 + 10 y**2


def set_fancy(x, y):
    a = x * np.ones(4)
    a[[0, 2]] = [y, y * y]           # [y, x, y**2, x]
    return np.sum(a * np.arange(1.0, 5.0))  # y + 2x + 3y**2 + 4x


INPLACE = {
    # at x = 2, y = 3: the gradient and the Hessian, by hand
    fill_buffer: ((51.0, 14.0), ((42.0, 17.0), (17.0, 0.0))),  # (1 + 2x + 3x**2) y, x + x**2 + x**3
    set_masked: ((86.0, 32.0), ((28.0, 10.0), (10.0, 4.0))),
    set_slice: ((8.0, 60.0), ((4.0, 0.0), (0.0, 20.0))),
    set_fancy: ((6.0, 19.0), ((0.0, 0.0), (0.0, 6.0))),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("f", list(INPLACE), ids=lambda f: f.__name__)
def test_inplace_updates_differentiate(f, backend):
    g, H = INPLACE[f]
    close(dk.grad(f, argnums=(0, 1), backend=backend)(2.0, 3.0), g, tol_of(backend))
    close(dk.hessian(f, argnums=(0, 1), backend=backend)(2.0, 3.0), H, 1e-5 if backend == "numeric" else 1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_inplace_update_jacobian_batched(backend):
    # a vector output: the forward backend pushes a batch of tangents, the reverse one a
    # batch of cotangents through the rules. out = [x0, y * x1, y] -> J by hand
    def f(x, y):
        a = x * 1.0
        a[1] = a[1] * y
        a[np.array([0, 2])] = np.stack([a[0], y])
        return a

    x = np.array([2.0, 5.0, 7.0])
    Jx, Jy = dk.jacobian(f, argnums=(0, 1), backend=backend)(x, 3.0)
    close(Jx, np.array([[1.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.0]]), tol_of(backend))
    close(Jy, np.array([0.0, 5.0, 1.0]), tol_of(backend))
    out, vjp_fn = dk.vjp(f, x, 3.0, backend=backend)
    close(out, np.array([2.0, 15.0, 3.0]), 1e-12)
    close(vjp_fn(np.array([1.0, 10.0, 100.0])), (np.array([1.0, 30.0, 0.0]), 150.0), tol_of(backend))


@pytest.mark.parametrize("backend", ["forward", "reverse", "symbolic"])
def test_inplace_update_errors(backend):
    def into_float_array(x):
        a = np.zeros(3)
        a[0] = x                     # NumPy stores floats: no derivative could pass through
        return np.sum(a)

    with pytest.raises(dk.TracingError, match="float"):
        dk.grad(into_float_array, backend=backend)(1.0)

    def into_argument(v):
        v[0] = 1.0                   # the backend reads its argument after the call
        return np.sum(v)

    with pytest.raises(dk.TracingError, match=r"argument.*copy it first"):
        dk.grad(into_argument, backend=backend)(np.ones(3))

    def repeated(x):
        a = x * 1.0
        a[[0, 0]] = x[1]
        return np.sum(a)

    with pytest.raises(dk.InvalidArgument, match="twice"):
        dk.grad(repeated, backend=backend)(np.ones(3))


def test_other_names_keep_the_old_value():
    # a[i] = v makes a new value that `a` stands for; b, bound before, keeps the old one
    def f(x):
        a = x * 1.0
        b = a[0:2]
        a[0] = 10.0 * x[1]
        return np.sum(b) + a[0]      # x0 + x1 + 10 x1

    for be in ("forward", "reverse"):
        close(dk.grad(f, backend=be)(np.array([1.0, 2.0])), np.array([1.0, 11.0]), 1e-12)


# ---------------------------------------------------------------------------
# the harness: dk.crosscheck on pytree arguments (one value per leaf)
# ---------------------------------------------------------------------------


def _mlp_loss(p, x):
    return np.sum(np.tanh(x @ p["W"] + p["b"]) ** 2)


MLP_P = {"W": np.array([[0.5, -0.3], [0.2, 0.1]]), "b": np.array([0.1, -0.2])}
MLP_X = np.array([[1.0, 2.0], [0.5, -1.0]])


def _mlp_grad_by_hand(p, x):
    z = x @ p["W"] + p["b"]
    dz = 2 * np.tanh(z) * (1 - np.tanh(z) ** 2)
    return {"W": x.T @ dz, "b": dz.sum(axis=0)}


def test_crosscheck_of_tree_arguments():
    report = dk.crosscheck(_mlp_loss, (MLP_P, MLP_X), "grad", candidates={"by hand": _mlp_grad_by_hand})
    assert report.ok, str(report)
    assert sorted(r.backend for r in report.rows) == ["by hand", "compiled", "forward", "numeric", "reverse", "symbolic"]
    want = np.concatenate([np.ravel(v) for v in dk.tree_leaves(_mlp_grad_by_hand(MLP_P, MLP_X))])
    for row in report.rows:  # the flat values: the leaves in JAX's order (b, then W)
        np.testing.assert_allclose(row.value, want, rtol=1e-9)


def test_crosscheck_tree_hessian_jvp_and_namedtuple():
    f = lambda t, s: t[0] * np.sin(t[1]) * s  # noqa: E731
    assert dk.crosscheck(f, ((1.0, 2.0), 3.0), "hessian", argnums=(0, 1)).ok
    assert dk.crosscheck(f, ((1.0, 2.0), 3.0), "jvp", tangents=((1.0, 0.5), 0.2)).ok
    dk.assert_backends_agree(lambda p: p.w * p.b ** 2, (Params(1.0, 2.0),))
    with pytest.raises(dk.ShapeError, match="differs in structure"):
        dk.crosscheck(f, ((1.0, 2.0), 3.0), "jvp", tangents=([1.0, 0.5], 0.2))


@pytest.mark.parametrize("backend", BACKENDS)
def test_complex_leaf_takes_jax_gradient(backend):
    # f = |z|**2 r with z = x + iy: JAX's gradient df/dx - i df/dy = 2 r conj(z); df/dr = |z|**2
    g = dk.grad(lambda p: np.abs(p["z"]) ** 2 * p["r"], backend=backend)({"z": 1 + 2j, "r": 2.0})
    np.testing.assert_allclose(g["z"], 4 - 8j, rtol=tol_of(backend))
    np.testing.assert_allclose(g["r"], 5.0, rtol=tol_of(backend))
