"""The built-in suites: ``standard``, ``seeds`` and ``swell``.

:data:`SUITES` holds them by name (:func:`diffkit.harness.suites.suite` looks them up there).
Every case is deterministic (fixed points, no randomness) and refers to its
function by an expression string or by ``"module:function"`` (so a case
pickles and a child process can import it). Array arguments stay small (at
most about 60 elements): the symbolic backend traces them element by element.

* ``standard``: elementary primitives and compositions, classic optimisation
  functions, neural-network pieces, kinks at and near their kinks, domain
  edges and small linear algebra; tags ``elementary``, ``optimisation``,
  ``nn``, ``kink``, ``domain``, ``linalg``.
* ``seeds``: the worked examples of the seed notes (the tutorial, ``docs/tutorial.md``).
* ``swell``: the logistic map ``l_n`` of the expression-swell table, n = 1..8.

At a kink the backends follow the conventions of docs/conventions.md, so those cases
are expected to agree; the harness reports a difference there as a
``convention``.

Example:
    >>> {"standard", "seeds", "swell"} <= set(SUITES)
    True
    >>> len(standard()) >= 110
    True
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..swell import X0
from .cases import Case, expand

TF = "diffkit.harness.testfunctions"
"""The module of the suites' NumPy test functions."""


def _tf(name: str) -> str:
    return f"{TF}:{name}"


def _derivatives(id: str, f: str, x: float, orders: Sequence[int], **kw: Any) -> list[Case]:
    """One ``derivative`` case per order: ids ``<id>/d1``, ``<id>/d2``, ..."""
    return [Case(f"{id}/d{k}", f, (x,), "derivative", order=k, **kw) for k in orders]


# ---------------------------------------------------------------------------
# standard
# ---------------------------------------------------------------------------

# (name, expression, point, derivative orders): every differentiable elementwise
# primitive of the table (and the composites sigmoid, softplus) well inside its domain.
_UNARY: list[tuple[str, str, float, tuple[int, ...]]] = [
    ("sin", "sin(x)", 0.7, (1, 2, 3)),
    ("cos", "cos(x)", 0.7, (1, 2, 3)),
    ("tan", "tan(x)", 0.4, (1, 2, 3)),
    ("arcsin", "arcsin(x)", 0.3, (1, 2)),
    ("arccos", "arccos(x)", 0.3, (1, 2)),
    ("arctan", "arctan(x)", 1.3, (1, 2, 3)),
    ("sinh", "sinh(x)", 0.8, (1, 2)),
    ("cosh", "cosh(x)", 0.8, (1, 2)),
    ("tanh", "tanh(x)", 0.6, (1, 2, 3)),
    ("arcsinh", "arcsinh(x)", 1.5, (1, 2)),
    ("arccosh", "arccosh(x)", 2.0, (1, 2)),
    ("arctanh", "arctanh(x)", 0.4, (1, 2)),
    ("exp", "exp(x)", 1.2, (1, 2, 3)),
    ("exp2", "exp2(x)", 0.7, (1, 2)),
    ("expm1", "expm1(x)", 0.3, (1, 2)),
    ("log", "log(x)", 2.5, (1, 2, 3)),
    ("log2", "log2(x)", 3.0, (1,)),
    ("log10", "log10(x)", 3.0, (1,)),
    ("log1p", "log1p(x)", 0.5, (1, 2)),
    ("sqrt", "sqrt(x)", 2.0, (1, 2, 3)),
    ("cbrt", "cbrt(x)", 2.5, (1, 2)),
    ("square", "square(x)", -1.3, (1, 2)),
    ("reciprocal", "reciprocal(x)", 1.7, (1, 2)),
    ("sigmoid", "sigmoid(x)", 0.4, (1, 2, 3)),
    ("softplus", "softplus(x)", 0.4, (1, 2)),
    ("power_const", "x**3.5", 1.3, (1, 2)),
]

# (name, expression, point in sorted-variable order, ops, note)
_COMPOSITIONS: list[tuple[str, str, tuple[float, ...], tuple[str, ...], str]] = [
    ("sin_exp_poly", "sin(x)*exp(y) + x**2*y", (1.0, 2.0), ("grad", "hessian", "jvp", "vjp"),
     "the README's running example: product, chain and power rules"),
    ("log1p_exp_xy", "log(1 + exp(x*y))", (0.5, -1.5), ("grad", "hessian"),
     "softplus of a product written by hand"),
    ("sqrt_radius", "sqrt(x**2 + y**2 + 1)", (1.2, -0.7), ("grad", "hessian", "jvp"),
     "sqrt of a sum of squares, away from 0"),
    ("tanh_sigmoid", "tanh(sigmoid(x) - y)", (0.3, 0.2), ("grad", "hessian"),
     "nested activation functions"),
    ("x_pow_y", "x**y", (1.7, 2.3), ("grad", "hessian"),
     "power with a variable exponent: d/dy x**y = x**y log x"),
    ("arctan2", "arctan2(y, x)", (-0.8, 1.5), ("grad", "hessian"),
     "two-argument arctangent in the second quadrant"),
    ("hypot", "hypot(x, y)", (3.0, 4.0), ("grad", "hessian"),
     "hypot at a 3-4-5 triangle"),
    ("logaddexp", "logaddexp(x, 2*y)", (0.5, 0.3), ("grad", "hessian", "vjp"),
     "logaddexp with a scaled argument"),
    ("logaddexp2", "logaddexp2(x, y)", (0.5, -0.3), ("grad",),
     "base-2 logaddexp"),
    ("gauss_cos", "exp(-x**2 - y**2)*cos(x*y)", (0.4, -0.9), ("grad", "hessian", "jvp"),
     "Gaussian times a cosine of a product"),
    ("cyclic_ratios", "x/y + y/z + z/x", (1.5, 0.7, 2.2), ("grad", "hessian", "vjp"),
     "quotient rule over three variables"),
    ("poly_trig_mix", "x**3*y - 2*x*y**2 + sin(x + y)/(1 + x**2)", (0.6, -1.1), ("grad", "hessian"),
     "polynomial plus a rational trigonometric term"),
    ("softplus_arcsinh", "softplus(x - y) * arcsinh(x*y)", (0.8, 0.5), ("grad", "vjp"),
     "composite activation times an inverse hyperbolic function"),
]

# (name, function, point, ops): classic optimisation functions of a vector.
_OPTIMISATION: list[tuple[str, str, list[float], tuple[str, ...], str]] = [
    ("rosenbrock2", "rosenbrock", [-1.2, 1.0], ("grad", "hessian"), "Rosenbrock n=2 at its classic start"),
    ("rosenbrock10", "rosenbrock", list(np.round(np.linspace(-1.0, 1.5, 10), 6)), ("grad", "hessian", "jvp"),
     "Rosenbrock n=10: a banded Hessian"),
    ("beale", "beale", [1.0, 1.0], ("grad", "hessian"), "Beale: high powers of the second variable"),
    ("himmelblau", "himmelblau", [-0.27, -0.92], ("grad", "hessian"),
     "Himmelblau near its local maximum"),
    ("rastrigin", "rastrigin", [0.7, -1.3, 0.2], ("grad", "hessian"), "Rastrigin: a cosine ripple"),
    ("ackley", "ackley", [0.7, -1.3], ("grad", "hessian"),
     "Ackley away from its sqrt kink at the origin"),
    ("booth", "booth", [0.5, 2.0], ("grad", "hessian"), "Booth: a quadratic, constant Hessian"),
    ("matyas", "matyas", [1.5, -0.5], ("grad", "hessian"), "Matyas: a quadratic with a cross term"),
    ("three_hump_camel", "three_hump_camel", [1.1, -0.4], ("grad", "hessian"),
     "three-hump camel: a sixth-degree polynomial"),
    ("styblinski_tang", "styblinski_tang", [0.7, -1.3, 0.2, 2.5], ("grad", "hessian"),
     "Styblinski-Tang: separable quartic"),
    ("sphere", "sphere", [1.0, -2.0, 0.5, 3.0, -1.5], ("grad", "hessian"), "sphere: gradient 2x, Hessian 2I"),
    ("trid6", "trid", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], ("grad", "hessian"), "Trid n=6: tridiagonal Hessian"),
]


def _elementary() -> list[Case]:
    cases: list[Case] = []
    for name, expr, x, orders in _UNARY:
        cases += _derivatives(name, expr, x, orders, note=f"{expr} at {x}: orders {', '.join(map(str, orders))}",
                              tags=("elementary",))
    for name, expr, point, ops, note in _COMPOSITIONS:
        cases += expand(name, expr, point, ops, note=note, tags=("elementary",))
    sc = "sinh(x)*cosh(y) - cbrt(x*y)"
    cases += [
        Case("sinh_cosh_cbrt/grad", sc, (0.9, 1.4), "grad",
             note="hyperbolic functions and a cube root of a product", tags=("elementary",)),
        # The numeric backend's Richardson estimate here (5e-14) under-covers its true
        # error (2.4e-12, 1.2e-12 relative): an estimate miss, not a wrong derivative,
        # so numeric alone is judged at 1e-10 relative.
        Case("sinh_cosh_cbrt/jvp", sc, (0.9, 1.4), "jvp", rtol={"numeric": 1e-10},
             note="jvp through sinh, cosh and cbrt; numeric judged at rtol 1e-10 (its estimate under-covers)",
             tags=("elementary",)),
    ]
    return cases


def _optimisation() -> list[Case]:
    cases: list[Case] = []
    for name, fn, point, ops, note in _OPTIMISATION:
        cases += expand(name, _tf(fn), (point,), ops, note=note, tags=("optimisation",))
    cases += expand("rosenbrock_residuals", _tf("rosenbrock_residuals"), ([1.2, 0.8, -0.5, 0.3],), ("jacobian",),
                    note="Rosenbrock n=4 as a residual vector: the Gauss-Newton Jacobian", tags=("optimisation",))
    cases += expand("himmelblau_residuals", _tf("himmelblau_residuals"), ([1.2, 0.8],), ("jacobian", "vjp"),
                    note="Himmelblau's two residuals", tags=("optimisation",))
    return cases


_LOGITS = [0.3, 1.2, -0.5, 2.0, 0.7]
_LN_X = [0.3, 1.2, -0.5, 2.0, 0.7]


def _nn() -> list[Case]:
    from .testfunctions import MLP_PARAMS

    tags = ("nn",)
    return [
        *expand("softmax_xent", _tf("softmax_cross_entropy"), (_LOGITS,), ("grad", "hessian"),
                note="softmax cross-entropy w.r.t. logits, max subtracted (unique max)", tags=tags),
        *expand("logistic_regression", _tf("logistic_regression_loss"), ([0.3, -0.2, 0.1],), ("grad", "hessian"),
                note="mean logistic loss of 3 weights on 8 fixed samples, via logaddexp", tags=tags),
        *expand("mlp_tanh", _tf("mlp_loss"), (MLP_PARAMS.tolist(),), ("grad", "jvp"),
                note="3-4-1 tanh MLP, MSE, w.r.t. its 21 flat parameters", tags=tags),
        *expand("logsumexp", _tf("logsumexp"), (_LOGITS,), ("grad", "hessian"),
                note="log-sum-exp with the max trick: gradient softmax", tags=tags),
        *expand("layer_norm", _tf("layer_norm"), (_LN_X,), ("jacobian", "vjp"),
                note="(x - mean)/std as a vector: its Jacobian", tags=tags),
        *expand("layer_norm_loss", _tf("layer_norm_loss"), (_LN_X,), ("grad",),
                note="a weighted scalar of layer norm's outputs", tags=tags),
        *expand("sigmoid_bce", "softplus(x) - y*x", (0.7, 1.0), ("grad",), argnums=0,
                note="binary cross-entropy of a logit, target 1, via softplus", tags=tags),
    ]


def _kinks() -> list[Case]:
    tags = ("kink",)
    at = [
        Case("abs_at_0", "abs(x)", (0.0,), "derivative", note="|x| at 0: sign(0) = 0 (API 7)", tags=tags),
        Case("relu_where_at_0", "where(x > 0, x, 0)", (0.0,), "derivative",
             note="relu written with where at 0: the selected branch's derivative, 0", tags=tags),
        Case("relu_composite_at_0", "relu(x)", (0.0,), "derivative",
             note="the relu composite (a where) at 0: 0", tags=tags),
        Case("relu_maximum_at_0", "maximum(x, 0)", (0.0,), "derivative",
             note="relu written as maximum(x, 0) at 0: a tie, 1/2", tags=tags),
        Case("maximum_tie", "maximum(x, y)", (1.5, 1.5), "grad",
             note="maximum(x, y) at x == y: 1/2 to each argument", tags=tags),
        Case("minimum_tie", "minimum(x, y) * x", (-0.5, -0.5), "grad",
             note="minimum at a tie inside a product", tags=tags),
        Case("clip_at_hi", "clip(x, -1, 1)", (1.0,), "derivative",
             note="clip at its upper bound: a minimum tie, 1/2", tags=tags),
        Case("clip_at_lo", "clip(x, -1, 1)", (-1.0,), "derivative",
             note="clip at its lower bound: a maximum tie, 1/2", tags=tags),
        Case("abs_product_at_0", "abs(x) * exp(y)", (0.0, 0.3), "grad",
             note="|x| at 0 times a smooth factor", tags=tags),
        Case("sign_times_square", "sign(x) * x**2", (0.0,), "derivative",
             note="sign(x) at 0 has derivative 0; sign(x) x^2 is differentiable with derivative 0", tags=tags),
        Case("vector_max_tie", _tf("vector_max"), ([1.0, 3.0, 3.0, 2.0],), "grad",
             note="np.max of a vector with a tie: the derivative splits among the tied entries", tags=tags),
        Case("vector_max_tie_product", _tf("vector_max_squared"), ([1.0, 3.0, 3.0, 2.0],), "grad",
             note="np.max with a tie times a sum", tags=tags),
    ]
    # A kink 1e-8 away: a default-size stencil would straddle it and average the two slopes;
    # the numeric backend measures the distance to the kink and stays on one side.
    near = [
        Case("abs_near_0", "abs(x)", (1e-8,), "derivative", note="|x| just right of its kink: 1", tags=tags),
        Case("relu_where_near_0", "where(x > 0, x, 0)", (-1e-8,), "derivative",
             note="relu (where) just left of 0: 0", tags=tags),
        Case("relu_maximum_near_0", "maximum(x, 0)", (1e-8,), "derivative",
             note="maximum(x, 0) just right of 0: 1", tags=tags),
        Case("maximum_near_tie", "maximum(x, y)", (1.5 + 1e-8, 1.5), "grad",
             note="maximum(x, y) with x just above y: (1, 0)", tags=tags),
        Case("clip_near_hi", "clip(x, -1, 1)", (1.0 - 1e-8,), "derivative",
             note="clip just inside its upper bound: 1", tags=tags),
        Case("vector_max_near_tie", _tf("vector_max"), ([1.0, 3.0, 3.0 + 1e-8, 2.0],), "grad",
             note="np.max with a near tie: one-hot", tags=tags),
    ]
    return at + near


def _domain() -> list[Case]:
    tags = ("domain",)
    eps = 1e-8
    cases = [
        Case("sqrt_at_1e-10", "sqrt(x)", (1e-10,), "derivative", note="sqrt just right of 0: 1/(2 sqrt x) = 5e4",
             tags=tags),
        Case("sqrt_at_1e-6", "sqrt(x)", (1e-6,), "derivative", order=2, note="sqrt'' near 0", tags=tags),
        Case("log_at_1e-10", "log(x)", (1e-10,), "derivative", note="log just right of 0: 1e10", tags=tags),
        Case("log_at_1e-6", "log(x)", (1e-6,), "derivative", order=2, note="log'' near 0: -1e12", tags=tags),
        Case("arcsin_near_1", "arcsin(x)", (1 - eps,), "derivative", note="arcsin at 1 - 1e-8", tags=tags),
        Case("arcsin_near_-1", "arcsin(x)", (-1 + eps,), "derivative", note="arcsin at -1 + 1e-8", tags=tags),
        Case("arccos_near_1", "arccos(x)", (1 - eps,), "derivative", note="arccos at 1 - 1e-8", tags=tags),
        Case("arccos_near_-1", "arccos(x)", (-1 + eps,), "derivative", note="arccos at -1 + 1e-8", tags=tags),
        Case("arccosh_near_1", "arccosh(x)", (1 + eps,), "derivative", note="arccosh at 1 + 1e-8", tags=tags),
        Case("log1p_near_-1", "log1p(x)", (-1 + 1e-6,), "derivative", note="log1p at -1 + 1e-6", tags=tags),
        Case("arctanh_near_1", "arctanh(x)", (1 - 1e-6,), "derivative", note="arctanh at 1 - 1e-6", tags=tags),
        Case("arctanh_near_-1", "arctanh(x)", (-1 + 1e-6,), "derivative", order=2,
             note="arctanh'' at -1 + 1e-6", tags=tags),
        Case("sqrt_radius_small", "sqrt(x**2 + y**2)", (1e-6, 2e-6), "grad",
             note="a Euclidean norm close to its kink at the origin", tags=tags),
    ]
    return cases


_A2 = [1.0, 0.5, -0.3, 2.0]


def _linalg() -> list[Case]:
    from .testfunctions import LINALG_A

    a = LINALG_A.tolist()
    tags = ("linalg",)
    return [
        *expand("det3", _tf("det3"), (a,), ("grad", "hessian"), note="det of a 3x3: gradient is the cofactor matrix",
                tags=tags),
        Case("inv3_weighted", _tf("inv_weighted"), (a,), "grad", note="sum(W * inv(A)) for a 3x3", tags=tags),
        Case("inv3_flat", _tf("inv_flat"), (a,), "jacobian", note="inv(A) flattened: a 9x9 Jacobian", tags=tags),
        *expand("solve3", _tf("solve3"), (a,), ("jacobian", "vjp"), note="solve(A, b) w.r.t. A", tags=tags),
        Case("slogdet3", _tf("slogdet3"), (a,), "grad", note="log|det A| by slogdet: gradient inv(A)^T", tags=tags),
        Case("cholesky2", _tf("cholesky_spd"), (_A2,), "jacobian", note="cholesky of A A^T + I (2x2)", tags=tags),
        Case("cholesky2_logdet", _tf("cholesky_logdet"), (_A2,), "grad",
             note="log det(A A^T + I) through the Cholesky diagonal", tags=tags),
        Case("frobenius_norm", _tf("frobenius_norm"), (a,), "grad", note="Frobenius norm of a 3x3", tags=tags),
        *expand("vector_norm", _tf("vector_norm"), ([3.0, -1.0, 2.0],), ("grad", "hessian"),
                note="Euclidean norm of a vector", tags=tags),
    ]


_PYTREE_PARAMS = {"W1": [0.3, -0.2, 0.5, 0.1, 0.4, -0.6], "b1": [0.05, -0.1, 0.2], "W2": [0.7, -0.4, 0.3],
                  "b2": [0.1]}


def _families() -> list[Case]:
    """SVD, FFT and pytree arguments: the NumPy that real code writes."""
    from .testfunctions import LINALG_A

    a = LINALG_A.tolist()
    return [
        Case("svd_top", _tf("top_singular_value"), (a,), "grad",
             note="largest singular value of a 3x3: gradient u1 v1^T", tags=("linalg", "svd")),
        *expand("nuclear_norm", _tf("nuclear_norm"), (a,), ("grad", "jvp"),
                note="sum of the singular values of a 3x3 (distinct): gradient U V^T", tags=("linalg", "svd")),
        *expand("fft_power", _tf("weighted_power_spectrum"), ([0.3, -1.1, 0.8, 2.0, -0.5, 0.1, 1.2, -0.7],),
                ("grad", "jvp"), note="sum(w |rfft(x)|^2): a real function through complex values",
                tags=("fft",)),
        *expand("dict_mlp", _tf("dict_mlp_loss"), (_PYTREE_PARAMS,), ("grad", "hessian"),
                note="a 2-3-1 tanh network whose parameters are a dict (a pytree)", tags=("pytree", "nn")),
    ]


def _special() -> list[Case]:
    """Special functions and densities: present when SciPy (the ``scipy`` extra) is installed."""
    import importlib.util

    if importlib.util.find_spec("scipy") is None:
        return []
    tags = ("special",)
    return [
        *expand("special_mix", _tf("special_mix"), ([0.4, -0.7],), ("grad", "hessian"),
                note="erf, gammaln, expit and xlogy of scipy.special on traced values", tags=tags),
        *expand("gauss_loglik", _tf("gauss_loglik"), ([0.2, -0.1],), ("grad", "hessian"),
                note="sum of diffkit.scipy.stats.norm.logpdf in (mean, log sd)", tags=tags),
        Case("student_t_loglik", _tf("student_t_loglik"), ([0.1, -0.2, 1.1],), "grad",
             note="Student-t log-likelihood in (loc, log scale, log df): lgamma, digamma", tags=tags),
        *_derivatives("bessel_mix", _tf("bessel_mix"), 0.8, (1, 2), note="i0(x) exp(-x) + i1(x)", tags=tags),
    ]


def standard() -> list[Case]:
    """The standard suite: about 170 cases over elementary functions, optimisation, nn, kinks, domains, linalg.

    Example:
        >>> cases = standard()
        >>> len({c.id for c in cases}) == len(cases)
        True
        >>> sorted({t for c in cases for t in c.tags} - {"special"})   # special: with SciPy
        ['domain', 'elementary', 'fft', 'kink', 'linalg', 'nn', 'optimisation', 'pytree', 'svd']
    """
    return _elementary() + _optimisation() + _nn() + _kinks() + _domain() + _linalg() + _families() + _special()


# ---------------------------------------------------------------------------
# seeds
# ---------------------------------------------------------------------------

_SEED_DOC = "docs/tutorial.md"


def seeds() -> list[Case]:
    """The worked examples of the seed notes, each citing its note.

    Example:
        >>> [c.id for c in seeds()][:2]
        ['apple', 'apple_and_orange']
    """
    from .testfunctions import SEED_MLP_PARAMS

    tags = ("seed",)
    return [
        Case("apple", "apple_price*apple_count*tax", (2.0, 100.0, 1.1), "grad",
             note=f"{_SEED_DOC} example 1 (notes 002, 004): total 220; gradient (2.2, 110, 200) "
                  "w.r.t. (apple_count, apple_price, tax) sorted", tags=tags),
        Case("apple_and_orange", "(apple_price*apple_count + orange_price*orange_count)*tax",
             (2.0, 100.0, 3.0, 150.0, 1.1), "grad",
             note=f"{_SEED_DOC} example 2 (note 004): total 715; d/d price 2.2 and 3.3, d/d count 110 and 165, "
                  "d/d tax 650 (variables sorted by name)", tags=tags),
        Case("chain_rule", "(x + y)**2", (1.0, 2.0), "grad",
             note=f"{_SEED_DOC} example 3 (notes 001, 002): dz/dx = dz/dy = 2(x + y) = 6", tags=tags),
        Case("chain_rule_neg", "(x + y)**2", (-3.0, 0.5), "grad",
             note=f"{_SEED_DOC} example 3 at another point: 2(x + y) = -5", tags=tags),
        Case("chain_rule_zero", "(x + y)**2", (0.0, 0.0), "grad",
             note=f"{_SEED_DOC} example 3 at the origin: 0", tags=tags),
        Case("affine", "w*x + b", (3.0, -2.0, 5.0), "grad",
             note=f"{_SEED_DOC} example 4 (note 004): f = w x + b at w=-2, x=5, b=3 (sorted b, w, x): "
                  "df/db = 1, df/dw = 5, df/dx = -2", tags=tags),
        Case("sigmoid_derivative", "sigmoid(x)", (0.0,), "derivative",
             note=f"{_SEED_DOC} example 5 (note 004): sigma'(0) = 0.25, its maximum", tags=tags),
        Case("stacked_sigmoids", _tf("stacked_sigmoids"), (0.0,), "derivative",
             note=f"{_SEED_DOC} example 5: 10 stacked sigmoids, derivative <= 0.25**10 (vanishing)", tags=tags),
        *expand("one_neuron", "(0 - sigmoid(w1*2 + w2*5))**2", (0.5, 0.1), ("grad", "hessian"),
                note=f"{_SEED_DOC} example 6 (note 004): loss 0.6684280, dloss/dw1 = 0.4877533, "
                     "dloss/dw2 = 1.2193833", tags=tags),
        *expand("mlp", _tf("seed_mlp_loss"), (SEED_MLP_PARAMS.tolist(),), ("grad", "vjp"),
                note=f"{_SEED_DOC} example 7 (notes 000, 001, 003): 2-3-1 sigmoid MLP, J = 1/(2m) sum (y - y_hat)^2 "
                     "on Iris rows, w.r.t. its 13 parameters", tags=tags),
    ]


# ---------------------------------------------------------------------------
# swell
# ---------------------------------------------------------------------------

SWELL_N = 8
SWELL_X = X0  # 0.3, the swell table's point


def swell() -> list[Case]:
    """The logistic map l_n for n = 1..8 at x = 0.3: first derivatives, and second ones for n <= 5.

    Example:
        >>> [c.id for c in swell()][:3]
        ['logistic_n1/d1', 'logistic_n1/d2', 'logistic_n2/d1']
    """
    cases: list[Case] = []
    for n in range(1, SWELL_N + 1):
        orders = (1, 2) if n <= 5 else (1,)
        cases += _derivatives(f"logistic_n{n}", _tf(f"logistic_n{n}"), SWELL_X, orders,
                              note=f"logistic map l_{n} (l_1 = x, l_(k+1) = 4 l (1 - l)): expression swell",
                              tags=("swell",))
    return cases


SUITES: dict[str, Callable[[], list[Case]]] = {"standard": standard, "seeds": seeds, "swell": swell}
"""The built-in suites by name."""
