"""More NumPy linear algebra (docs/numpy-coverage.md): np.linalg.eig with its eigenvectors.

Every derivative is checked against central differences of NumPy's own function
(which carries LAPACK's gauge: unit eigenvectors whose largest-modulus component
is real), on the forward and reverse backends, and on the numeric backend where
the function is real-valued.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import diffkit as dk
from diffkit.errors import UnsupportedOperation

RNG = np.random.default_rng(20261206)


def central_grad(f: Callable[[Any], Any], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """The gradient of a real-valued NumPy function by central differences; of a complex
    argument JAX's df/dx - 1j df/dy (docs/complex.md)."""
    g = np.zeros(x.shape, dtype=x.dtype)
    for i in np.ndindex(x.shape):
        e = np.zeros(x.shape)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
        if np.iscomplexobj(x):
            g[i] -= 1j * (f(x + 1j * e) - f(x - 1j * e)) / (2 * h)
    return g


def _matrix(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "real":          # real, with real distinct eigenvalues
        q = np.eye(n) + 0.4 * rng.normal(size=(n, n))      # well conditioned eigenvectors
        return q @ np.diag(np.arange(n) + 0.3 * rng.normal(size=n)) @ np.linalg.inv(q)
    if kind == "pairs":         # real, with a complex conjugate pair
        while True:
            a = rng.normal(size=(n, n))
            if np.any(np.abs(np.imag(np.linalg.eigvals(a))) > 0.1):
                return a
    return rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))


CASES = [(kind, n, seed) for kind in ("real", "pairs", "complex") for n in (3, 4) for seed in (0, 1)]
MATRICES = {c: _matrix(c[0], c[1], np.random.default_rng(100 * c[1] + c[2] + len(c[0]))) for c in CASES}

GAUGED: dict[str, Callable[[Any], Any]] = {
    "real_v01": lambda m: np.real(np.linalg.eig(m)[1][0, 1]),
    "abs_sum": lambda m: np.abs(np.linalg.eig(m)[1]).sum(),
    "values_and_vector": lambda m: np.real(np.linalg.eig(m)[0]).sum() + np.imag(np.linalg.eig(m)[1][1, 0]),
    "weighted": lambda m: np.real(np.sum(np.linalg.eig(m).eigenvectors * np.arange(1.0, 1.0 + m.shape[0]) ** 2)),
}


def test_numpy_gauge_is_what_the_rules_assume() -> None:
    # LAPACK (geev): unit Euclidean norm and the largest-modulus component real
    for a in MATRICES.values():
        v = np.linalg.eig(a)[1]
        np.testing.assert_allclose(np.linalg.norm(v, axis=0), 1.0, rtol=1e-14)
        k = np.argmax(np.abs(v), axis=0)
        assert np.all(np.imag(v[k, np.arange(v.shape[1])]) == 0)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
@pytest.mark.parametrize("name", sorted(GAUGED))
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}{c[1]}-{c[2]}")
def test_eig_matches_finite_differences_of_numpy(case: tuple[str, int, int], name: str, backend: str) -> None:
    a, f = MATRICES[case], GAUGED[name]
    got, want = dk.grad(f, backend=backend)(a), central_grad(f, a)
    # central differences: error ~ h**2 f''' + eps/h, relative to the derivative's size
    np.testing.assert_allclose(got, want, atol=1e-7 * max(1.0, np.max(np.abs(want))), rtol=1e-6)
    if case[0] != "complex":
        assert np.asarray(got).dtype.kind == "f"   # real-valued function of a real matrix: real gradient


@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")
@pytest.mark.parametrize("case", [c for c in CASES if c[0] != "complex"], ids=lambda c: f"{c[0]}{c[1]}-{c[2]}")
def test_eig_numeric_backend(case: tuple[str, int, int]) -> None:
    a, f = MATRICES[case], GAUGED["abs_sum"]
    np.testing.assert_allclose(dk.grad(f, backend="numeric")(a), dk.grad(f, backend="reverse")(a),
                               atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}{c[1]}-{c[2]}")
def test_eig_jvp_and_vjp_agree(case: tuple[str, int, int]) -> None:
    # <vbar, J t> = <J^T vbar, t> for the pairing Re(sum(a * b)), and J t is the
    # directional derivative of NumPy's (w, V) along t
    a = MATRICES[case]
    rng = np.random.default_rng(7)
    t = rng.normal(size=a.shape) + (1j * rng.normal(size=a.shape) if case[0] == "complex" else 0)
    (w, v), (dw, dv) = dk.jvp(np.linalg.eig, (a,), (t,), backend="forward")
    h = 1e-6
    (w1, v1), (w0, v0) = np.linalg.eig(a + h * t), np.linalg.eig(a - h * t)
    np.testing.assert_allclose(dw, (w1 - w0) / (2 * h), atol=1e-7 * max(1.0, np.max(np.abs(dw))))
    np.testing.assert_allclose(dv, (v1 - v0) / (2 * h), atol=1e-7 * max(1.0, np.max(np.abs(dv))))
    cw = rng.normal(size=w.shape) + 1j * rng.normal(size=w.shape)
    cv = rng.normal(size=v.shape) + 1j * rng.normal(size=v.shape)
    if np.asarray(v).dtype.kind == "f":
        cw, cv = cw.real, cv.real
    _, pullback = dk.vjp(lambda m: tuple(np.linalg.eig(m)), a, backend="reverse")
    (abar,) = pullback((cw, cv))
    lhs = np.real(np.sum(cw * dw) + np.sum(cv * dv))
    np.testing.assert_allclose(np.real(np.sum(abar * t)), lhs, rtol=1e-10)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
@pytest.mark.parametrize("kind", ("real", "pairs"))
def test_eig_hessian(kind: str, backend: str) -> None:
    """The rules are written with traced operations: second orders are central differences
    of the gradient."""
    a = MATRICES[(kind, 3, 0)]
    f = GAUGED["values_and_vector"] if kind == "pairs" else (
        lambda m: np.real(np.linalg.eig(m)[1][0, 1]) + np.real(np.linalg.eig(m)[0]).sum() ** 2)
    grad = dk.grad(f, backend="reverse")
    h = 1e-5
    want = np.zeros(a.shape * 2)
    for i in np.ndindex(a.shape):
        e = np.zeros(a.shape)
        e[i] = h
        want[(Ellipsis,) + i] = (grad(a + e) - grad(a - e)) / (2 * h)
    np.testing.assert_allclose(dk.hessian(f, backend=backend)(a), want, atol=1e-6)


def test_eig_by_hand() -> None:
    # A = [[1, 1], [e, 3]]: the eigenvalue near 3 solves (1 - l)(3 - l) = e, so dl/de = 1/2;
    # its eigenvector is +-(1, x) / sqrt(1 + x^2) with x = l - 1 = 2 + e/2 (row 0: 1 + x = l),
    # so d v_0 / de = -x / (1 + x^2)^(3/2) * dx/de = -1 / 5^(3/2) (times NumPy's sign)
    a = np.array([[1.0, 1.0], [0.0, 3.0]])
    w, v = np.linalg.eig(a)
    j = int(np.argmax(np.real(w)))
    sign = np.sign(v[0, j])
    for backend in ("forward", "reverse"):
        g = dk.grad(lambda m: np.real(np.linalg.eig(m)[1][0, j]), backend=backend)(a)
        np.testing.assert_allclose(g[1, 0], -sign / 5 ** 1.5, rtol=1e-12)
        g = dk.grad(lambda m: np.real(np.linalg.eig(m)[0][j]), backend=backend)(a)
        np.testing.assert_allclose(g, [[0.0, 0.0], [0.5, 1.0]], atol=1e-15)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_eig_refuses_at_repeated_eigenvalues(backend: str) -> None:
    for a in (np.eye(3), np.array([[2.0, 1.0], [0.0, 2.0]]), np.diag([1.0, 2.0, 1.0 + 1e-15])):
        with pytest.raises(UnsupportedOperation, match="repeated eigenvalues"):
            dk.grad(lambda m: np.real(np.linalg.eig(m)[1][0, 0]), backend=backend)(a)


def test_eig_on_the_symbolic_backend_refuses() -> None:
    with pytest.raises(UnsupportedOperation, match="numpy.linalg.eig"):
        dk.grad(lambda m: np.real(np.linalg.eig(m)[1][0, 0]), backend="symbolic")(MATRICES[("real", 3, 0)])


# ---------------------------------------------------------------------------
# np.linalg.qr of wide matrices (m < n): A = Q [X | Y], X = Q R1 square, R2 = Q^T Y
# ---------------------------------------------------------------------------


def central_jacobian(f: Callable[[Any], Any], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    y0 = np.asarray(f(x))
    jac = np.zeros(y0.shape + x.shape)
    for i in np.ndindex(x.shape):
        e = np.zeros(x.shape)
        e[i] = h
        jac[(Ellipsis,) + i] = (np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h)
    return jac


WIDE_QR = {"2x4": RNG.normal(size=(2, 4)), "3x5": RNG.normal(size=(3, 5)), "stack": RNG.normal(size=(2, 3, 4))}
QR_PARTS: dict[str, Callable[[Any], Any]] = {
    "Q": lambda m: np.linalg.qr(m)[0],
    "R": lambda m: np.linalg.qr(m).R,
    "r_mode": lambda m: np.linalg.qr(m, mode="r"),
    "complete_Q": lambda m: np.linalg.qr(m, mode="complete").Q,
    "complete_R": lambda m: np.linalg.qr(m, mode="complete")[1],
}


@pytest.mark.parametrize("backend", ("forward", "reverse", "numeric"))
@pytest.mark.parametrize("part", sorted(QR_PARTS))
@pytest.mark.parametrize("shape", sorted(WIDE_QR))
def test_wide_qr_matches_finite_differences(shape: str, part: str, backend: str) -> None:
    a, f = WIDE_QR[shape], QR_PARTS[part]
    np.testing.assert_allclose(dk.jacobian(f, backend=backend)(a), central_jacobian(f, a), atol=1e-8)


def test_wide_qr_values_are_numpys() -> None:
    a = WIDE_QR["3x5"]
    (q, r), _ = dk.jvp(lambda m: tuple(np.linalg.qr(m)), (a,), (np.ones_like(a),), backend="forward")
    np.testing.assert_array_equal(q, np.linalg.qr(a)[0])
    np.testing.assert_array_equal(r, np.linalg.qr(a)[1])


def test_wide_qr_by_hand() -> None:
    # A = [[1, 0, y]]: Q = [[1]], R = [[1, 0, y]]; A = [[x, 0, 0]] for x > 0 likewise, so
    # dR/dA is the identity on a 1 x 3 matrix with a positive first entry, dQ = 0
    a = np.array([[1.0, 0.0, 2.0]])
    for backend in ("forward", "reverse"):
        np.testing.assert_allclose(dk.jacobian(lambda m: np.linalg.qr(m)[1], backend=backend)(a),
                                   np.eye(3).reshape(1, 3, 1, 3) * np.sign(np.linalg.qr(a)[1][0, 0]), atol=1e-15)
        np.testing.assert_allclose(dk.jacobian(lambda m: np.linalg.qr(m)[0], backend=backend)(a), 0.0, atol=1e-15)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_wide_qr_hessian(backend: str) -> None:
    a = WIDE_QR["2x4"]
    f = lambda m: np.sum(np.linalg.qr(m)[0] ** 3) + np.sum(np.sin(np.linalg.qr(m)[1]))
    grad = dk.grad(f, backend="reverse")
    want = central_jacobian(grad, a, h=1e-5)
    np.testing.assert_allclose(dk.hessian(f, backend=backend)(a), want, atol=1e-7)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_qr_refuses_dependent_leading_columns(backend: str) -> None:
    a = np.array([[1.0, 2.0, 0.5], [2.0, 4.0, -1.0]])  # X = first two columns, singular
    with pytest.raises(UnsupportedOperation, match="linearly dependent"):
        dk.jacobian(lambda m: np.linalg.qr(m)[0], backend=backend)(a)


# ---------------------------------------------------------------------------
# eigvals' second derivatives (its rules take eig's traced eigenvectors)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
@pytest.mark.parametrize("kind", ("real", "pairs"))
def test_eigvals_hessian(kind: str, backend: str) -> None:
    a = MATRICES[(kind, 3, 1)]
    f = lambda m: np.sum(np.real(np.linalg.eigvals(m)) ** 2) + np.prod(np.abs(np.linalg.eigvals(m)))
    want = central_jacobian(dk.grad(f, backend="reverse"), a, h=1e-5)
    np.testing.assert_allclose(dk.hessian(f, backend=backend)(a), want, atol=1e-7)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_eigvals_hessian_by_hand(backend: str) -> None:
    # sum(lambda^2) = tr(A^2) (real eigenvalues): d2/dA_ij dA_kl = 2 delta_il delta_jk
    a = MATRICES[("real", 3, 0)]
    hess = dk.hessian(lambda m: np.sum(np.real(np.linalg.eigvals(m)) ** 2), backend=backend)(a)
    np.testing.assert_allclose(hess, 2 * np.einsum("il,jk->ijkl", np.eye(3), np.eye(3)), atol=1e-12)


# ---------------------------------------------------------------------------
# np.linalg.pinv(rcond=/rtol=) and np.linalg.lstsq(rcond=): the truncated pseudo-inverse
# ---------------------------------------------------------------------------


def _low_rank(m: int, n: int, s: list[float], seed: int) -> np.ndarray:
    """A matrix with the given singular values (zero-padded to min(m, n))."""
    rng = np.random.default_rng(seed)
    u = np.linalg.qr(rng.normal(size=(m, m)))[0]
    v = np.linalg.qr(rng.normal(size=(n, n)))[0]
    k = min(m, n)
    return (u[:, :k] * (list(s) + [0.0] * (k - len(s)))) @ v[:k]


TRUNCATED = {
    "tall_rank2": _low_rank(4, 3, [3.0, 1.5], 1),                 # an exactly zero singular value dropped
    "wide_rank2": _low_rank(3, 5, [3.0, 0.8], 2),
    "small_dropped": _low_rank(4, 4, [3.0, 1.5, 1e-3, 5e-4], 3),  # small nonzero ones dropped
    "nothing_dropped": _low_rank(4, 3, [3.0, 1.5, 0.8], 4),       # Golub-Pereyra's case
    "stack": np.stack([_low_rank(3, 3, [2.0, 1.0], 5), _low_rank(3, 3, [2.0, 1.0, 0.5], 6)]),
}
CUT: dict[str, Callable[[Any], Any]] = {
    "rcond": lambda m: np.linalg.pinv(m, rcond=0.1),
    "rtol": lambda m: np.linalg.pinv(m, rtol=0.1),
    "lstsq": lambda m: np.linalg.lstsq(m[..., :, :], np.arange(1.0, 1.0 + m.shape[-2]), rcond=0.1)[0],
}


@pytest.mark.parametrize("backend", ("forward", "reverse", "numeric"))
@pytest.mark.parametrize("how", sorted(CUT))
@pytest.mark.parametrize("case", sorted(TRUNCATED))
def test_truncated_pinv_matches_finite_differences(case: str, how: str, backend: str) -> None:
    a, f = TRUNCATED[case], CUT[how]
    if how == "lstsq" and a.ndim != 2:
        pytest.skip("lstsq takes one matrix")
    want = central_jacobian(f, a)
    np.testing.assert_allclose(dk.jacobian(f, backend=backend)(a), want, atol=1e-8)


def test_truncated_pinv_by_hand() -> None:
    # A = diag(2, e): with rcond = 0.1 the e = 0 entry is dropped; pinv = diag(1/2, 0), and a
    # step dA gives d pinv = -(1/4) dA_00 at [0, 0], dA_10 / 4 at [0, 1] (the (I - P A) dA^T P^T P
    # term) and dA_01 / 4 at [1, 0] (P P^T dA^T (I - A P)); nothing at [1, 1]
    a = np.diag([2.0, 0.0])
    for backend in ("forward", "reverse"):
        jac = dk.jacobian(lambda m: np.linalg.pinv(m, rcond=0.1), backend=backend)(a)
        want = np.zeros((2, 2, 2, 2))
        want[0, 0, 0, 0], want[0, 1, 1, 0], want[1, 0, 0, 1] = -0.25, 0.25, 0.25
        np.testing.assert_allclose(jac, want, atol=1e-15)


def test_truncated_pinv_jvp_on_reverse() -> None:
    # the reverse backend's jvp transposes the VJP with a traced cotangent: first order still
    a, t = TRUNCATED["small_dropped"], RNG.normal(size=(4, 4))
    f = CUT["rcond"]
    want = dk.jvp(f, (a,), (t,), backend="forward")[1]
    np.testing.assert_allclose(dk.jvp(f, (a,), (t,), backend="reverse")[1], want, atol=1e-13)


def test_truncated_pinv_values_are_numpys() -> None:
    a = TRUNCATED["small_dropped"]
    out, _ = dk.jvp(lambda m: np.linalg.pinv(m, rcond=0.1), (a,), (a,), backend="forward")
    np.testing.assert_array_equal(out, np.linalg.pinv(a, rcond=0.1))
    x, _ = dk.jvp(lambda m: np.linalg.lstsq(m, np.ones(4), rcond=0.1)[0], (a,), (a,), backend="forward")
    np.testing.assert_allclose(x, np.linalg.lstsq(a, np.ones(4), rcond=0.1)[0], rtol=1e-12)
    assert np.linalg.lstsq(a, np.ones(4), rcond=0.1)[2] == 2


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_pinv_refuses_where_the_rank_jumps(backend: str) -> None:
    # the default cutoff (1e-15 of s_max) drops an exactly zero singular value: a step of that
    # size changes the rank, so finite differences of np.linalg.pinv blow up; refuse
    a = TRUNCATED["tall_rank2"]
    with pytest.raises(UnsupportedOperation, match="rcond"):
        dk.jacobian(np.linalg.pinv, backend=backend)(a)
    # a singular value at the cutoff itself (0.1 * 3 = 0.3)
    with pytest.raises(UnsupportedOperation, match="equals the cutoff"):
        dk.jacobian(lambda m: np.linalg.pinv(m, rcond=0.1), backend=backend)(_low_rank(3, 3, [3.0, 0.3], 7))
    with pytest.raises(UnsupportedOperation, match="first derivatives"):
        dk.hessian(lambda m: np.sum(np.linalg.pinv(m, rcond=0.1)), backend=backend)(a)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_pinv_refuses_complex(backend: str) -> None:
    with pytest.raises(UnsupportedOperation, match="complex"):
        dk.jvp(np.linalg.pinv, (TRUNCATED["nothing_dropped"] + 1j,), (np.ones((4, 3)) + 0j,), backend=backend)


# ---------------------------------------------------------------------------
# np.linalg.qr on the symbolic backend: LAPACK's Householder algorithm, traced at a point
# ---------------------------------------------------------------------------

SYMBOLIC_QR = {"tall": RNG.normal(size=(3, 2)), "square": RNG.normal(size=(3, 3)), "wide": RNG.normal(size=(2, 3)),
               "negative_pivot": -np.abs(RNG.normal(size=(2, 2)))}


@pytest.mark.parametrize("part", ("Q", "R", "r_mode"))
@pytest.mark.parametrize("case", sorted(SYMBOLIC_QR))
def test_symbolic_qr_matches_finite_differences(case: str, part: str) -> None:
    a, f = SYMBOLIC_QR[case], QR_PARTS[part]
    np.testing.assert_allclose(dk.jacobian(f, backend="symbolic")(a), central_jacobian(f, a), atol=1e-8)


def test_symbolic_qr_values_are_numpys() -> None:
    # the trace runs LAPACK's algorithm with its signs, so the factors are NumPy's
    a = SYMBOLIC_QR["square"]
    f = lambda m: np.linalg.qr(m)[0][1, 2] + np.linalg.qr(m)[1][0, 1]
    r = dk.grad(f, backend="symbolic")
    np.testing.assert_allclose(r(a), dk.grad(f, backend="reverse")(a), atol=1e-10)
    np.testing.assert_allclose(r(-a), dk.grad(f, backend="reverse")(-a), atol=1e-10)


def test_symbolic_qr_by_hand() -> None:
    # R_00 = -sign(a_00) |a[:, 0]| (LAPACK's reflection), so dR_00/da[:, 0] = -sign(a_00) a[:, 0] / |a[:, 0]|
    for a in (np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[-1.0, 2.0], [3.0, 4.0]])):
        g = dk.grad(lambda m: np.linalg.qr(m)[1][0, 0], backend="symbolic")(a)
        col = a[:, 0]
        np.testing.assert_allclose(g, np.stack([-np.sign(col[0]) * col / np.linalg.norm(col), [0.0, 0.0]], axis=1),
                                   atol=1e-15)


def test_symbolic_qr_hessian() -> None:
    a = SYMBOLIC_QR["negative_pivot"]
    f = lambda m: np.sum(np.linalg.qr(m)[0] ** 3) + np.linalg.qr(m)[1][1, 1]
    np.testing.assert_allclose(dk.hessian(f, backend="symbolic")(a), dk.hessian(f, backend="reverse")(a), atol=1e-8)


def test_symbolic_qr_refusals() -> None:
    with pytest.raises(UnsupportedOperation, match="stack"):
        dk.jacobian(lambda m: np.linalg.qr(m)[0], backend="symbolic")(RNG.normal(size=(2, 2, 2)))


@pytest.mark.parametrize("backend", ("forward", "reverse", "symbolic"))
@pytest.mark.parametrize("a", [np.eye(3), np.array([[2.0, 1.0], [0.0, 3.0]]),
                               np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]]),
                               np.array([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]) @ np.array([[1.0, 0.0], [0.0, 1.0]])],
                         ids=["identity", "triangular", "wide_triangular", "tall_zero_row"])
def test_qr_refuses_where_numpy_jumps(a: np.ndarray, backend: str) -> None:
    # LAPACK skips the reflection of a column already zero below the diagonal (R_jj = alpha);
    # any perturbation reflects it (R_jj = -sign(alpha) |x|), so NumPy's factors jump:
    e = np.zeros_like(a)
    e[1, 0] = 1e-9
    if a[1, 0] == 0 and a.shape[0] > 1 and not np.any(a[2:, 0]):
        assert np.sign(np.linalg.qr(a + e)[1][0, 0]) != np.sign(np.linalg.qr(a)[1][0, 0]) or a[0, 0] == 0
    with pytest.raises(UnsupportedOperation, match="jump"):
        dk.jacobian(lambda m: np.linalg.qr(m)[1], backend=backend)(a)


# ---------------------------------------------------------------------------
# Complex matrices: rules written for real ones refuse; log|det| is exact
# ---------------------------------------------------------------------------

_CA = np.random.default_rng(11).normal(size=(3, 3)) + 1j * np.random.default_rng(12).normal(size=(3, 3))
_CH = _CA.conj().T @ _CA + np.eye(3)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
@pytest.mark.parametrize("name", ["svd", "svdvals", "norm_2", "eigh", "cholesky"])
def test_real_only_rules_refuse_complex(name: str, backend: str) -> None:
    f, a = {
        "svd": (lambda m: np.abs(np.linalg.svd(m)[0]).sum(), _CA),
        "svdvals": (lambda m: np.linalg.svd(m, compute_uv=False).sum(), _CA),
        "norm_2": (lambda m: np.linalg.norm(m, 2), _CA),
        "eigh": (lambda m: np.linalg.eigh(m)[0].sum() + np.abs(np.linalg.eigh(m)[1]).sum(), _CH),
        "cholesky": (lambda m: np.abs(np.linalg.cholesky(m)).sum(), _CH),
    }[name]
    with pytest.raises(UnsupportedOperation, match="complex matrix"):
        dk.grad(f, backend=backend)(a)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_logabsdet_of_a_complex_matrix(backend: str) -> None:
    # log|det A| = Re(log det A): the step dA changes it by Re(tr(A^-1 dA)); JAX's gradient is A^-T
    f = lambda m: np.linalg.slogdet(m)[1]
    got = dk.grad(f, backend=backend)(_CA)
    np.testing.assert_allclose(got, central_grad(f, _CA), atol=1e-8)
    np.testing.assert_allclose(got, np.linalg.inv(_CA).T, atol=1e-12)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_eig_of_a_stack(backend: str) -> None:
    a = np.stack([MATRICES[("pairs", 3, 0)], MATRICES[("real", 3, 1)]])
    f = lambda m: np.abs(np.linalg.eig(m)[1]).sum() + np.real(np.linalg.eig(m)[0]).sum() ** 2
    np.testing.assert_allclose(dk.grad(f, backend=backend)(a), central_grad(f, a), atol=1e-7)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_lstsq_of_a_rank_deficient_matrix(backend: str) -> None:
    a, b = TRUNCATED["tall_rank2"], np.arange(1.0, 5.0)
    # NumPy's default cutoff (eps * max(m, n) of s_max) sits at the zero singular value: refuse
    with pytest.raises(UnsupportedOperation, match="rcond"):
        dk.grad(lambda m: np.linalg.lstsq(m, b)[0].sum(), backend=backend)(a)
    # a cutoff well above the dropped value (0.1 * 3): the truncated solution, smooth for steps below 0.3
    f = lambda m: np.linalg.lstsq(m, b, rcond=0.1)[0].sum()
    np.testing.assert_allclose(dk.grad(f, backend=backend)(a), central_grad(f, a), atol=1e-8)


# ---------------------------------------------------------------------------
# hermitian=True: NumPy goes through eigh, which reads the lower triangle
# ---------------------------------------------------------------------------

_SYM = MATRICES[("real", 3, 0)] + MATRICES[("real", 3, 0)].T


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
@pytest.mark.parametrize("how", ("default", "rcond"))
def test_pinv_hermitian_reads_the_lower_triangle(how: str, backend: str) -> None:
    kw = {"rcond": 0.01} if how == "rcond" else {}
    f = lambda m: np.sum(np.linalg.pinv(m, hermitian=True, **kw) * np.arange(9.0).reshape(3, 3))
    for a in (_SYM, MATRICES[("real", 3, 1)] + 5 * np.eye(3)):      # NumPy ignores the upper triangle
        got = dk.grad(f, backend=backend)(a)
        np.testing.assert_allclose(got, central_grad(f, a), atol=1e-7)
        np.testing.assert_allclose(np.triu(got, 1), 0.0)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_svd_hermitian_refuses_its_vectors(backend: str) -> None:
    with pytest.raises(UnsupportedOperation, match="hermitian"):
        dk.grad(lambda m: np.linalg.svd(m, hermitian=True)[0][0, 0], backend=backend)(_SYM)
    # the singular values alone: NumPy reads the lower triangle (eigvalsh) here too
    f = lambda m: np.sum(np.linalg.svd(m, hermitian=True, compute_uv=False) * [3.0, 2.0, 1.0])
    for a in (_SYM - 2 * np.eye(3), MATRICES[("real", 3, 1)] - np.eye(3)):
        got = dk.grad(f, backend=backend)(a)
        np.testing.assert_allclose(got, central_grad(f, a), atol=1e-7)
        np.testing.assert_allclose(np.triu(got, 1), 0.0)
