"""Test functions for the built-in suites, written in plain NumPy.

Every function here is top-level (so a suite case can name it as
``"diffkit.harness.testfunctions:rosenbrock"`` and a child process can import
it), deterministic, and small enough for the symbolic backend to trace element
by element (at most about 60 array elements). Data arrays are fixed constants.

Groups:

* classic optimisation functions of a vector ``x`` (Surjanovic & Bingham's
  Virtual Library of Simulation Experiments gives the definitions), and two
  residual vectors for Jacobians;
* neural-network pieces: softmax cross-entropy, logistic regression, a
  2-layer tanh MLP, log-sum-exp, layer normalisation;
* kinks: ``np.max`` of a vector with a tie;
* small linear algebra on flat vectors reshaped inside the function;
* the seed notes' examples that need more than an expression string;
* the logistic map ``l_n`` for ``n = 1..8`` (:mod:`diffkit.swell`).

Example:
    >>> import numpy as np
    >>> float(rosenbrock(np.ones(4)))
    0.0
    >>> round(float(logistic_n3(0.3)), 6)
    0.5376
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..swell import logistic

# ---------------------------------------------------------------------------
# Classic optimisation functions
# ---------------------------------------------------------------------------


def rosenbrock(x: Any) -> Any:
    """Rosenbrock's valley, ``sum 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2``; minimum 0 at ones.

    Example:
        >>> float(rosenbrock(np.array([1.0, 1.0])))
        0.0
    """
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_residuals(x: Any) -> Any:
    """Rosenbrock as least squares: ``rosenbrock(x) == sum(rosenbrock_residuals(x)**2)``.

    Example:
        >>> x = np.array([1.2, 0.8, -0.5])
        >>> bool(np.isclose(np.sum(rosenbrock_residuals(x) ** 2), rosenbrock(x)))
        True
    """
    return np.concatenate([10.0 * (x[1:] - x[:-1] ** 2), 1.0 - x[:-1]])


def beale(x: Any) -> Any:
    """Beale's function of two variables; minimum 0 at (3, 0.5).

    Example:
        >>> float(beale(np.array([3.0, 0.5])))
        0.0
    """
    a, b = x[0], x[1]
    return (1.5 - a + a * b) ** 2 + (2.25 - a + a * b**2) ** 2 + (2.625 - a + a * b**3) ** 2


def himmelblau(x: Any) -> Any:
    """Himmelblau's function; four minima, one at (3, 2).

    Example:
        >>> float(himmelblau(np.array([3.0, 2.0])))
        0.0
    """
    a, b = x[0], x[1]
    return (a**2 + b - 11.0) ** 2 + (a + b**2 - 7.0) ** 2


def himmelblau_residuals(x: Any) -> Any:
    """Himmelblau as least squares: the two residuals whose squares it sums.

    Example:
        >>> himmelblau_residuals(np.array([3.0, 2.0])).tolist()
        [0.0, 0.0]
    """
    a, b = x[0], x[1]
    return np.stack([a**2 + b - 11.0, a + b**2 - 7.0])


def rastrigin(x: Any) -> Any:
    """Rastrigin's function ``10 n + sum x^2 - 10 cos(2 pi x)``; minimum 0 at the origin.

    Example:
        >>> float(rastrigin(np.zeros(3)))
        0.0
    """
    return 10.0 * x.shape[0] + np.sum(x**2 - 10.0 * np.cos(2.0 * math.pi * x))


def ackley(x: Any) -> Any:
    """Ackley's function (a = 20, b = 0.2, c = 2 pi); minimum 0 at the origin, where sqrt has a kink.

    Example:
        >>> abs(float(ackley(np.zeros(2)))) < 1e-12
        True
    """
    n = x.shape[0]
    r = np.sqrt(np.sum(x**2) / n)
    return -20.0 * np.exp(-0.2 * r) - np.exp(np.sum(np.cos(2.0 * math.pi * x)) / n) + 20.0 + math.e


def booth(x: Any) -> Any:
    """Booth's function; minimum 0 at (1, 3).

    Example:
        >>> float(booth(np.array([1.0, 3.0])))
        0.0
    """
    return (x[0] + 2.0 * x[1] - 7.0) ** 2 + (2.0 * x[0] + x[1] - 5.0) ** 2


def matyas(x: Any) -> Any:
    """Matyas' function ``0.26 (x^2 + y^2) - 0.48 x y``; minimum 0 at the origin.

    Example:
        >>> float(matyas(np.zeros(2)))
        0.0
    """
    return 0.26 * (x[0] ** 2 + x[1] ** 2) - 0.48 * x[0] * x[1]


def three_hump_camel(x: Any) -> Any:
    """The three-hump camel ``2 x^2 - 1.05 x^4 + x^6/6 + x y + y^2``; minimum 0 at the origin.

    Example:
        >>> float(three_hump_camel(np.zeros(2)))
        0.0
    """
    a, b = x[0], x[1]
    return 2.0 * a**2 - 1.05 * a**4 + a**6 / 6.0 + a * b + b**2


def styblinski_tang(x: Any) -> Any:
    """Styblinski-Tang ``sum (x^4 - 16 x^2 + 5 x) / 2``; minimum near -2.903534 in every coordinate.

    Example:
        >>> round(float(styblinski_tang(np.full(2, -2.903534))), 3)
        -78.332
    """
    return 0.5 * np.sum(x**4 - 16.0 * x**2 + 5.0 * x)


def sphere(x: Any) -> Any:
    """The sphere ``sum x^2``.

    Example:
        >>> float(sphere(np.array([1.0, 2.0])))
        5.0
    """
    return np.sum(x**2)


def trid(x: Any) -> Any:
    """Trid ``sum (x_i - 1)^2 - sum x_i x_{i-1}``; for n = 6 the minimum -50 is at x_i = i (7 - i).

    Example:
        >>> float(trid(np.array([6.0, 10.0, 12.0, 12.0, 10.0, 6.0])))
        -50.0
    """
    return np.sum((x - 1.0) ** 2) - np.sum(x[1:] * x[:-1])


# ---------------------------------------------------------------------------
# Neural-network pieces (fixed small data)
# ---------------------------------------------------------------------------

TARGET_CLASS = 2
"""The true class of :func:`softmax_cross_entropy`."""

# Logistic regression: 8 samples, 3 features (the last a constant 1, the bias).
LOGREG_X = np.array([
    [0.5, -1.2, 1.0],
    [1.5, 0.3, 1.0],
    [-0.7, 0.8, 1.0],
    [2.0, 1.1, 1.0],
    [-1.3, -0.4, 1.0],
    [0.1, 2.2, 1.0],
    [1.1, -0.9, 1.0],
    [-2.1, 0.5, 1.0],
])
LOGREG_Y = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0])

# A 2-layer tanh MLP 3 -> 4 -> 1: W1 (4x3), b1 (4), W2 (4), b2 (1): 21 parameters.
MLP_SHAPES = ((4, 3), (4,), (4,), (1,))
MLP_SIZE = sum(int(np.prod(s)) for s in MLP_SHAPES)
MLP_X = np.array([[0.2, -0.5, 1.0], [1.1, 0.4, -0.3], [-0.8, 0.9, 0.5], [0.3, 0.3, -1.2], [1.5, -1.0, 0.2]])
MLP_Y = np.array([0.5, -0.2, 0.8, -0.6, 0.1])
MLP_PARAMS = np.round(np.sin(np.arange(1, MLP_SIZE + 1) * 1.7) * 0.6, 3)
"""A fixed, deterministic parameter vector for :func:`mlp_loss` (no RNG)."""

# Seed MLP (notes 000, 001, 003): real data, a few rows of Fisher's Iris data set
# (sepal length, petal length in cm), regressing petal width (cm); 2 -> 3 -> 1, 13 parameters.
IRIS_X = np.array([[5.1, 1.4], [4.9, 1.4], [7.0, 4.7], [6.4, 4.5], [6.3, 6.0], [5.8, 5.1]])
IRIS_Y = np.array([0.2, 0.2, 1.4, 1.5, 2.5, 1.9])
SEED_MLP_SHAPES = ((3, 2), (3,), (3,), (1,))
SEED_MLP_SIZE = sum(int(np.prod(s)) for s in SEED_MLP_SHAPES)
SEED_MLP_PARAMS = np.round(np.cos(np.arange(1, SEED_MLP_SIZE + 1) * 2.3) * 0.4, 3)


def softmax_cross_entropy(logits: Any) -> Any:
    """Cross-entropy of ``softmax(logits)`` against class :data:`TARGET_CLASS`, with the max subtracted.

    Example:
        >>> round(float(softmax_cross_entropy(np.zeros(4))), 6)  # log 4
        1.386294
    """
    z = logits - np.max(logits)
    return np.log(np.sum(np.exp(z))) - z[TARGET_CLASS]


def logistic_regression_loss(w: Any) -> Any:
    """Mean logistic loss of weights ``w`` (3) on :data:`LOGREG_X`, :data:`LOGREG_Y`, via logaddexp.

    ``-y log p - (1 - y) log(1 - p)`` with ``p = sigmoid(s)`` is ``logaddexp(0, s) - y s``.

    Example:
        >>> round(float(logistic_regression_loss(np.zeros(3))), 6)  # log 2
        0.693147
    """
    s = LOGREG_X @ w
    return np.mean(np.logaddexp(0.0, s) - LOGREG_Y * s)


def _unflatten(p: Any, shapes: Any) -> list[Any]:
    parts, k = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        parts.append(np.reshape(p[k:k + n], shape))
        k += n
    return parts


def mlp_loss(params: Any) -> Any:
    """Mean squared error of a 3 -> 4 -> 1 tanh MLP on fixed data; ``params`` flat (21).

    Example:
        >>> round(float(mlp_loss(MLP_PARAMS)), 6) > 0
        True
    """
    w1, b1, w2, b2 = _unflatten(params, MLP_SHAPES)
    h = np.tanh(MLP_X @ w1.T + b1)
    out = h @ w2 + b2
    return np.mean((out - MLP_Y) ** 2)


def seed_mlp_loss(params: Any) -> Any:
    """The seed notes' MLP: ``J = 1/(2m) sum (y - y_hat)^2`` (note 003) of a 2 -> 3 -> 1 sigmoid net
    (note 001's ``z = W1 x + b1, h = sigma(z), o = W2 h + b2``) on a few Iris rows; ``params`` flat (13).

    Example:
        >>> round(float(seed_mlp_loss(SEED_MLP_PARAMS)), 6) > 0
        True
    """
    w1, b1, w2, b2 = _unflatten(params, SEED_MLP_SHAPES)
    h = 1.0 / (1.0 + np.exp(-(IRIS_X @ w1.T + b1)))
    out = h @ w2 + b2
    return np.sum((IRIS_Y - out) ** 2) / (2 * IRIS_Y.shape[0])


def logsumexp(x: Any) -> Any:
    """``log sum exp(x)``, stabilised by the maximum.

    Example:
        >>> round(float(logsumexp(np.zeros(3))), 6)
        1.098612
    """
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


def layer_norm(x: Any) -> Any:
    """Normalisation ``(x - mean) / std`` (with a small epsilon in the variance), a vector.

    Example:
        >>> np.round(layer_norm(np.array([1.0, 2.0, 3.0])), 4).tolist()
        [-1.2247, 0.0, 1.2247]
    """
    mu = np.mean(x)
    return (x - mu) / np.sqrt(np.mean((x - mu) ** 2) + 1e-5)


LAYER_NORM_WEIGHTS = np.array([0.3, -1.2, 0.7, 2.0, -0.5])


def layer_norm_loss(x: Any) -> Any:
    """A scalar of :func:`layer_norm`: a fixed weighted sum of its squared outputs plus its outputs.

    Example:
        >>> round(float(layer_norm_loss(np.arange(5.0))), 6) != 0
        True
    """
    y = layer_norm(x)
    return np.sum(LAYER_NORM_WEIGHTS * (y + 0.5 * y**2))


# ---------------------------------------------------------------------------
# Kinks
# ---------------------------------------------------------------------------


def vector_max(x: Any) -> Any:
    """``np.max`` of a vector (at a tie, the derivative splits among the tied entries).

    Example:
        >>> float(vector_max(np.array([1.0, 3.0, 3.0, 2.0])))
        3.0
    """
    return np.max(x)


def vector_max_squared(x: Any) -> Any:
    """``np.max(x) * sum(x)``, so the max's derivative mixes with a smooth part.

    Example:
        >>> float(vector_max_squared(np.array([1.0, 3.0, 3.0, 2.0])))
        27.0
    """
    return np.max(x) * np.sum(x)


# ---------------------------------------------------------------------------
# Linear algebra on flat vectors (3x3 matrices)
# ---------------------------------------------------------------------------

LINALG_A = np.array([2.0, 0.5, -0.3, 0.4, 3.0, 0.2, -0.1, 0.6, 1.5])
"""A well-conditioned 3x3 matrix, row by row."""
LINALG_B = np.array([1.0, -2.0, 0.5])
LINALG_W = np.array([0.3, -0.7, 1.1, 0.5, 0.2, -0.4, 0.9, -1.3, 0.6])


def inv_weighted(a: Any) -> Any:
    """``sum(W * inv(A))`` for a flat 3x3 ``a``.

    Example:
        >>> bool(np.isfinite(inv_weighted(LINALG_A)))
        True
    """
    return np.sum(LINALG_W.reshape(3, 3) * np.linalg.inv(np.reshape(a, (3, 3))))


def inv_flat(a: Any) -> Any:
    """``inv(A)`` flattened: a vector whose Jacobian is ``-(A^-1 (x) A^-T)``.

    Example:
        >>> inv_flat(np.eye(3).ravel()).tolist() == np.eye(3).ravel().tolist()
        True
    """
    return np.ravel(np.linalg.inv(np.reshape(a, (3, 3))))


def det3(a: Any) -> Any:
    """``det(A)``; its gradient is the cofactor matrix.

    Example:
        >>> float(det3(np.eye(3).ravel()))
        1.0
    """
    return np.linalg.det(np.reshape(a, (3, 3)))


def solve3(a: Any) -> Any:
    """``solve(A, b)`` for a fixed ``b``: a vector.

    Example:
        >>> solve3(np.eye(3).ravel()).tolist()
        [1.0, -2.0, 0.5]
    """
    return np.linalg.solve(np.reshape(a, (3, 3)), LINALG_B)


def slogdet3(a: Any) -> Any:
    """``log |det A|`` by ``slogdet``; its gradient is ``inv(A)^T``.

    Example:
        >>> float(slogdet3(np.eye(3).ravel()))
        0.0
    """
    return np.linalg.slogdet(np.reshape(a, (3, 3)))[1]


def cholesky_spd(a: Any) -> Any:
    """The Cholesky factor of ``A A^T + I`` (symmetric positive definite for every ``A``), flattened.

    ``A`` is 2x2 (``a`` has 4 entries): for 3x3 the symbolic backend's rule inverts a
    symbolic ``L`` full of nested square roots, which takes minutes.

    Example:
        >>> bool(np.allclose(cholesky_spd(np.zeros(4)), np.eye(2).ravel()))
        True
    """
    m = np.reshape(a, (2, 2))
    return np.ravel(np.linalg.cholesky(m @ m.T + np.eye(2)))


def cholesky_logdet(a: Any) -> Any:
    """``log det(A A^T + I) = 2 sum log diag(L)`` through the Cholesky factor of a flat 2x2 ``a``.

    Example:
        >>> float(cholesky_logdet(np.zeros(4)))
        0.0
    """
    m = np.reshape(a, (2, 2))
    lower = np.linalg.cholesky(m @ m.T + np.eye(2))
    return 2.0 * np.sum(np.log(np.diagonal(lower)))


def frobenius_norm(a: Any) -> Any:
    """``norm(A)`` (Frobenius) of a flat 3x3 ``a``.

    Example:
        >>> float(frobenius_norm(np.eye(3).ravel())) == 3 ** 0.5
        True
    """
    return np.linalg.norm(np.reshape(a, (3, 3)))


def vector_norm(x: Any) -> Any:
    """The Euclidean norm ``norm(x)`` of a vector.

    Example:
        >>> float(vector_norm(np.array([3.0, 4.0])))
        5.0
    """
    return np.linalg.norm(x)


# ---------------------------------------------------------------------------
# Seed examples that are more than one expression
# ---------------------------------------------------------------------------


def sigmoid(x: Any) -> Any:
    """``1 / (1 + exp(-x))``, as the notes write it.

    Example:
        >>> float(sigmoid(0.0))
        0.5
    """
    return 1.0 / (1.0 + np.exp(-x))


def stacked_sigmoids(x: Any) -> Any:
    """Ten sigmoids composed (note 004): the derivative at 0 is at most 0.25**10, vanishing.

    Example:
        >>> 0.5 < float(stacked_sigmoids(0.0)) < 1.0
        True
    """
    for _ in range(10):
        x = sigmoid(x)
    return x


# ---------------------------------------------------------------------------
# The logistic map (expression swell): one importable function per n, because
# suites name their callables as "module:function" (deliberately repetitive)
# ---------------------------------------------------------------------------


def logistic_n1(x: Any) -> Any:
    """l_1 = x.

    Example:
        >>> logistic_n1(0.3)
        0.3
    """
    return logistic(x, 1)


def logistic_n2(x: Any) -> Any:
    """l_2 = 4 x (1 - x)."""
    return logistic(x, 2)


def logistic_n3(x: Any) -> Any:
    """l_3 of the logistic map."""
    return logistic(x, 3)


def logistic_n4(x: Any) -> Any:
    """l_4 of the logistic map."""
    return logistic(x, 4)


def logistic_n5(x: Any) -> Any:
    """l_5 of the logistic map."""
    return logistic(x, 5)


def logistic_n6(x: Any) -> Any:
    """l_6 of the logistic map."""
    return logistic(x, 6)


def logistic_n7(x: Any) -> Any:
    """l_7 of the logistic map."""
    return logistic(x, 7)


def logistic_n8(x: Any) -> Any:
    """l_8 of the logistic map."""
    return logistic(x, 8)


# ---------------------------------------------------------------------------
# Special functions and densities (the scipy extra)
# ---------------------------------------------------------------------------

GAUSS_DATA = np.array([0.3, -1.2, 0.8, 2.1, -0.4, 1.0])
"""Six fixed observations for the Gaussian and Student-t log-likelihoods."""


def special_mix(p: Any) -> Any:
    """``erf(a) * gammaln(1.5 + b**2) + expit(a b) + xlogy(a**2, 1 + b**2)`` of ``p = (a, b)``:
    SciPy's special functions as ufuncs on traced values.

    Example:
        >>> round(float(special_mix(np.array([0.0, 0.0]))), 6)     # erf(0) = 0, expit(0) = 1/2
        0.5
    """
    import scipy.special as sc

    a, b = p[0], p[1]
    return sc.erf(a) * sc.gammaln(1.5 + b**2) + sc.expit(a * b) + sc.xlogy(a**2, 1.0 + b**2)


def gauss_loglik(p: Any) -> Any:
    """The Gaussian log-likelihood of :data:`GAUSS_DATA` in ``p = (mean, log sd)``
    (``diffkit.scipy.stats.norm.logpdf``).

    Example:
        >>> round(float(gauss_loglik(np.array([0.0, 0.0]))), 6)
        -9.383631
    """
    from ..scipy import stats

    return np.sum(stats.norm.logpdf(GAUSS_DATA, p[0], np.exp(p[1])))


def student_t_loglik(p: Any) -> Any:
    """The Student-t log-likelihood of :data:`GAUSS_DATA` in ``p = (loc, log scale, log df)``.

    Example:
        >>> bool(np.isfinite(student_t_loglik(np.array([0.0, 0.0, 1.0]))))
        True
    """
    from ..scipy import stats

    return np.sum(stats.t.logpdf(GAUSS_DATA, np.exp(p[2]), p[0], np.exp(p[1])))


def bessel_mix(x: Any) -> Any:
    """``i0(x) * exp(-x) + i1(x)``, SciPy's modified Bessel functions.

    Example:
        >>> round(float(bessel_mix(0.0)), 6)                 # i0(0) = 1, i1(0) = 0
        1.0
    """
    import scipy.special as sc

    return sc.i0(x) * np.exp(-x) + sc.i1(x)


# ---------------------------------------------------------------------------
# SVD, FFT and pytrees
# ---------------------------------------------------------------------------


def top_singular_value(a: Any) -> Any:
    """The largest singular value of a 3x3 matrix (row by row); its gradient is ``u1 v1^T``.

    Example:
        >>> round(float(top_singular_value(np.diag([3.0, 2.0, 1.0]).ravel())), 6)
        3.0
    """
    return np.linalg.svd(np.reshape(a, (3, 3)), compute_uv=False)[0]


def nuclear_norm(a: Any) -> Any:
    """The nuclear norm (sum of singular values) of a 3x3 matrix; its gradient is ``U V^T``.

    Example:
        >>> round(float(nuclear_norm(np.diag([3.0, -2.0, 1.0]).ravel())), 6)
        6.0
    """
    return np.linalg.norm(np.reshape(a, (3, 3)), ord="nuc")


FFT_WEIGHTS = np.array([1.0, 0.5, 0.25, 0.125, 0.0625])
"""Weights of the power spectrum's bins (rfft of 8 points has 5)."""


def weighted_power_spectrum(x: Any) -> Any:
    """``sum(w * |rfft(x)|**2)`` of 8 samples: a real function through complex intermediates.

    Example:
        >>> float(weighted_power_spectrum(np.ones(8)))        # all power in bin 0: 8**2
        64.0
    """
    return np.sum(FFT_WEIGHTS * np.abs(np.fft.rfft(x)) ** 2)


def dict_mlp_loss(params: Any) -> Any:
    """A 2-3-1 tanh network's squared loss on four fixed samples, its parameters a dict
    ``{"W1", "b1", "W2", "b2"}`` (a pytree, as JAX users write it).

    Example:
        >>> p = {"W1": np.zeros(6), "b1": np.zeros(3), "W2": np.zeros(3), "b2": np.zeros(1)}
        >>> round(float(dict_mlp_loss(p)), 6)
        1.045
    """
    X = np.array([[0.5, -1.0], [1.5, 0.2], [-0.3, 0.8], [1.0, 1.0]])
    y = np.array([0.3, -0.8, 0.6, 1.0])
    h = np.tanh(X @ np.reshape(params["W1"], (2, 3)) + params["b1"])
    out = h @ params["W2"] + params["b2"][0]
    return 0.5 * np.sum((out - y) ** 2)
