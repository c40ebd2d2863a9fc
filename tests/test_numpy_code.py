"""Real NumPy code runs: unchanged user NumPy code differentiated on the AD backends.

Every case is a plain NumPy function a user might write. Its gradient or
Jacobian is computed with ``dk.grad`` / ``dk.jacobian`` on the "forward" and
"reverse" backends and compared with

* an independent reference: a central finite difference of the same plain
  NumPy function evaluated in float64 (no diffkit involved), and, where the
  derivative is easy to write down, a hand derivation;
* each other: the two AD backends compute the same exact derivative through
  different arithmetic, so they must agree to round-off (~1e-12 relative).

Points are chosen away from kinks (|x| = 0, ties of max/sort, clip bounds),
so the finite difference is a valid reference everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest

import diffkit as dk

BACKENDS = ("forward", "reverse", "compiled")

# Central difference f'(x) ~ (f(x+h) - f(x-h)) / 2h with h = 1e-6 * max(1, |x|):
# truncation error ~ h^2 |f'''| / 6 ~ 1e-13 and round-off ~ eps |f| / h ~ 1e-10
# for the O(1..10) quantities below, so 1e-6 relative (against the largest
# entry of the reference) leaves a wide margin while still catching any wrong
# rule (those are off by O(1)).
FD_REL_STEP = 1e-6
FD_RTOL = 1e-6
# Forward and reverse compute the same exact derivative; they differ only in
# the order of floating-point operations.
AGREE_RTOL = 1e-12
# Hand derivations are evaluated in float64 in yet another order.
HAND_RTOL = 1e-10


# ---------------------------------------------------------------------------
# Reference machinery
# ---------------------------------------------------------------------------


def _perturbed(args: tuple[Any, ...], i: int, idx: tuple[int, ...], delta: float) -> list[Any]:
    new = list(args)
    a = args[i]
    if np.ndim(a) == 0:
        new[i] = float(a) + delta
    else:
        arr = np.array(a, dtype=float)
        arr[idx] += delta
        new[i] = arr
    return new


def fd_jacobian(f: Callable[..., Any], args: tuple[Any, ...], i: int) -> np.ndarray:
    """Central-difference Jacobian of plain-NumPy ``f`` w.r.t. argument ``i``: out.shape + in.shape."""
    x = np.asarray(args[i], dtype=float)
    out0 = np.asarray(f(*args), dtype=float)
    jac = np.zeros(out0.shape + x.shape)
    for idx in np.ndindex(*x.shape):
        h = FD_REL_STEP * max(1.0, abs(float(x[idx])))
        fp = np.asarray(f(*_perturbed(args, i, idx, h)), dtype=float)
        fm = np.asarray(f(*_perturbed(args, i, idx, -h)), dtype=float)
        jac[(Ellipsis,) + idx] = (fp - fm) / (2 * h)
    return jac


def fd_reference(f: Callable[..., Any], args: tuple[Any, ...], argnums: int | tuple[int, ...]) -> Any:
    if isinstance(argnums, tuple):
        return tuple(fd_jacobian(f, args, i) for i in argnums)
    return fd_jacobian(f, args, argnums)


def assert_close(actual: Any, expected: Any, rtol: float, what: str) -> None:
    """Element-wise closeness, relative to the largest entry (plus shape and tuple structure)."""
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple), f"{what}: expected a tuple, got {type(actual).__name__}"
        assert len(actual) == len(expected), f"{what}: tuple length {len(actual)} != {len(expected)}"
        for k, (a, e) in enumerate(zip(actual, expected)):
            assert_close(a, e, rtol, f"{what}[{k}]")
        return
    assert not isinstance(actual, tuple), f"{what}: got a tuple, expected an array"
    a = np.asarray(actual)
    e = np.asarray(expected, dtype=float)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
    assert a.dtype.kind == "f", f"{what}: dtype {a.dtype} is not floating point"
    scale = max(1.0, float(np.max(np.abs(e)))) if e.size else 1.0
    np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * scale, err_msg=what)


# ---------------------------------------------------------------------------
# The cases
# ---------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    f: Callable[..., Any]
    args: tuple[Any, ...]
    argnums: int | tuple[int, ...] = 0
    op: str = "grad"  # "grad" or "jacobian"
    hand: Callable[..., Any] | None = None  # hand-derived derivative, same structure as the result
    # known library bugs: key "forward" / "reverse" / "agree" -> reason
    xfail: dict[str, str] = field(default_factory=dict)


rng = np.random.default_rng(20240607)
V = np.array([0.7, -1.3, 0.4, -0.25, 1.1])  # no zeros, no ties in |v|, distinct values
W = np.array([0.3, 0.9, -0.6, 1.4, -0.8])
M = np.array([[0.5, -1.2, 0.8, 1.7], [1.1, 0.3, -0.4, 0.9], [-0.7, 1.6, 0.2, -1.5]])  # 3x4
A = np.array([[2.0, 0.5, -0.3], [0.4, 1.5, 0.6], [-0.2, 0.7, 3.0]])  # well-conditioned 3x3
B3 = np.array([0.5, -1.0, 2.0])
BM = np.array([[0.5, 1.0], [-1.0, 0.3], [2.0, -0.7]])
SQ = np.array([[1.3, -0.4, 0.9], [0.2, 0.8, -1.1], [-0.6, 1.5, 0.4]])  # non-symmetric 3x3
X, Y = 0.8, -0.6

CASES: list[Case] = []

# Regressions found by these tests and fixed: forward-mode stack/concatenate with a
# constant first, logabsdet's VJP on a scalar cotangent, binary ufuncs on object
# arrays, the error for assigning a traced value into a float array. A case that
# meets a known bug again can be marked with xfail=bug(REASON).


def bug(reason: str, *keys: str) -> dict[str, str]:
    """xfail marks for a known bug on the given test kinds ("forward", "reverse", "agree")."""
    return {k: reason for k in (keys or ("forward", "reverse", "agree"))}



def case(*args: Any, **kw: Any) -> None:
    CASES.append(Case(*args, **kw))


# -- np.array([...]) built from traced scalars ------------------------------
case("array_of_scalars_sum_sq", lambda x, y: np.sum(np.array([x, y]) ** 2), (X, Y), (0, 1),
     hand=lambda x, y: (2 * x, 2 * y))
case("array_of_scalars_matvec", lambda x, y: np.array([[x, y], [y, x]]) @ np.array([1.0, 2.0]),
     (X, Y), (0, 1), "jacobian", hand=lambda x, y: (np.array([1.0, 2.0]), np.array([2.0, 1.0])))
case("array_of_scalars_sin", lambda x, y: np.sin(np.array([x, y])), (X, Y), (0, 1), "jacobian",
     hand=lambda x, y: (np.array([np.cos(x), 0.0]), np.array([0.0, np.cos(y)])))
case("array_of_scalars_sin_sum", lambda x, y: np.sum(np.sin(np.array([x, y]))), (X, Y), (0, 1),
     hand=lambda x, y: (np.cos(x), np.cos(y)))
case("array_of_scalars_from_vector_entries",
     lambda v: np.array([[v[0], -v[1]], [v[1], v[0]]]) @ np.array([1.0, 2.0]) + np.sum(np.array([v[0], v[1]])),
     (np.array([X, Y]),), 0, "jacobian", hand=lambda v: np.array([[2.0, -1.0], [3.0, 2.0]]))
case("array_of_scalars_maximum", lambda x, y: np.maximum(np.array([x, y, x * y]), 0.0), (X, Y), (0, 1),
     "jacobian", hand=lambda x, y: (np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 0.0])))
case("array_of_scalars_norm", lambda x, y: np.linalg.norm(np.array([x, y])), (X, Y), (0, 1),
     hand=lambda x, y: (x / math.hypot(x, y), y / math.hypot(x, y)))
case("array_of_scalars_arctan2", lambda x, y: np.arctan2(np.array([x, y]), 2.0), (X, Y), (0, 1),
     "jacobian")
case("array_of_scalars_clip", lambda x, y: np.clip(np.array([x, y, x * y]), -0.5, 0.5), (X, Y), (0, 1),
     "jacobian", hand=lambda x, y: (np.array([0.0, 0.0, y]), np.array([0.0, 0.0, x])))

# -- stacking and joining ----------------------------------------------------
case("stack_scalars", lambda x: np.stack([x, x**2, np.sin(x)]), (X,), 0, "jacobian",
     hand=lambda x: np.array([1.0, 2 * x, np.cos(x)]))
case("concatenate", lambda v: np.concatenate([v, v**2, np.array([1.0])]), (V,), 0, "jacobian",
     hand=lambda v: np.vstack([np.eye(5), np.diag(2 * v), np.zeros((1, 5))]))
case("concatenate_axis1", lambda m: np.concatenate([m, np.exp(m[:, :2])], axis=1), (M,), 0, "jacobian")
case("hstack", lambda v: np.hstack([v[:2], np.array([3.0]), v**3]), (V,), 0, "jacobian")
case("vstack", lambda v: np.vstack([v, 2.0 * v, np.ones(5)]), (V,), 0, "jacobian")
case("append_scalars", lambda x, y: np.append([x, y], x * y), (X, Y), (0, 1), "jacobian",
     hand=lambda x, y: (np.array([1.0, 0.0, y]), np.array([0.0, 1.0, x])))
case("concatenate_constant_first", lambda v: np.concatenate([np.zeros(2), v**2]), (V,), 0, "jacobian",
     hand=lambda v: np.vstack([np.zeros((2, 5)), np.diag(2 * v)]))
case("concatenate_list_first", lambda v: np.sum(np.concatenate([[0.0], v]) ** 2), (V,), 0,
     hand=lambda v: 2 * v)
case("stack_constant_first", lambda v: np.stack([np.ones(5), v, v**2]), (V,), 0, "jacobian")
case("vstack_constant_first", lambda v: np.vstack([np.ones(5), v]) * 2.0, (V,), 0, "jacobian")
case("append_to_constant", lambda v: np.append(np.zeros(2), v) ** 2, (V,), 0, "jacobian")
case("append_vector_const", lambda v: np.append(v, 1.0) * np.arange(1.0, 7.0), (V,), 0, "jacobian",
     hand=lambda v: np.vstack([np.diag(np.arange(1.0, 6.0)), np.zeros((1, 5))]))


# -- Python protocols ----------------------------------------------------------
def _unpack(v: Any) -> Any:
    a, b = v
    return a * b**2 + np.sin(a)


def _iterate(v: Any) -> Any:
    total = 0.0
    for vi in v:
        total = total + vi**3
    return total


def _length(v: Any) -> Any:
    return np.sum(v**2) / len(v)


case("unpack", _unpack, (np.array([X, Y]),), 0,
     hand=lambda v: np.array([v[1] ** 2 + np.cos(v[0]), 2 * v[0] * v[1]]))
case("iterate", _iterate, (V,), 0, hand=lambda v: 3 * v**2)
case("len", _length, (V,), 0, hand=lambda v: 2 * v / 5)
case("iterate_rows", lambda m: np.stack([np.sum(r**2) for r in m]), (M,), 0, "jacobian")

# -- indexing ----------------------------------------------------------------
case("slice_basic", lambda v: v[1:4] ** 2, (V,), 0, "jacobian")
case("slice_negative_step", lambda v: v[::-1] * np.arange(5.0), (V,), 0, "jacobian",
     hand=lambda v: np.fliplr(np.diag(np.arange(5.0))))
case("slice_negative_step_start", lambda v: v[3:0:-2] ** 2, (V,), 0, "jacobian")
case("slice_step2", lambda v: np.sum(v[::2] ** 3), (V,), 0,
     hand=lambda v: np.where(np.arange(5) % 2 == 0, 3 * v**2, 0.0))
case("newaxis", lambda v: v[None, :] * 2.0, (V,), 0, "jacobian", hand=lambda v: 2.0 * np.eye(5)[None])
case("column", lambda m: m[:, 1] ** 2, (M,), 0, "jacobian")
case("ellipsis", lambda m: np.sin(m[..., 0]), (M,), 0, "jacobian")
case("scalar_index_2d", lambda m: m[1, 2] * m[0, -1], (M,), 0)
case("fancy_repeated", lambda v: np.sum(v[[0, 0, 2]] ** 2), (V,), 0,
     hand=lambda v: np.array([4 * v[0], 0, 2 * v[2], 0, 0]))
case("fancy_repeated_jac", lambda v: v[np.array([0, 0, 2])] * np.array([1.0, 2.0, 3.0]), (V,), 0,
     "jacobian")
case("bool_mask", lambda v: np.sum(v[v > 0] ** 2), (V,), 0, hand=lambda v: np.where(v > 0, 2 * v, 0.0))
case("take", lambda v: np.take(v, [4, 0, 4]) ** 2, (V,), 0, "jacobian")
case("take_axis", lambda m: np.take(m, [2, 0], axis=1), (M,), 0, "jacobian")
case("diff", lambda v: np.diff(v) ** 2, (V,), 0, "jacobian")
case("diff_2d_axis0", lambda m: np.diff(m, axis=0), (M,), 0, "jacobian")
case("flip", lambda m: np.flip(m, axis=0) * np.arange(4.0), (M,), 0, "jacobian")
case("sort", lambda v: np.sort(v) * np.arange(1.0, 6.0), (V,), 0, "jacobian")
case("sort_sum", lambda v: np.sum(np.sort(v) * np.arange(1.0, 6.0)), (V,), 0,
     hand=lambda v: (np.argsort(np.argsort(v)) + 1.0))
case("cumsum", lambda v: np.cumsum(v**2), (V,), 0, "jacobian", hand=lambda v: np.tril(np.ones((5, 5))) * 2 * v)
case("cumsum_axis", lambda m: np.cumsum(m, axis=1), (M,), 0, "jacobian")
case("trace", lambda a: np.trace(a @ a), (SQ,), 0, hand=lambda a: 2 * a.T)
case("diag_vector", lambda v: np.diag(v), (V,), 0, "jacobian")
case("diag_matrix", lambda a: np.diag(a) ** 2, (SQ,), 0, "jacobian")
case("triu", lambda a: np.sum(np.triu(a) ** 2), (SQ,), 0, hand=lambda a: np.triu(2 * a))

# -- reductions ----------------------------------------------------------------
case("sum_axis0", lambda m: np.sum(m, axis=0), (M,), 0, "jacobian")
case("mean_axis1_keepdims", lambda m: m.mean(axis=1, keepdims=True) ** 2, (M,), 0, "jacobian")
case("var", lambda v: np.var(v), (V,), 0, hand=lambda v: 2 * (v - v.mean()) / 5)
case("var_axis0", lambda m: np.var(m, axis=0), (M,), 0, "jacobian")
case("std", lambda v: np.std(v), (V,), 0, hand=lambda v: (v - v.mean()) / (5 * np.std(v)))
case("std_ddof1_axis1", lambda m: np.std(m, axis=1, ddof=1), (M,), 0, "jacobian")
case("max_axis1", lambda m: np.max(m, axis=1), (M,), 0, "jacobian")
case("prod", lambda v: np.prod(v), (V,), 0, hand=lambda v: np.prod(v) / v)
case("prod_axis1", lambda m: np.prod(m, axis=1), (M,), 0, "jacobian")
case("sum_keepdims_broadcast", lambda m: m / np.sum(m**2, axis=0, keepdims=True), (M,), 0, "jacobian")

# -- broadcasting with plain arrays and Python scalars -------------------------
case("scalar_minus_vector", lambda v: 2.0 - v, (V,), 0, "jacobian", hand=lambda v: -np.eye(5))
case("vector_over_matrix", lambda v, m: v / m, (V[:4], M), (0, 1), "jacobian")
case("ones_times_scalar", lambda s: np.ones(3) * s, (X,), 0, "jacobian", hand=lambda s: np.ones(3))
case("array_left_times_scalar", lambda s: np.array([1.0, 2.0, 3.0]) * s**2, (X,), 0, "jacobian",
     hand=lambda s: np.array([1.0, 2.0, 3.0]) * 2 * s)
case("matrix_plus_column", lambda m, c: m * c[:, None], (M, B3), (0, 1), "jacobian")
case("plain_matrix_minus_traced_row", lambda r: M - r, (W[:4],), 0, "jacobian")
case("rpow_and_rdiv", lambda v: 2.0**v + 1.0 / v, (V,), 0, "jacobian",
     hand=lambda v: np.diag(np.log(2.0) * 2.0**v - 1.0 / v**2))
case("int_array_times_traced", lambda v: np.arange(5) * v + 3, (V,), 0, "jacobian",
     hand=lambda v: np.diag(np.arange(5.0)))

# -- selection and kinks (away from the kinks) -------------------------------
case("leaky_relu_where", lambda v: np.where(v > 0, v, 0.1 * v), (V,), 0, "jacobian",
     hand=lambda v: np.diag(np.where(v > 0, 1.0, 0.1)))
case("clip", lambda v: np.clip(v, -0.5, 0.5), (V,), 0, "jacobian",
     hand=lambda v: np.diag(((v > -0.5) & (v < 0.5)).astype(float)))
case("maximum_zero", lambda v: np.maximum(v, 0), (V,), 0, "jacobian", hand=lambda v: np.diag((v > 0) * 1.0))
case("abs", lambda v: np.sum(np.abs(v) ** 3), (V,), 0, hand=lambda v: 3 * v * np.abs(v))
case("norm_vector", lambda v: np.linalg.norm(v), (V,), 0, hand=lambda v: v / np.sqrt(np.sum(v**2)))
case("norm_frobenius", lambda m: np.linalg.norm(m), (M,), 0, hand=lambda m: m / np.sqrt(np.sum(m**2)))
case("norm_vector_ord1", lambda v: np.linalg.norm(v, 1), (V,), 0, hand=lambda v: np.sign(v))

# -- linear algebra --------------------------------------------------------------
case("solve_wrt_A", lambda a, b: np.linalg.solve(a, b), (A, B3), 0, "jacobian")
case("solve_wrt_b", lambda a, b: np.linalg.solve(a, b), (A, B3), 1, "jacobian",
     hand=lambda a, b: np.linalg.inv(a))
case("solve_matrix_rhs_wrt_A", lambda a, b: np.linalg.solve(a, b), (A, BM), 0, "jacobian")
case("solve_matrix_rhs_wrt_B", lambda a, b: np.linalg.solve(a, b), (A, BM), 1, "jacobian")
case("solve_scalar_loss_both", lambda a, b: np.sum(np.linalg.solve(a, b) ** 2), (A, B3), (0, 1))
case("inv", lambda a: np.linalg.inv(a), (A,), 0, "jacobian",
     hand=lambda a: -np.einsum("ik,lj->ijkl", np.linalg.inv(a), np.linalg.inv(a)))
case("det", lambda a: np.linalg.det(a), (A,), 0, hand=lambda a: np.linalg.det(a) * np.linalg.inv(a).T)
case("slogdet", lambda a: np.linalg.slogdet(a)[1], (SQ,), 0, hand=lambda a: np.linalg.inv(a).T)
case("slogdet_jacobian", lambda a: np.linalg.slogdet(a)[1], (SQ,), 0, "jacobian",
     hand=lambda a: np.linalg.inv(a).T)
case("cholesky", lambda a: np.sum(np.linalg.cholesky(a @ a.T + 3 * np.eye(3))), (SQ,), 0)
case("cholesky_jac", lambda a: np.linalg.cholesky(a @ a.T + 3 * np.eye(3)), (SQ,), 0, "jacobian")
case("eigh_eigenvalues", lambda m: np.linalg.eigh((m + m.T) / 2)[0], (SQ,), 0, "jacobian")
case("einsum_matvec", lambda m, v: np.einsum("ij,j->i", m, v), (M, W[:4]), (0, 1), "jacobian",
     hand=lambda m, v: (np.einsum("ij,k->ijk", np.eye(3), v), m))
case("tensordot", lambda a, b: np.tensordot(a, b, axes=([1], [0])), (M, M.T.copy()), (0, 1), "jacobian")
case("tensordot_int_axes", lambda a, b: np.tensordot(a, b, axes=2), (M, M * 0.5), (0, 1))
case("outer", lambda u, v: np.outer(u, v), (B3, W[:4]), (0, 1), "jacobian")
case("dot_matvec", lambda m, v: np.dot(m, v), (M, W[:4]), (0, 1), "jacobian")
case("dot_vectors", lambda u, v: np.dot(u, v), (V, W), (0, 1), hand=lambda u, v: (v, u))
case("quadratic_form", lambda v, m: v @ m @ v, (B3, SQ), (0, 1),
     hand=lambda v, m: ((m + m.T) @ v, np.outer(v, v)))


# -- small models -------------------------------------------------------------------
def _softmax_xent(w: Any, b: Any, x: Any = np.array([0.5, -1.0, 2.0]), label: int = 1) -> Any:
    z = w @ x + b
    z = z - np.max(z)
    logp = z - np.log(np.sum(np.exp(z)))
    return -logp[label]


def _softmax_xent_hand(w: Any, b: Any, x: Any = np.array([0.5, -1.0, 2.0]), label: int = 1) -> Any:
    z = w @ x + b
    p = np.exp(z - z.max())
    p = p / p.sum()
    g = p - np.eye(len(b))[label]
    return np.outer(g, x), g


W1 = rng.normal(size=(4, 3)) * 0.7
B1 = rng.normal(size=4) * 0.3
W2 = rng.normal(size=(2, 4)) * 0.7
B2 = rng.normal(size=2) * 0.3
XIN = np.array([0.5, -1.0, 2.0])
YOUT = np.array([0.3, -0.2])


def _mlp(w1: Any, b1: Any, w2: Any, b2: Any) -> Any:
    h = np.tanh(w1 @ XIN + b1)
    out = w2 @ h + b2
    return np.mean((out - YOUT) ** 2)


def _mlp_hand(w1: Any, b1: Any, w2: Any, b2: Any) -> Any:
    h = np.tanh(w1 @ XIN + b1)
    out = w2 @ h + b2
    g_out = (out - YOUT)  # 2/2 * (out - y)
    g_h = w2.T @ g_out
    g_pre = g_h * (1 - h**2)
    return np.outer(g_pre, XIN), g_pre, np.outer(g_out, h), g_out


def _rosenbrock(x: Any) -> Any:
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _rosenbrock_hand(x: Any) -> Any:
    g = np.zeros_like(x)
    g[:-1] += -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return g


case("softmax_cross_entropy", _softmax_xent, (SQ, B3), (0, 1), hand=_softmax_xent_hand)
case("mlp_tanh", _mlp, (W1, B1, W2, B2), (0, 1, 2, 3), hand=_mlp_hand)
case("rosenbrock", _rosenbrock, (V,), 0, hand=_rosenbrock_hand)
case("log_sum_exp_loss", lambda z: np.log(np.sum(np.exp(z))) - z[2], (V,), 0,
     hand=lambda z: np.exp(z) / np.sum(np.exp(z)) - np.eye(5)[2])

# -- ndarray methods ------------------------------------------------------------------
case("method_sum", lambda v: v.sum() ** 2, (V,), 0, hand=lambda v: 2 * v.sum() * np.ones(5))
case("method_T", lambda m: m.T * np.arange(3.0), (M,), 0, "jacobian")
case("method_reshape_minus1", lambda m: m.reshape(-1) ** 2, (M,), 0, "jacobian")
case("method_reshape_2_minus1", lambda m: m.reshape(2, -1), (M,), 0, "jacobian")
case("method_dot", lambda v, w: v.dot(w), (V, W), (0, 1), hand=lambda v, w: (w, v))
case("method_transpose", lambda m: m.transpose() @ np.arange(3.0), (M,), 0, "jacobian")
case("method_max", lambda v: v.max() * 3.0, (V,), 0, hand=lambda v: 3.0 * (v == v.max()))
case("method_ravel", lambda m: np.cumsum(m.ravel()), (M,), 0, "jacobian")
case("method_mean_std", lambda v: v.mean() + v.std(), (V,), 0)


# ---------------------------------------------------------------------------
# Case tests
# ---------------------------------------------------------------------------


def _xfail(case_: Case, key: str) -> list[Any]:
    reason = case_.xfail.get(key)
    return [pytest.mark.xfail(reason=reason, strict=True)] if reason else []


def _run(case_: Case, backend: str) -> Any:
    op = getattr(dk, case_.op)
    return op(case_.f, argnums=case_.argnums, backend=backend)(*case_.args)


@pytest.mark.parametrize(
    "case_, backend",
    [pytest.param(c, b, id=f"{c.id}-{b}", marks=_xfail(c, b)) for c in CASES for b in BACKENDS],
)
def test_matches_finite_difference(case_: Case, backend: str) -> None:
    got = _run(case_, backend)
    ref = fd_reference(case_.f, case_.args, case_.argnums)
    assert_close(got, ref, FD_RTOL, f"{case_.id} on {backend} vs central difference")
    if case_.hand is not None:
        assert_close(got, case_.hand(*case_.args), HAND_RTOL, f"{case_.id} on {backend} vs hand derivation")


@pytest.mark.parametrize(
    "case_",
    [pytest.param(c, id=c.id, marks=_xfail(c, "agree")) for c in CASES],
)
def test_forward_and_reverse_agree(case_: Case) -> None:
    fwd = _run(case_, "forward")
    rev = _run(case_, "reverse")
    assert_close(fwd, rev, AGREE_RTOL, f"{case_.id}: forward vs reverse")


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


# ---------------------------------------------------------------------------
# Input promotion and output shapes (JAX conventions)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_inputs_are_promoted(backend: str) -> None:
    g = dk.grad(lambda x: np.sum(x**3), backend=backend)(np.array([1, 2]))
    assert isinstance(g, np.ndarray) and g.dtype == np.float64
    np.testing.assert_array_equal(g, [3.0, 12.0])
    gi = dk.grad(lambda x: x**3, backend=backend)(2)
    assert np.ndim(gi) == 0 and np.asarray(gi).dtype == np.float64
    assert float(gi) == 12.0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x", [1.5, np.float64(1.5), np.array(1.5)], ids=["float", "float64", "0d"])
def test_scalar_inputs_give_scalar_results(backend: str, x: Any) -> None:
    def f(t: Any) -> Any:
        return np.sin(t) * t

    g = dk.grad(f, backend=backend)(x)
    assert np.ndim(g) == 0
    assert np.asarray(g).dtype == np.float64
    assert math.isclose(float(g), math.cos(1.5) * 1.5 + math.sin(1.5), rel_tol=1e-14)
    value, g2 = dk.value_and_grad(f, backend=backend)(x)
    assert np.ndim(value) == 0 and math.isclose(float(value), math.sin(1.5) * 1.5, rel_tol=1e-14)
    assert float(g2) == float(g)
    j = dk.jacobian(f, backend=backend)(x)
    assert np.ndim(j) == 0 and float(j) == pytest.approx(float(g), rel=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_has_argument_shape(backend: str) -> None:
    for x in (V, M, M[None], np.array([2.0])):
        g = dk.grad(lambda t: np.sum(np.sin(t)), backend=backend)(x)
        assert g.shape == x.shape
        np.testing.assert_allclose(g, np.cos(x), rtol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_jacobian_shape_out_plus_in(backend: str) -> None:
    def f(m: Any) -> Any:
        return np.stack([m * 2.0, m**2])  # (2, 3, 4)

    j = dk.jacobian(f, backend=backend)(M)
    assert j.shape == (2, 3, 4, 3, 4)
    assert_close(j, fd_jacobian(f, (M,), 0), FD_RTOL, "jacobian")
    # vector in, scalar out: shape in.shape
    js = dk.jacobian(lambda v: np.sum(v**2), backend=backend)(V)
    assert js.shape == (5,)
    # scalar in, matrix out: shape out.shape
    jm = dk.jacobian(lambda s: s * M, backend=backend)(X)
    assert jm.shape == M.shape
    np.testing.assert_array_equal(jm, M)


def fd_hessian(f: Callable[[np.ndarray], Any], x: np.ndarray) -> np.ndarray:
    """Second central difference, shape out.shape + x.shape + x.shape.

    h = 1e-4: truncation ~ h^2 |f''''| ~ 1e-8, round-off ~ eps |f| / h^2 ~ 1e-8,
    so 1e-5 relative is a safe tolerance.
    """
    x = np.asarray(x, dtype=float)
    out0 = np.asarray(f(x))
    h = 1e-4
    H = np.zeros(out0.shape + x.shape + x.shape)
    for i in np.ndindex(*x.shape):
        for j in np.ndindex(*x.shape):
            def at(si: float, sj: float) -> np.ndarray:
                y = x.copy()
                y[i] += si * h
                y[j] += sj * h
                return np.asarray(f(y))

            H[(Ellipsis,) + i + j] = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / (4 * h * h)
    return H


@pytest.mark.parametrize("backend", BACKENDS)
def test_hessian_scalar_function(backend: str) -> None:
    x = np.array([0.3, -0.7, 1.2])
    H = dk.hessian(_rosenbrock, backend=backend)(x)
    assert H.shape == (3, 3)
    hand = np.array([
        [1200 * x[0] ** 2 - 400 * x[1] + 2, -400 * x[0], 0.0],
        [-400 * x[0], 200 + 1200 * x[1] ** 2 - 400 * x[2] + 2, -400 * x[1]],
        [0.0, -400 * x[1], 200.0],
    ])
    np.testing.assert_allclose(H, hand, rtol=1e-12, atol=1e-10)
    assert_close(H, fd_hessian(_rosenbrock, x), 1e-5, "hessian vs second difference")


@pytest.mark.parametrize("backend", BACKENDS)
def test_hessian_vector_valued(backend: str) -> None:
    def f(x: Any) -> Any:
        return np.stack([x[0] ** 2 * x[1], np.sin(x[0]) * x[1] ** 3, np.sum(x**3)])

    x = np.array([0.8, -0.6])
    H = dk.hessian(f, backend=backend)(x)
    assert H.shape == (3, 2, 2)
    a, b = x
    hand = np.array([
        [[2 * b, 2 * a], [2 * a, 0.0]],
        [[-np.sin(a) * b**3, 3 * np.cos(a) * b**2], [3 * np.cos(a) * b**2, 6 * np.sin(a) * b]],
        [[6 * a, 0.0], [0.0, 6 * b]],
    ])
    np.testing.assert_allclose(H, hand, rtol=1e-12, atol=1e-12)
    assert_close(H, fd_hessian(f, x), 1e-5, "vector hessian vs second difference")


HESSIAN_CASES = [
    ("rosenbrock", _rosenbrock, V, {}),
    ("log_sum_exp", lambda z: np.log(np.sum(np.exp(z))) - z[2], V, {}),
    ("softmax_xent_bias", lambda b: _softmax_xent(SQ, b), B3, {}),
    ("solve_sq_norm", lambda b: np.sum(np.linalg.solve(A, b) ** 2 * b), B3, {}),
    ("norm_cubed", lambda v: np.linalg.norm(v) ** 3, V, {}),
    ("mean_var", lambda m: np.var(m) * np.mean(m), M[:2, :3].copy(), {}),
    ("slogdet", lambda a: np.linalg.slogdet(a)[1], A, {}),
    ("concatenate_constant_first", lambda v: np.sum(np.concatenate([np.ones(1), v]) ** 3), V[:3].copy(), {}),
]


@pytest.mark.parametrize(
    "f, x, backend",
    [pytest.param(f, x, b, id=f"{name}-{b}",
                  marks=[pytest.mark.xfail(reason=bugs[b], strict=True)] if b in bugs else [])
     for name, f, x, bugs in HESSIAN_CASES for b in BACKENDS],
)
def test_hessian_of_numpy_code(f: Callable[..., Any], x: np.ndarray, backend: str) -> None:
    H = dk.hessian(f, backend=backend)(x)
    assert H.shape == x.shape + x.shape
    assert_close(H, fd_hessian(f, x), 1e-5, "hessian vs second difference")
    np.testing.assert_allclose(H, np.swapaxes(H.reshape(x.size, x.size), 0, 1).reshape(H.shape),
                               rtol=1e-10, atol=1e-10 * max(1.0, float(np.abs(H).max())))


@pytest.mark.parametrize("backend", BACKENDS)
def test_hessian_matrix_argument_shape(backend: str) -> None:
    def f(m: Any) -> Any:
        return np.sum(m**3) + np.sum(m[0] * m[1])

    m = M[:2, :3].copy()
    H = dk.hessian(f, backend=backend)(m)
    assert H.shape == (2, 3, 2, 3)
    assert_close(H, fd_hessian(f, m), 1e-5, "matrix hessian")


@pytest.mark.parametrize("backend", BACKENDS)
def test_argnums_tuples_give_tuples(backend: str) -> None:
    def f(x: Any, y: Any) -> Any:
        return np.sum(x * y**2)

    x, y = V[:3], B3
    g = dk.grad(f, argnums=(0, 1), backend=backend)(x, y)
    assert isinstance(g, tuple) and len(g) == 2
    np.testing.assert_allclose(g[0], y**2, rtol=1e-14)
    np.testing.assert_allclose(g[1], 2 * x * y, rtol=1e-14)
    g1 = dk.grad(f, argnums=(1,), backend=backend)(x, y)
    assert isinstance(g1, tuple) and len(g1) == 1
    np.testing.assert_allclose(g1[0], 2 * x * y, rtol=1e-14)
    gneg = dk.grad(f, argnums=-1, backend=backend)(x, y)
    assert isinstance(gneg, np.ndarray)
    np.testing.assert_allclose(gneg, 2 * x * y, rtol=1e-14)

    def h(x: Any, y: Any) -> Any:
        return x * y[:, None]  # (3, 3) from x (3,), y (3,)

    j = dk.jacobian(h, argnums=(0, 1), backend=backend)(x, y)
    assert isinstance(j, tuple) and len(j) == 2
    assert j[0].shape == (3, 3, 3) and j[1].shape == (3, 3, 3)
    assert_close(j, fd_reference(h, (x, y), (0, 1)), FD_RTOL, "jacobian argnums tuple")

    H = dk.hessian(f, argnums=(0, 1), backend=backend)(x, y)
    assert isinstance(H, tuple) and len(H) == 2
    assert all(isinstance(r, tuple) and len(r) == 2 for r in H)
    assert [[H[i][j].shape for j in range(2)] for i in range(2)] == [[(3, 3)] * 2] * 2
    np.testing.assert_allclose(H[0][0], np.zeros((3, 3)), atol=1e-14)
    np.testing.assert_allclose(H[0][1], np.diag(2 * y), rtol=1e-14)
    np.testing.assert_allclose(H[1][0], np.diag(2 * y), rtol=1e-14)
    np.testing.assert_allclose(H[1][1], np.diag(2 * x), rtol=1e-14)


# ---------------------------------------------------------------------------
# Errors: the right type, and a message that says what to do
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_inplace_assignment_into_traced_array(backend: str) -> None:
    def f(v: Any) -> Any:
        v[0] = 1.0
        return np.sum(v)

    with pytest.raises(dk.TracingError) as info:
        dk.grad(f, backend=backend)(V.copy())
    assert isinstance(info.value, TypeError)
    msg = str(info.value)
    assert "in-place" in msg and "traced" in msg
    assert "np.where" in msg or "np.stack" in msg or "np.concatenate" in msg  # what to do instead
    assert backend in msg


@pytest.mark.parametrize("backend", BACKENDS)
def test_float_of_traced_value(backend: str) -> None:
    with pytest.raises(dk.TracingError) as info:
        dk.grad(lambda x: float(x) * 2.0, backend=backend)(X)
    assert isinstance(info.value, TypeError)
    msg = str(info.value)
    assert "float()" in msg and "traced" in msg and "np.sin" in msg


@pytest.mark.parametrize("backend", BACKENDS)
def test_math_sin_of_traced_value(backend: str) -> None:
    with pytest.raises(dk.TracingError) as info:
        dk.grad(lambda x: math.sin(x), backend=backend)(X)
    assert isinstance(info.value, TypeError)
    msg = str(info.value)
    assert "traced" in msg and "np.sin" in msg and "math.sin" in msg


@pytest.mark.parametrize("backend", BACKENDS)
def test_assign_traced_into_plain_float_array(backend: str) -> None:
    def f(x: Any) -> Any:
        buf = np.zeros(2)
        buf[0] = x
        return np.sum(buf)

    with pytest.raises(TypeError) as info:
        dk.grad(f, backend=backend)(X)
    msg = str(info.value)
    assert "traced value" in msg
    assert "np.stack" in msg or "np.array" in msg  # how to build the array instead


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_of_vector_function_is_shape_error(backend: str) -> None:
    with pytest.raises(dk.ShapeError) as info:
        dk.grad(lambda v: v**2, backend=backend)(V)
    assert "jacobian" in str(info.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_unsupported_numpy_function(backend: str) -> None:
    with pytest.raises(dk.UnsupportedOperation) as info:
        dk.grad(lambda v: np.sum(np.histogram(v)[1]), backend=backend)(V)
    msg = str(info.value)
    assert "numpy.histogram" in msg
    assert f"'{backend}'" in msg
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x", [X, V], ids=["scalar", "vector"])
def test_ufunc_out_argument(backend: str, x: Any) -> None:
    def f(t: Any) -> Any:
        buf = np.zeros(np.shape(t))
        np.sin(t, out=buf)
        return np.sum(buf)

    with pytest.raises(dk.TracingError) as info:
        dk.grad(f, backend=backend)(x)
    msg = str(info.value)
    assert "out=" in msg and "in place" in msg and "returned value" in msg


# ---------------------------------------------------------------------------
# Python control flow on comparisons
# ---------------------------------------------------------------------------


def _branchy(x: Any) -> Any:
    return x**2 if x > 0 else -x


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x, expected", [(1.5, 3.0), (0.25, 0.5), (-2.0, -1.0), (-0.1, -1.0)])
def test_python_if_on_comparison(backend: str, x: float, expected: float) -> None:
    g = dk.grad(_branchy, backend=backend)(x)
    assert np.ndim(g) == 0
    assert float(g) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_python_while_loop_on_comparison(backend: str) -> None:
    def f(x: Any) -> Any:
        y = x
        while y < 10.0:  # three doublings from 1.5: y = 8x
            y = y * 2.0
        return y

    assert float(dk.grad(f, backend=backend)(1.5)) == 8.0


# NumPy never hands diffkit a call whose only array argument is an object array
# built with np.array([...]) from traced scalars (no traced value is among the
# arguments it inspects). Those calls cannot be differentiated by dispatch; they
# must fail with an error that says to build the array with np.stack instead.
OBJECT_ARRAY_LIMITS = [
    ("det", lambda x, y: np.linalg.det(np.array([[x, 1.0], [y, x]]))),
    ("solve", lambda x, y: np.sum(np.linalg.solve(np.array([[x, 1.0], [y, 2.0]]), np.ones(2)))),
    ("inv", lambda x, y: np.sum(np.linalg.inv(np.array([[x, 1.0], [y, 2.0]])))),
    ("exp_of_mixed", lambda x, y: np.sum(np.exp(np.array([[x, y], [x * y, 1.0]])))),
    ("sin_of_mixed", lambda x, y: np.sum(np.sin(np.array([x, 1.0])))),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("f", [f for _, f in OBJECT_ARRAY_LIMITS], ids=[n for n, _ in OBJECT_ARRAY_LIMITS])
def test_object_array_limits_raise_a_clear_error(f: Callable[..., Any], backend: str) -> None:
    with pytest.raises(dk.TracingError) as info:
        dk.grad(f, argnums=(0, 1), backend=backend)(X, Y)
    msg = str(info.value)
    assert "np.stack" in msg and backend in msg


@pytest.mark.parametrize("backend", BACKENDS)
def test_object_array_limits_work_with_stack(backend: str) -> None:
    # the same functions written with np.stack: d/dx det [[x, 1], [y, x]] = 2x, d/dy = -1
    g = dk.grad(lambda x, y: np.linalg.det(np.stack([np.stack([x, 1.0]), np.stack([y, x])])),
                argnums=(0, 1), backend=backend)(X, Y)
    assert g == pytest.approx((2 * X, -1.0), rel=1e-14)
    g = dk.grad(lambda x, y: np.mean(np.stack([x, y])), argnums=(0, 1), backend=backend)(X, Y)
    assert g == (0.5, 0.5)


# NumPy's mean, var and std of an object array are Python code that sums the
# elements with their own + and casts the sum back through ``dtype.type``; a
# traced value's dtype keeps it traced there, so lists work as they are.
OBJECT_ARRAY_REDUCTIONS = [
    # (function, (d/dx, d/dy) by hand at (X, Y))
    (lambda x, y: np.mean(np.array([x, y, x * y])), ((1 + Y) / 3, (1 + X) / 3)),
    (lambda x, y: np.mean([x, y]), (0.5, 0.5)),
    (lambda x, y: np.array([x, y * y]).mean(), (0.5, Y)),
    (lambda x, y: np.mean([[x, y], [y * y, x]], axis=0).sum(), (1.0, 0.5 + Y)),
    # var([x, y]) = (x - y)**2 / 4; std = |x - y| / 2
    (lambda x, y: np.var([x, y]), ((X - Y) / 2, (Y - X) / 2)),
    (lambda x, y: np.std([x, y]), (np.sign(X - Y) / 2, np.sign(Y - X) / 2)),
    (lambda x, y: np.var([x, y, 2.0], ddof=1), ((2 * X - Y - 2) / 3, (2 * Y - X - 2) / 3)),
    (lambda x, y: np.average([x, y], weights=[1.0, 3.0]), (0.25, 0.75)),
    (lambda x, y: np.linalg.norm([x, y]), (X / np.hypot(X, Y), Y / np.hypot(X, Y))),
]


@pytest.mark.parametrize("backend", BACKENDS + ("symbolic",))
@pytest.mark.parametrize("case", range(len(OBJECT_ARRAY_REDUCTIONS)))
def test_reductions_of_object_arrays(case: int, backend: str) -> None:
    f, expected = OBJECT_ARRAY_REDUCTIONS[case]
    g = dk.grad(f, argnums=(0, 1), backend=backend)(X, Y)
    assert np.asarray(g, dtype=float) == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("backend", BACKENDS + ("symbolic",))
def test_a_traced_values_dtype_is_numpys(backend: str) -> None:
    # x.dtype is NumPy's dtype for everything but its .type's constructor (which keeps
    # a traced value traced): np.zeros(n, x.dtype), ==, np.finfo, np.issubdtype work
    def f(x: Any) -> Any:
        assert x.dtype == np.float64 and np.issubdtype(x.dtype, np.floating)
        assert np.dtype(x.dtype) is np.dtype(np.float64) and x.dtype.kind == "f"
        return x.dtype.type(2.0) * x + np.zeros(3, dtype=x.dtype).sum() + np.finfo(x.dtype).eps * x
    assert float(dk.grad(f, backend=backend)(X)) == pytest.approx(2.0 + np.finfo(float).eps, rel=1e-15)
