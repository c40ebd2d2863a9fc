"""NumPy coverage beyond the basics (docs/numpy-coverage.md).

Every function is checked the same way: the Jacobian of each backend
(forward, reverse, symbolic) against central finite differences of the plain
NumPy function, and the traced value against NumPy's own. A few have a
derivative worked out by hand next to the test.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import diffkit as dk
from diffkit.errors import InvalidArgument, UnsupportedOperation

pytestmark = [
    pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors are deprecated"),
    # a NaN written into a symbolic Piecewise before np.nansum refuses
    pytest.mark.filterwarnings("ignore:invalid value encountered in _where_sympy"),
]

AD = ("forward", "reverse", "compiled", "symbolic")
RNG = np.random.default_rng(20261206)
V6 = RNG.normal(size=6)
M34 = RNG.normal(size=(3, 4))
T234 = RNG.normal(size=(2, 3, 4))
POS6 = np.abs(V6) + 0.5


def central(f: Callable[[Any], Any], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """The Jacobian of the NumPy function ``f`` by central differences (error ~ h**2)."""
    x = np.asarray(x, dtype=float)
    y0 = np.asarray(f(x))
    jac = np.zeros(y0.shape + x.shape)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        jac[(Ellipsis,) + i] = (np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2.0 * h)
    return jac


def check(f: Callable[[Any], Any], x: np.ndarray, backend: str, atol: float = 1e-6) -> None:
    want = central(f, x)
    got = np.asarray(dk.jacobian(f, backend=backend)(x), dtype=float)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=atol, rtol=1e-6)
    if backend == "forward":  # the traced value is NumPy's
        out, _ = dk.jvp(f, (x,), (np.ones_like(x),), backend="forward")
        np.testing.assert_allclose(np.asarray(out), np.asarray(f(x)), rtol=1e-14, atol=1e-14)


# name: (function, point, symbolic backend supported)
MANIPULATION: dict[str, tuple[Callable[[Any], Any], np.ndarray, bool]] = {
    "tile": (lambda x: np.tile(x, 2), V6, True),
    "tile_2d": (lambda x: np.tile(x, (2, 1, 2)), M34, True),
    "repeat": (lambda x: np.repeat(x, 2), V6, True),
    "repeat_axis": (lambda x: np.repeat(x, [1, 0, 3], axis=0), M34, True),
    "roll": (lambda x: np.roll(x, 2), V6, True),
    "roll_flat_2d": (lambda x: np.roll(x, -5), M34, True),
    "roll_axes": (lambda x: np.roll(x, (1, -1), axis=(0, 1)), M34, True),
    "flipud": (np.flipud, M34, True),
    "fliplr": (np.fliplr, M34, True),
    "rot90": (np.rot90, M34, True),
    "rot90_k3": (lambda x: np.rot90(x, 3, axes=(2, 0)), T234, True),
    "rot90_k2": (lambda x: np.rot90(x, 2), M34, True),
    "split": (lambda x: np.split(x, 3)[1], V6, True),
    "split_points": (lambda x: np.split(x, [1, 4])[2], V6, True),
    "array_split": (lambda x: np.array_split(x, 4)[1], V6, True),
    "hsplit": (lambda x: np.hsplit(x, 2)[1], M34, True),
    "vsplit": (lambda x: np.vsplit(x, [1])[1], M34, True),
    "dsplit": (lambda x: np.dsplit(x, 2)[0], T234, True),
    "pad": (lambda x: np.pad(x, 2), V6, True),
    "pad_values": (lambda x: np.pad(x, ((1, 0), (0, 2)), constant_values=3.0), M34, True),
    "pad_edge": (lambda x: np.pad(x, 2, mode="edge"), M34, True),
    "pad_reflect": (lambda x: np.pad(x, (2, 3), mode="reflect"), V6, True),
    "pad_wrap": (lambda x: np.pad(x, 1, mode="wrap"), M34, True),
    "pad_symmetric": (lambda x: np.pad(x, 2, mode="symmetric"), V6, True),
    "atleast_3d_1d": (np.atleast_3d, V6, True),
    "atleast_3d_2d": (np.atleast_3d, M34, True),
    "kron": (lambda x: np.kron(x, x[:2, :2]), M34, True),
    "kron_1d_2d": (lambda x: np.kron(x[0], x), M34, True),
    "cross": (lambda x: np.cross(x[:3], x[3:]), V6, True),
    "cross_rows": (lambda x: np.cross(x[:, :3], np.array([0.5, -1.0, 2.0])), M34, True),
    "cross_axis0": (lambda x: np.cross(x, x[::-1], axis=0), M34[:, :3].T.copy(), True),
    "diag_k": (lambda x: np.diag(x, 1), V6, True),
    "diag_minus_k": (lambda x: np.diag(x, -2), V6, True),
    "diagonal_3d": (lambda x: np.diagonal(x, 0, 1, 2), T234, True),
    "diagonal_offset": (lambda x: np.diagonal(x, 1, 2, 0), T234, True),
    "trace_3d": (lambda x: np.trace(x, axis1=1, axis2=2), T234, True),
    "select": (lambda x: np.select([x > 0, x < -0.5], [x**2, x**3], 0.25), V6, True),
    "nan_to_num": (lambda x: np.nan_to_num(x * 2.0), V6, True),
    "sinc": (np.sinc, V6, True),
    "cumprod": (np.cumprod, V6, True),
    "cumprod_axis": (lambda x: np.cumprod(x, axis=1), M34, True),
    "linspace": (lambda x: np.linspace(x[0], x[1], 5), V6, True),
    "linspace_arrays": (lambda x: np.linspace(x[:2], x[2:4], 4, endpoint=False, axis=1), V6, True),
    "gradient": (np.gradient, V6, True),
    "gradient_spacing": (lambda x: np.gradient(x, 0.5, edge_order=2), V6, True),
    "gradient_2d": (lambda x: np.gradient(x)[1], M34, True),
    "ptp": (np.ptp, V6, True),
    "average_weights": (lambda x: np.average(x, weights=POS6), V6, True),
    "average_axis": (lambda x: np.average(x, axis=1, weights=POS6[:4]), M34, True),
    "real_if_close": (lambda x: np.real_if_close(x + 0j), V6, False),
    "einsum_diagonal": (lambda x: np.einsum("ii->i", x[:3, :3]), M34, True),
    "einsum_trace": (lambda x: np.einsum("ii", x[:3, :3]), M34, True),
    "einsum_repeated_two_operands": (lambda x: np.einsum("iij,j->i", x, x[0, 0]), np.stack([M34[:2], M34[1:]]), True),
    "einsum_ellipsis": (lambda x: np.einsum("...j,j->...", x, x[0]), M34, True),
    "einsum_implicit": (lambda x: np.einsum("ij,jk", x, x.T), M34, True),
    "convolve": (lambda x: np.convolve(x[:4], x[4:]), V6, True),
    "convolve_same_swapped": (lambda x: np.convolve(x[:2], x[2:], "same"), V6, True),
    "convolve_valid_constant": (lambda x: np.convolve(x, [0.5, 1.0, -2.0], "valid"), V6, True),
    "correlate": (lambda x: np.correlate(x[:4], x[4:]), V6, True),
    "correlate_full_swapped": (lambda x: np.correlate(x[:2], x[2:], "full"), V6, True),
    "polyval": (lambda x: np.polyval(x[:3], x[3:]), V6, True),
    "polyval_traced_x": (lambda x: np.polyval([1.0, -2.0, 0.5], x), V6, True),
    "cov": (np.cov, M34, True),
    "cov_columns_biased": (lambda x: np.cov(x, rowvar=False, bias=True), M34, True),
    "cov_two_vectors": (lambda x: np.cov(x[0], x[1]), M34, True),
    "corrcoef": (np.corrcoef, M34, True),
    "nansum": (lambda x: np.nansum(np.where(x > 1.0, np.nan, x) * 2.0), V6, False),
    "nanmean": (lambda x: np.nanmean(np.where(x < -0.5, np.nan, x) ** 2), V6, False),
    "nanmax_axis": (lambda x: np.nanmax(x, axis=0), M34, False),
    "dstack": (lambda x: np.dstack([x, x * 2.0]), M34, True),
    "rollaxis": (lambda x: np.rollaxis(x, 2), T234, True),
    "meshgrid": (lambda x: np.meshgrid(x[:2], x[2:])[0] * np.meshgrid(x[:2], x[2:])[1], V6, True),
    "meshgrid_ij_sparse": (lambda x: np.meshgrid(x[:2], x[2:], indexing="ij", sparse=True)[1], V6, True),
    "vander": (lambda x: np.vander(x, 3), V6, True),
    "vander_increasing": (lambda x: np.vander(x[:4], increasing=True), V6, True),
    "trapezoid": (lambda x: np.trapezoid(x, dx=0.5), V6, True),
    "trapezoid_traced_x": (lambda x: np.trapezoid(x[:3] ** 2, x[3:]), V6, True),
    "trapezoid_axis": (lambda x: np.trapezoid(x, axis=0), M34, True),
    "ediff1d": (lambda x: np.ediff1d(x, to_begin=x[0], to_end=[1.0, 2.0]), V6, True),
    "cumulative_sum": (lambda x: np.cumulative_sum(x, axis=1, include_initial=True), M34, True),
    "cumulative_prod": (np.cumulative_prod, V6, True),
    "logspace": (lambda x: np.logspace(x[0], x[1], 4, base=2.0), V6, True),
    "matrix_transpose": (np.matrix_transpose, T234, True),
    "linalg_outer": (lambda x: np.linalg.outer(x, x[:2]), V6, True),
    "vecdot": (lambda x: np.vecdot(x, x[::-1]), M34, True),
    "linalg_vecdot": (lambda x: np.linalg.vecdot(x, x, axis=0), M34, True),
    "linalg_matmul": (lambda x: np.linalg.matmul(x, x.T), M34, True),
    "linalg_vector_norm": (lambda x: np.linalg.vector_norm(x, ord=3, axis=(0, 2)), T234, True),
    "linalg_matrix_norm": (lambda x: np.linalg.matrix_norm(x, ord=np.inf), T234, True),
    "linalg_trace": (np.linalg.trace, T234, True),
    "linalg_diagonal": (lambda x: np.linalg.diagonal(x, offset=1), T234, True),
    "cumprod_method": (lambda x: x.cumprod(), V6, True),
    "trace_method": (lambda x: x.trace(), M34, True),
    "repeat_method": (lambda x: x.repeat(2, axis=1), M34, True),
    "sort": (np.sort, V6, False),
    "sort_axis_none": (lambda x: np.sort(x, axis=None), M34, False),
    "median": (np.median, V6, False),
    "median_odd_axis": (lambda x: np.median(x, axis=0), M34, False),
    "median_keepdims": (lambda x: np.median(x, axis=1, keepdims=True), M34, False),
    "partition": (lambda x: np.partition(x, 2), V6, False),
}


def _numpy_has_2d_cross() -> bool:
    import warnings

    try:  # deprecated in NumPy 2.0, removed in 2.5
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            np.cross(np.ones(2), np.ones(2))
    except ValueError:
        return False
    return True


if _numpy_has_2d_cross():
    MANIPULATION["cross_2d_vectors"] = (lambda x: np.cross(x[:2], x[2:4]), V6, True)


@pytest.mark.parametrize("backend", AD)
@pytest.mark.parametrize("name", list(MANIPULATION))
def test_manipulation(name: str, backend: str) -> None:
    f, x, symbolic = MANIPULATION[name]
    if backend == "symbolic" and not symbolic:
        with pytest.raises(UnsupportedOperation, match="symbolic backend"):
            dk.jacobian(f, backend=backend)(x)
        return
    check(f, x, backend)


def test_repeated_and_wrong_splits_raise() -> None:
    with pytest.raises(InvalidArgument, match="equal division"):
        dk.grad(lambda x: np.sum(np.split(x, 4)[0]))(V6)
    with pytest.raises(UnsupportedOperation, match="mode='mean'"):
        dk.grad(lambda x: np.sum(np.pad(x, 1, mode="mean")))(V6)


@pytest.mark.parametrize("backend", AD)
def test_cumprod_at_a_zero_by_hand(backend: str) -> None:
    # cumprod([2, 0, 3]) = [2, 0, 0]; d(last)/dx = (x1 x2, x0 x2, x0 x1) = (0, 6, 0):
    # exact at the zero, where a rule dividing by x would give NaN
    g = dk.grad(lambda x: np.cumprod(x)[-1], backend=backend)(np.array([2.0, 0.0, 3.0]))
    np.testing.assert_array_equal(np.asarray(g, dtype=float), [0.0, 6.0, 0.0])


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_sinc_at_zero_by_hand(backend: str) -> None:
    # sinc is even: sinc'(0) = 0; sinc'(1/2) = (cos(pi/2) - sinc(1/2)) / (1/2) = -4/pi
    g = dk.grad(lambda x: np.sum(np.sinc(x)), backend=backend)(np.array([0.0, 0.5]))
    np.testing.assert_allclose(np.asarray(g), [0.0, -4.0 / np.pi], rtol=1e-15, atol=1e-16)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_nan_to_num_gradient_zero_where_replaced(backend: str) -> None:
    # an infinite entry is replaced by a constant: derivative 0 there, 3 (of 3 x) elsewhere
    g = dk.grad(lambda x: np.sum(np.nan_to_num(3.0 * x)), backend=backend)(np.array([np.inf, 2.0]))
    np.testing.assert_array_equal(np.asarray(g), [0.0, 3.0])


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_median_by_hand(backend: str) -> None:
    # median of 4 values is the mean of the middle two: 1/2 on each
    g = dk.grad(np.median, backend=backend)(np.array([4.0, 1.0, 3.0, 2.0]))
    np.testing.assert_array_equal(np.asarray(g), [0.0, 0.0, 0.5, 0.5])


# ---------------------------------------------------------------------------
# remainder (mod, %) and fmod: table primitives, derivative 1 in x, -quotient in y
# ---------------------------------------------------------------------------

MOD_X = np.array([-1.9, -0.6, 0.45, 1.3, 5.3, -5.3])
MOD_Y = np.array([2.7, 0.7, 0.4, 0.9, 2.0, 2.0])

MODS: dict[str, Callable[[Any], Any]] = {
    "remainder": lambda v: np.remainder(v[:6], v[6:]),
    "mod": lambda v: np.mod(v[:6], 0.7),
    "percent": lambda v: v[:6] % v[6:],
    "fmod": lambda v: np.fmod(v[:6], v[6:]),
    "fmod_negative_divisor": lambda v: np.fmod(v[:6], -v[6:]),
}


@pytest.mark.parametrize("backend", AD + ("numeric",))
@pytest.mark.parametrize("name", list(MODS))
def test_mod_matches_finite_differences(name: str, backend: str) -> None:
    check(MODS[name], np.concatenate([MOD_X, MOD_Y]), backend, atol=1e-6)


@pytest.mark.parametrize("backend", AD)
def test_mod_by_hand(backend: str) -> None:
    # 5.3 % 2 = 1.3 = 5.3 - 2 * 2: d/dx = 1, d/dy = -floor(5.3 / 2) = -2
    # fmod(-5.3, 2) = -1.3 = -5.3 - 2 * (-2): d/dy = -trunc(-5.3 / 2) = 2
    # (-5.3) % 2 = 0.7 = -5.3 - 2 * (-3): d/dy = 3
    g = dk.grad(lambda x, y: x % y, argnums=(0, 1), backend=backend)
    assert tuple(map(float, g(5.3, 2.0))) == (1.0, -2.0)
    assert tuple(map(float, g(-5.3, 2.0))) == (1.0, 3.0)
    h = dk.grad(lambda x, y: np.fmod(x, y), argnums=(0, 1), backend=backend)
    assert tuple(map(float, h(-5.3, 2.0))) == (1.0, 2.0)


@pytest.mark.parametrize("backend", AD)
def test_mod_at_its_jump(backend: str) -> None:
    # 4 % 2 = 0, the right-hand value; the rules take the quotient NumPy's result used,
    # floor_divide(4, 2) = 2: d/dy = -2 (the right-hand derivative in x, the left-hand one in y)
    g = dk.grad(lambda x, y: x % y, argnums=(0, 1), backend=backend)(4.0, 2.0)
    assert tuple(map(float, g)) == (1.0, -2.0)
    g = dk.grad(lambda x, y: np.fmod(x, y), argnums=(0, 1), backend=backend)(-4.0, 2.0)
    assert tuple(map(float, g)) == (1.0, 2.0)


def test_mod_jumps_are_flagged() -> None:
    from diffkit.primitives import PRIMITIVES

    x, y = np.array([4.0, 4.1, 0.0, -3.0]), np.array([2.0, 2.0, 2.0, 1.5])
    assert list(PRIMITIVES["remainder"].at_kink(x, y)) == [True, False, True, True]
    assert list(PRIMITIVES["fmod"].at_kink(x, y)) == [True, False, False, True]  # fmod is continuous at 0


# ---------------------------------------------------------------------------
# Linear algebra: svd, pinv, qr, lstsq, matrix_power, matrix norms, eigh(UPLO="U")
# ---------------------------------------------------------------------------

TALL = RNG.normal(size=(4, 3))
WIDE = RNG.normal(size=(3, 5))
SQUARE = RNG.normal(size=(3, 3))
STACK = RNG.normal(size=(2, 4, 3))
B4 = RNG.normal(size=4)

def reconstruct(u: Any, s: Any, vt: Any) -> Any:
    return (u * s) @ vt


LINALG: dict[str, tuple[Callable[[Any], Any], np.ndarray]] = {
    "svd_values": (lambda a: np.linalg.svd(a, compute_uv=False), TALL),
    "svdvals": (np.linalg.svdvals, WIDE),
    "svd_U": (lambda a: np.linalg.svd(a, full_matrices=False)[0], TALL),
    "svd_S": (lambda a: np.linalg.svd(a, full_matrices=False).S, TALL),
    "svd_Vh": (lambda a: np.linalg.svd(a, full_matrices=False)[2], TALL),
    "svd_U_wide": (lambda a: np.linalg.svd(a, full_matrices=False)[0], WIDE),
    "svd_Vh_wide": (lambda a: np.linalg.svd(a, full_matrices=False)[2], WIDE),
    "svd_square_full": (lambda a: np.linalg.svd(a)[0] @ np.linalg.svd(a)[2], SQUARE),
    "svd_stack": (lambda a: np.linalg.svd(a, full_matrices=False)[2], STACK),
    "svd_reconstruct": (lambda a: reconstruct(*np.linalg.svd(a, full_matrices=False)), TALL),
    "pinv": (np.linalg.pinv, TALL),
    "pinv_wide": (np.linalg.pinv, WIDE),
    "pinv_stack": (np.linalg.pinv, STACK),
    "qr_Q": (lambda a: np.linalg.qr(a)[0], TALL),
    "qr_R": (lambda a: np.linalg.qr(a).R, TALL),
    "qr_r_mode": (lambda a: np.linalg.qr(a, mode="r"), SQUARE),
    "qr_square": (lambda a: np.linalg.qr(a)[0], SQUARE),
    "qr_stack": (lambda a: np.linalg.qr(a)[0], STACK),
    "lstsq_x": (lambda a: np.linalg.lstsq(a, B4, rcond=None)[0], TALL),
    "lstsq_residuals": (lambda a: np.linalg.lstsq(a, B4, rcond=None)[1], TALL),
    "lstsq_s": (lambda a: np.linalg.lstsq(a, B4, rcond=None)[3], TALL),
    "lstsq_underdetermined": (lambda a: np.linalg.lstsq(a, B4[:3], rcond=None)[0], WIDE),
    "matrix_power_3": (lambda a: np.linalg.matrix_power(a, 3), SQUARE),
    "matrix_power_5": (lambda a: np.linalg.matrix_power(a, 5), SQUARE),
    "matrix_power_minus_2": (lambda a: np.linalg.matrix_power(a, -2), SQUARE),
    "norm_nuc": (lambda a: np.linalg.norm(a, "nuc"), TALL),
    "norm_2": (lambda a: np.linalg.norm(a, 2), TALL),
    "norm_minus_2": (lambda a: np.linalg.norm(a, -2), TALL),
    "norm_1": (lambda a: np.linalg.norm(a, 1), TALL),
    "norm_minus_1": (lambda a: np.linalg.norm(a, -1), TALL),
    "norm_inf": (lambda a: np.linalg.norm(a, np.inf), TALL),
    "norm_fro": (lambda a: np.linalg.norm(a, "fro"), TALL),
    "norm_2_axes": (lambda a: np.linalg.norm(a, 2, axis=(2, 0)), STACK),
    "norm_nuc_keepdims": (lambda a: np.linalg.norm(a, "nuc", axis=(1, 2), keepdims=True), STACK),
}
SYMBOLIC_LINALG = {"matrix_power_3": SQUARE, "matrix_power_minus_2": SQUARE[:2, :2],
                   "pinv": TALL[:3, :2], "pinv_wide": WIDE[:2, :3], "norm_fro": TALL}
"""SymPy has these (pinv through Matrix.pinv; small matrices: SymPy's pinv of a
symbolic 4 x 3 matrix takes minutes)."""


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
@pytest.mark.parametrize("name", list(LINALG))
def test_linalg_matches_finite_differences(name: str, backend: str) -> None:
    f, a = LINALG[name]
    check(f, a, backend, atol=1e-6)


@pytest.mark.parametrize("name", sorted(SYMBOLIC_LINALG))
def test_linalg_symbolic(name: str) -> None:
    check(LINALG[name][0], SYMBOLIC_LINALG[name], "symbolic", atol=1e-6)


@pytest.mark.parametrize("name", ["svd_values", "svd_U"])  # qr: tests/test_linalg_more.py
def test_linalg_without_sympy_form_refuses_on_symbolic(name: str) -> None:
    with pytest.raises(UnsupportedOperation, match="no SymPy counterpart"):
        dk.jacobian(LINALG[name][0], backend="symbolic")(LINALG[name][1])


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_singular_values_by_hand(backend: str) -> None:
    # A = diag(3, -1): U = I, s = (3, 1), V = diag(1, -1). ds_i/dA = u_i v_i^T, so
    # d s_1 / dA = e1 e1^T, d||A||_* / dA = U V^T = diag(1, -1), d||A||_2 / dA = e1 e1^T
    a = np.diag([3.0, -1.0])
    jac = dk.jacobian(lambda m: np.linalg.svd(m, compute_uv=False), backend=backend)(a)
    np.testing.assert_array_equal(jac, [[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, -1.0]]])
    np.testing.assert_array_equal(dk.grad(lambda m: np.linalg.norm(m, "nuc"), backend=backend)(a),
                                  np.diag([1.0, -1.0]))
    np.testing.assert_array_equal(dk.grad(lambda m: np.linalg.norm(m, 2), backend=backend)(a),
                                  [[1.0, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_svd_refuses_where_the_vectors_are_not_differentiable(backend: str) -> None:
    with pytest.raises(UnsupportedOperation, match="repeated singular values"):
        dk.jacobian(lambda m: np.linalg.svd(m)[0], backend=backend)(np.eye(3))
    with pytest.raises(UnsupportedOperation, match="zero singular value"):
        dk.jacobian(lambda m: np.linalg.svd(m, full_matrices=False)[0], backend=backend)(
            np.array([[1.0, 2.0], [2.0, 4.0], [0.0, 0.0]]))
    with pytest.raises(UnsupportedOperation, match="full_matrices=False"):
        dk.jacobian(lambda m: np.linalg.svd(m)[0], backend=backend)(TALL)
    # the singular values alone stay differentiable there: d sum(s) / dA = U V^T = I at A = I
    np.testing.assert_array_equal(
        dk.grad(lambda m: np.sum(np.linalg.svd(m, compute_uv=False)), backend=backend)(np.eye(3)), np.eye(3))


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_qr_of_a_complex_matrix_refuses(backend: str) -> None:
    # wide matrices are differentiable (tests/test_linalg_more.py); complex ones have no rules here
    with pytest.raises(UnsupportedOperation, match="complex"):
        dk.jvp(lambda m: np.linalg.qr(m)[0], (WIDE + 1j,), (WIDE + 0j,), backend=backend)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
@pytest.mark.parametrize("uplo", ["L", "U"])
def test_eigh_reads_the_triangle_uplo_names(uplo: str, backend: str) -> None:
    # a non-symmetric matrix: NumPy reads one triangle. The value is NumPy's; the
    # gradient follows the table's convention for eigh, the symmetric gradient
    # (G + G^T) / 2 of the finite differences of what NumPy computes.
    a = SQUARE
    def f(m: Any) -> Any:
        return np.linalg.eigh(m, UPLO=uplo)[0]

    out, _ = dk.jvp(f, (a,), (np.ones_like(a),), backend=backend)
    np.testing.assert_allclose(out, np.linalg.eigh(a, UPLO=uplo)[0], rtol=1e-14)
    g = central(f, a)
    want = 0.5 * (g + np.swapaxes(g, -1, -2))
    np.testing.assert_allclose(dk.jacobian(f, backend=backend)(a), want, atol=1e-6)
    got_vals = dk.jacobian(lambda m: np.linalg.eigvalsh(m, UPLO=uplo), backend=backend)(a)
    np.testing.assert_allclose(got_vals, want, atol=1e-6)


# ---------------------------------------------------------------------------
# numpy.fft: real functions of real inputs through complex transforms
# ---------------------------------------------------------------------------

X8 = RNG.normal(size=8)
X7 = RNG.normal(size=7)
M46 = RNG.normal(size=(4, 6))


def parts(z: Any) -> Any:
    """Real and imaginary parts side by side: a real function to differentiate."""
    return np.concatenate([np.ravel(np.real(z)), np.ravel(np.imag(z))])


FFTS: dict[str, tuple[Callable[[Any], Any], np.ndarray]] = {
    "fft": (lambda x: parts(np.fft.fft(x)), X8),
    "fft_crop": (lambda x: parts(np.fft.fft(x, 5)), X8),
    "fft_pad_ortho": (lambda x: parts(np.fft.fft(x, 11, norm="ortho")), X8),
    "ifft_complex_input": (lambda x: parts(np.fft.ifft(x * (1 + 2j))), X8),
    "ifft_forward_norm": (lambda x: parts(np.fft.ifft(x, norm="forward")), X7),
    "fft2": (lambda x: parts(np.fft.fft2(x)), M46),
    "ifftn_s": (lambda x: parts(np.fft.ifftn(x, s=(3, 8), axes=(0, 1))), M46),
    "rfft": (lambda x: parts(np.fft.rfft(x)), X8),
    "rfft_odd_ortho": (lambda x: parts(np.fft.rfft(x, norm="ortho")), X7),
    "rfft_axis0": (lambda x: parts(np.fft.rfft(x, axis=0)), M46),
    "irfft": (lambda x: np.fft.irfft(x[:5] + 1j * x[3:]), X8),
    "irfft_odd_ortho": (lambda x: np.fft.irfft(x[:4] + 1j * x[4:], n=7, norm="ortho"), X8),
    "irfft_real_input": (np.fft.irfft, X8),
    "rfft2": (lambda x: parts(np.fft.rfft2(x)), M46),
    "irfft2": (lambda x: np.fft.irfft2(x * (1 - 0.5j)), M46[:3, :4]),
    "irfftn_s": (lambda x: np.fft.irfftn(x + 0.3j, s=(4, 7), axes=(0, 1)), M46),
    "fftshift": (np.fft.fftshift, M46),
    "ifftshift": (lambda x: np.fft.ifftshift(x, axes=1), M46),
    "power_spectrum": (lambda x: np.abs(np.fft.rfft(x)) ** 2, X8),
    "filter_roundtrip": (lambda x: np.fft.irfft(np.fft.rfft(x) * np.arange(5.0), n=8), X8),
}


@pytest.mark.filterwarnings("ignore:Casting complex values to real")
@pytest.mark.parametrize("backend", AD)
@pytest.mark.parametrize("name", list(FFTS))
def test_fft_matches_finite_differences(name: str, backend: str) -> None:
    f, x = FFTS[name]
    check(f, x, backend, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Casting complex values to real")
@pytest.mark.parametrize("backend", AD)
def test_fft_gradients_by_hand(backend: str) -> None:
    x = X8
    n = x.size
    # sum_k Re X_k = sum_j x_j sum_k cos(2 pi jk / n) = n x_0: the gradient is n e_0
    g = dk.grad(lambda v: np.sum(np.real(np.fft.fft(v))), backend=backend)(x)
    assert np.asarray(g).dtype.kind == "f"
    np.testing.assert_allclose(g, np.eye(n)[0] * n, atol=1e-12)
    # Parseval: sum_k |X_k|^2 = n sum_j x_j^2, the gradient 2 n x
    g = dk.grad(lambda v: np.sum(np.abs(np.fft.fft(v)) ** 2), backend=backend)(x)
    np.testing.assert_allclose(g, 2 * n * x, rtol=1e-12)
    # irfft(rfft(x)) = x: the Jacobian is the identity
    jac = dk.jacobian(lambda v: np.fft.irfft(np.fft.rfft(v), n=n), backend=backend)(x)
    np.testing.assert_allclose(jac, np.eye(n), atol=1e-12)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_nan_reductions_skip_the_nans_by_hand(backend: str) -> None:
    # nanmean of (1, nan, 3) is (1 + 3) / 2: the gradient is 1/2 at the numbers, 0 at the NaN
    g = dk.grad(np.nanmean, backend=backend)(np.array([1.0, np.nan, 3.0]))
    np.testing.assert_array_equal(g, [0.5, 0.0, 0.5])


@pytest.mark.parametrize("backend", AD)
def test_convolve_by_hand(backend: str) -> None:
    # (a * v)_k = sum_i a_i v_(k-i); d/da of sum_k (a * v)_k = sum(v) for every a_i
    a, v = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0])
    g = dk.grad(lambda x: np.sum(np.convolve(x, v)), backend=backend)(a)
    np.testing.assert_array_equal(np.asarray(g, dtype=float), [-0.5, -0.5, -0.5])


GENERAL = RNG.normal(size=(4, 4))


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
@pytest.mark.parametrize("case", ["complex", "real", "modulus", "stack"])
def test_eigvals_matches_finite_differences(case: str, backend: str) -> None:
    f, a = {
        "complex": (lambda m: parts(np.linalg.eigvals(m)), GENERAL),
        "real": (lambda m: np.real(np.linalg.eigvals(m)), GENERAL + GENERAL.T),  # complex in NumPy >= 2.5
        "modulus": (lambda m: np.abs(np.linalg.eigvals(m)), GENERAL),
        "stack": (lambda m: parts(np.linalg.eigvals(np.stack([m, m.T @ m]))), GENERAL),
    }[case]
    check(f, a, backend, atol=1e-6)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_eigvals_by_hand(backend: str) -> None:
    # d lambda_i / dA = u_i v_i^T / (u_i^T v_i), u_i and v_i the left and right eigenvectors.
    # A = [[1, 1], [0, 3]]: lambda = 1 has v = (1, 0), u = (1, -1/2); lambda = 3 has
    # v = (1, 2), u = (0, 1), u^T v = 2. (Check: A[1, 0] = e makes the characteristic
    # polynomial (1 - l)(3 - l) - e, moving lambda = 1 by -e/2 and lambda = 3 by +e/2.)
    # np.real: NumPy >= 2.5 returns eigenvalues as complex numbers even when they are real
    jac = dk.jacobian(lambda m: np.real(np.linalg.eigvals(m)), backend=backend)(np.array([[1.0, 1.0], [0.0, 3.0]]))
    np.testing.assert_allclose(jac, [[[1.0, 0.0], [-0.5, 0.0]], [[0.0, 0.0], [0.5, 1.0]]], atol=1e-15)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_eig_refuses_clearly(backend: str) -> None:
    # eig's eigenvectors are differentiable (tests/test_linalg_more.py), but not at repeated eigenvalues
    with pytest.raises(UnsupportedOperation, match="repeated eigenvalues"):
        dk.grad(lambda m: np.real(np.linalg.eig(m)[1][0, 0]), backend=backend)(np.eye(2))
    with pytest.raises(UnsupportedOperation, match="repeated eigenvalues"):
        dk.jacobian(np.linalg.eigvals, backend=backend)(np.eye(2))


NUMERIC = sorted(set(MANIPULATION) - {"partition"}) + sorted(LINALG) + sorted(FFTS)
"""The numeric backend's finite differences of every case (np.partition leaves the order within
each side unspecified, so a perturbed input may come back reordered: no derivative to estimate)."""


@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")
@pytest.mark.parametrize("name", NUMERIC)
def test_numeric_backend(name: str) -> None:
    f, x = (MANIPULATION[name][:2] if name in MANIPULATION else LINALG.get(name) or FFTS[name])
    check(f, x, "numeric", atol=1e-5)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
@pytest.mark.parametrize("case", ["nuclear_norm", "pinv", "svd_vectors", "qr", "fft_power", "mod", "cumprod"])
def test_second_order(case: str, backend: str) -> None:
    """Hessians: central differences of the (reverse-mode) gradient."""
    f, x = {
        "nuclear_norm": (lambda a: np.linalg.norm(a, "nuc"), TALL),
        "pinv": (lambda a: np.sum(np.linalg.pinv(a) ** 2), TALL),
        "svd_vectors": (lambda a: np.sum(np.linalg.svd(a, full_matrices=False)[0][:, 0] * B4), TALL),
        "qr": (lambda a: np.sum(np.linalg.qr(a)[0] * TALL), TALL),
        "fft_power": (lambda v: np.sum(np.abs(np.fft.rfft(v)) ** 3), X8),
        "mod": (lambda v: np.sum(np.mod(v[:6], v[6:]) ** 2), np.concatenate([MOD_X, MOD_Y])),
        "cumprod": (lambda v: np.sum(np.cumprod(v)), V6),
    }[case]
    grad = dk.grad(f, backend="reverse")
    want = central(lambda y: np.asarray(grad(y)), x, h=1e-5)
    got = dk.hessian(f, backend=backend)(x)
    np.testing.assert_allclose(got, want, atol=1e-5 * max(1.0, float(np.max(np.abs(want)))))


@pytest.mark.parametrize("name, x, params", [
    ("fftn", RNG.normal(size=(3, 4)) + 1j * RNG.normal(size=(3, 4)), {"axes": (-2, -1), "norm": None, "inverse": False}),
    ("fftn", RNG.normal(size=(3, 4)) + 1j * RNG.normal(size=(3, 4)), {"axes": (-1,), "norm": "ortho", "inverse": True}),
    ("rfft", RNG.normal(size=(2, 7)), {"norm": "forward"}),
    ("irfft", RNG.normal(size=(2, 4)) + 1j * RNG.normal(size=(2, 4)), {"n": 7, "norm": None}),
    ("irfft", RNG.normal(size=(2, 4)) + 1j * RNG.normal(size=(2, 4)), {"n": 6, "norm": "ortho"}),
    ("eigvals", RNG.normal(size=(4, 4)), {}),
])
def test_vjp_is_the_transpose_of_the_jvp(name: str, x: np.ndarray, params: dict[str, Any]) -> None:
    # the table's pairing <a, b> = Re(sum(a * b)) (docs/complex.md): Re<vjp(c), t> = Re<c, jvp(t)>,
    # with tangents of x's kind (real for a real x) and cotangents of the output's
    from diffkit.primitives import PRIMITIVES

    prim = PRIMITIVES[name]
    out = prim.numpy(x, **params)
    for _ in range(3):
        t = RNG.normal(size=x.shape) + (1j * RNG.normal(size=x.shape) if np.iscomplexobj(x) else 0)
        c = RNG.normal(size=out.shape) + (1j * RNG.normal(size=out.shape) if np.iscomplexobj(out) else 0)
        lhs = np.sum(prim.vjp_rule(0)(c, out, x, **params) * t).real
        rhs = np.sum(c * prim.jvp_rule(0)(t, out, x, **params)).real
        np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


XP = np.array([0.0, 1.0, 2.5, 4.0])
FP = np.array([1.0, -1.0, 2.0, 0.5])
POINTS = np.array([-0.5, 0.3, 1.7, 3.9, 4.5, 2.2])


@pytest.mark.parametrize("backend", ("forward", "reverse", "numeric"))
@pytest.mark.parametrize("wrt", ["x", "fp", "xp", "bounds"])
def test_interp_matches_finite_differences(wrt: str, backend: str) -> None:
    f, v = {
        "x": (lambda x: np.interp(x, XP, FP), POINTS),
        "fp": (lambda f: np.interp(POINTS, XP, f), FP),
        "xp": (lambda q: np.interp(POINTS, q, FP), XP),
        "bounds": (lambda x: np.interp(x, XP, FP, left=-3.0, right=9.0), POINTS),
    }[wrt]
    check(f, v, backend)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_interp_by_hand(backend: str) -> None:
    # the slope of the segment a point is in; on a knot, the segment to its right (the one
    # NumPy's value formula uses); outside the knots the value is constant
    g = dk.grad(lambda x: np.interp(x, XP, FP), backend=backend)
    assert [float(g(x)) for x in (0.5, 1.0, 3.0, 4.0, -1.0)] == [-2.0, 2.0, -1.0, 0.0, 0.0]
    with pytest.raises(UnsupportedOperation, match="symbolic backend"):
        dk.grad(lambda x: np.interp(x, XP, FP), backend="symbolic")(0.5)
