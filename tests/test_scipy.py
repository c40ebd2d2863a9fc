"""SciPy's special functions on traced values (the ``scipy`` extra, diffkit.scipy_special).

Each derivative is checked against mpmath: ``mpmath.diff`` of mpmath's own
function (erf, loggamma, besseli ...) at 30 digits, on the forward, reverse,
symbolic and numeric backends. The conventions (xlogy at x = 0, i1 at 0) against
a hand derivation.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

sc = pytest.importorskip("scipy.special")
mpmath = pytest.importorskip("mpmath")

import diffkit as dk

ROOT = pathlib.Path(dk.__file__).resolve().parent.parent
mp = mpmath.mp


def _logit(x):
    return mpmath.log(x / (1 - x))


# name: (scipy function of the differentiated argument's position, mpmath function, point, argnum)
CASES = {
    "erf": (sc.erf, mpmath.erf, (0.7,), 0),
    "erfc": (sc.erfc, mpmath.erfc, (-0.4,), 0),
    "erfinv": (sc.erfinv, mpmath.erfinv, (0.6,), 0),
    "erfcinv": (sc.erfcinv, lambda x: mpmath.erfinv(1 - x), (0.3,), 0),
    "gammaln": (sc.gammaln, mpmath.loggamma, (2.7,), 0),
    "gammaln-small": (sc.gammaln, mpmath.loggamma, (0.3,), 0),
    "digamma": (sc.digamma, mpmath.digamma, (1.6,), 0),
    "psi": (sc.psi, mpmath.digamma, (4.2,), 0),
    "gamma": (sc.gamma, mpmath.gamma, (3.3,), 0),
    "beta-a": (sc.beta, mpmath.beta, (1.5, 2.5), 0),
    "beta-b": (sc.beta, mpmath.beta, (1.5, 2.5), 1),
    "betaln-a": (sc.betaln, lambda a, b: mpmath.log(mpmath.beta(a, b)), (0.8, 3.0), 0),
    "betaln-b": (sc.betaln, lambda a, b: mpmath.log(mpmath.beta(a, b)), (0.8, 3.0), 1),
    "expit": (sc.expit, lambda x: 1 / (1 + mpmath.exp(-x)), (-1.3,), 0),
    "logit": (sc.logit, _logit, (0.35,), 0),
    "xlogy-x": (sc.xlogy, lambda x, y: x * mpmath.log(y), (1.7, 2.2), 0),
    "xlogy-y": (sc.xlogy, lambda x, y: x * mpmath.log(y), (1.7, 2.2), 1),
    "xlog1py-x": (sc.xlog1py, lambda x, y: x * mpmath.log1p(y), (-0.6, 0.4), 0),
    "xlog1py-y": (sc.xlog1py, lambda x, y: x * mpmath.log1p(y), (-0.6, 0.4), 1),
    "i0": (sc.i0, lambda x: mpmath.besseli(0, x), (1.3,), 0),
    "i1": (sc.i1, lambda x: mpmath.besseli(1, x), (-0.9,), 0),
    "jn": (lambda x: sc.jn(2, x), lambda x: mpmath.besselj(2, x), (1.9,), 0),
    "jv": (lambda x: sc.jv(0.5, x), lambda x: mpmath.besselj(0.5, x), (2.3,), 0),
    "yn": (lambda x: sc.yn(1, x), lambda x: mpmath.bessely(1, x), (1.1,), 0),
    "iv": (lambda x: sc.iv(1.5, x), lambda x: mpmath.besseli(1.5, x), (0.8,), 0),
    "ive": (lambda x: sc.ive(1, x), lambda x: mpmath.besseli(1, x) * mpmath.exp(-abs(x)), (1.4,), 0),
    "zeta": (lambda q: sc.zeta(3.0, q), lambda q: mpmath.zeta(3, q), (1.7,), 0),
    "gammainc": (lambda x: sc.gammainc(2.5, x), lambda x: mpmath.gammainc(2.5, 0, x, regularized=True), (1.3,), 0),
    "gammaincc": (lambda x: sc.gammaincc(0.7, x), lambda x: mpmath.gammainc(0.7, x, mpmath.inf, regularized=True),
                  (2.1,), 0),
    "betainc": (lambda x: sc.betainc(2.5, 1.5, x), lambda x: mpmath.betainc(2.5, 1.5, 0, x, regularized=True),
                (0.3,), 0),
}


def _reference(name: str) -> float:
    _, mpf, point, argnum = CASES[name]
    with mpmath.workdps(30):
        args = [mpmath.mpf(p) for p in point]

        def g(t):
            a = list(args)
            a[argnum] = t
            return mpf(*a)

        return float(mpmath.diff(g, args[argnum]))


@pytest.mark.parametrize("backend", ["forward", "reverse", "symbolic"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_first_derivative_matches_mpmath(name, backend):
    f, _, point, argnum = CASES[name]
    got = dk.grad(f, argnums=argnum, backend=backend)(*point)
    np.testing.assert_allclose(float(got), _reference(name), rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("name", sorted(CASES))
def test_numeric_derivative_matches_mpmath(name):
    f, _, point, argnum = CASES[name]
    got = dk.grad(f, argnums=argnum, backend="numeric")(*point)
    np.testing.assert_allclose(float(got), _reference(name), rtol=1e-7, atol=1e-9)


SECOND = {  # second derivatives: the rules are traced in turn
    "erf": (sc.erf, mpmath.erf, 0.4),
    "erfinv": (sc.erfinv, mpmath.erfinv, -0.5),
    "gammaln": (sc.gammaln, mpmath.loggamma, 1.8),
    "gamma": (sc.gamma, mpmath.gamma, 2.2),
    "expit": (sc.expit, lambda x: 1 / (1 + mpmath.exp(-x)), 0.6),
    "i1": (sc.i1, lambda x: mpmath.besseli(1, x), 0.9),
    "jn": (lambda x: sc.jn(1, x), lambda x: mpmath.besselj(1, x), 2.5),
}


@pytest.mark.parametrize("backend", ["forward", "reverse", "symbolic"])
@pytest.mark.parametrize("name", sorted(SECOND))
def test_second_derivative_matches_mpmath(name, backend):
    f, mpf, x = SECOND[name]
    got = dk.hessian(f, backend=backend)(x)
    with mpmath.workdps(30):
        want = float(mpmath.diff(mpf, mpmath.mpf(x), 2))
    np.testing.assert_allclose(float(got), want, rtol=1e-9)


@pytest.mark.parametrize("backend", ["forward", "reverse", "compiled"])
def test_arrays_and_broadcasting(backend):
    x = np.array([0.2, 0.9, 1.7])
    g = dk.grad(lambda x: np.sum(sc.gammaln(x) * sc.erf(x)), backend=backend)(x)
    want = sc.digamma(x) * sc.erf(x) + sc.gammaln(x) * 2 / np.sqrt(np.pi) * np.exp(-x * x)
    np.testing.assert_allclose(g, want, rtol=1e-13)
    gy = dk.grad(lambda y: np.sum(sc.xlogy(np.array([[1.0], [2.0]]), y)), backend=backend)(x)
    np.testing.assert_allclose(gy, 3.0 / x, rtol=1e-14)


def test_polygamma_and_zeta_functions_from_diffkit_scipy_special():
    from diffkit.scipy_special import polygamma, zeta

    for backend in ("forward", "reverse", "symbolic"):
        g = dk.grad(lambda x: polygamma(2, x), backend=backend)(1.3)
        np.testing.assert_allclose(float(g), sc.polygamma(3, 1.3), rtol=1e-12)
        h = dk.grad(lambda q: zeta(2.5, q), backend=backend)(0.7)
        np.testing.assert_allclose(float(h), -2.5 * sc.zeta(3.5, 0.7), rtol=1e-12)
    with mpmath.workdps(30):
        want = float(mpmath.diff(lambda t: mpmath.polygamma(2, t), mpmath.mpf(1.3)))
    np.testing.assert_allclose(float(dk.grad(lambda x: polygamma(2, x))(1.3)), want, rtol=1e-11)


@pytest.mark.parametrize("backend", ["forward", "reverse", "symbolic"])
def test_xlogy_convention_at_x_zero(backend):
    # xlogy(0, y) = 0 for every y: d/dy is 0 there (also at y = 0); d/dx is log(y)
    gy = dk.grad(lambda y: sc.xlogy(0.0, y), backend=backend)(0.0)
    assert float(gy) == 0.0
    gx = dk.grad(lambda x: sc.xlogy(x, 2.0), backend=backend)(0.0)
    assert float(gx) == pytest.approx(np.log(2.0), rel=1e-15)
    gy1 = dk.grad(lambda y: sc.xlog1py(0.0, y), backend="reverse")(-1.0)
    assert float(gy1) == 0.0


@pytest.mark.parametrize("backend", ["forward", "reverse", "symbolic"])
def test_i1_derivative_at_zero_is_its_limit(backend):
    assert float(dk.grad(sc.i1, backend=backend)(0.0)) == pytest.approx(0.5, rel=1e-15)


@pytest.mark.parametrize("backend", ["forward", "reverse", "compiled"])
def test_unsupported_scipy_function_names_scipy(backend):
    with pytest.raises(dk.UnsupportedOperation) as info:
        dk.grad(lambda x: sc.struve(1.0, x), backend=backend)(0.5)
    msg = str(info.value)
    assert "scipy.special.struve is not supported by diffkit" in msg and "numpy." not in msg
    assert "erf" in msg and "gammaln" in msg  # lists what is supported


def test_scipy_entries_read_only_what_saves_declares():
    from diffkit.backends.base import Dropped
    from diffkit.core.primitive import OUT
    from diffkit.scipy_special import SCIPY_PRIMITIVES

    rng = np.random.default_rng(3)
    for name, prim in SCIPY_PRIMITIVES.items():
        assert len(prim.jvp) == len(prim.vjp) == prim.nargs == len(prim.saves) == len(prim.domain), name
        args = [rng.uniform(max(lo, -2.0) + 0.1, min(hi, 3.0) - 0.1, size=3) for lo, hi in prim.domain]
        if name in ("polygamma", "yv", "jv", "iv", "ive", "zeta"):
            args[0] = np.array([1.0, 2.0, 3.0])  # integer orders
        out = prim.numpy(*args)
        ct = np.ones_like(out)
        for j, saved in enumerate(prim.saves):
            if j in prim.nondiff_args:
                assert prim.jvp[j] is None and prim.vjp[j] is None
                continue
            full = prim.vjp_rule(j)(ct, out, *args)
            kept = [a if k in saved else Dropped(np.shape(a)) for k, a in enumerate(args)]
            o = out if OUT in saved else Dropped(np.shape(out))
            np.testing.assert_allclose(prim.vjp_rule(j)(ct, o, *kept), full, rtol=1e-15, err_msg=name)
            assert np.all(np.isfinite(full)), name


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)


def test_import_diffkit_does_not_import_scipy_and_the_entries_load_on_first_use():
    code = """
import sys
import diffkit as dk
assert "scipy" not in sys.modules, "import diffkit imported scipy"
import numpy as np
dk.grad(lambda x: np.sin(x))(0.3)
assert "scipy" not in sys.modules and "diffkit.scipy_special" not in sys.modules
import scipy.special as sc
assert "diffkit.scipy_special" not in sys.modules   # loaded when a SciPy ufunc reaches the dispatch
g = dk.grad(sc.erf)(0.0)
assert abs(float(g) - 2 / np.pi ** 0.5) < 1e-15
assert "diffkit.scipy_special" in sys.modules
print("ok")
"""
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


# ---------------------------------------------------------------------------
# diffkit.scipy: logsumexp and scipy.stats' distributions on the table's primitives
# ---------------------------------------------------------------------------

st = pytest.importorskip("scipy.stats")
BACKENDS4 = ["forward", "reverse", "symbolic", "numeric"]


def _tol(backend):
    return {"rtol": 1e-6, "atol": 1e-8} if backend == "numeric" else {"rtol": 1e-11, "atol": 1e-13}


@pytest.mark.parametrize("backend", ["forward", "reverse", "numeric"])
def test_logsumexp_gradient_is_the_softmax(backend):
    from diffkit.scipy import logsumexp

    x = np.array([[0.3, -1.2, 2.0], [1000.0, 999.0, 998.0]])
    v, g = dk.value_and_grad(lambda a: np.sum(logsumexp(a, axis=1)), backend=backend)(x)
    np.testing.assert_allclose(float(v), np.sum(sc.logsumexp(x, axis=1)), rtol=1e-15)
    soft = np.exp(x - sc.logsumexp(x, axis=1, keepdims=True))
    np.testing.assert_allclose(g, soft, **_tol(backend))
    b = np.array([0.5, 2.0, 1.0])
    gb = dk.grad(lambda bb: logsumexp(x[0], b=bb), backend=backend)(b)
    np.testing.assert_allclose(gb, np.exp(x[0] - sc.logsumexp(x[0], b=b)), **_tol(backend))
    k = dk.grad(lambda a: np.sum(logsumexp(a, axis=0, keepdims=True) ** 2), backend=backend)(x)
    assert k.shape == x.shape


def test_logsumexp_symbolic_and_plain_values():
    from diffkit.scipy import logsumexp

    x = np.array([0.3, -1.2, 2.0])
    g = dk.grad(logsumexp, backend="symbolic")(x)
    np.testing.assert_allclose(g, np.exp(x - sc.logsumexp(x)), rtol=1e-13)
    assert logsumexp(x) == sc.logsumexp(x)
    with pytest.raises(dk.UnsupportedOperation):
        dk.grad(lambda a: logsumexp(a, return_sign=True)[0])(x)


def _mp_logpdf(name):
    lg, log = mpmath.loggamma, mpmath.log
    return {
        "norm": lambda x, loc, s: -((x - loc) / s) ** 2 / 2 - log(s) - log(2 * mpmath.pi) / 2,
        "t": lambda x, df, loc, s: (lg((df + 1) / 2) - lg(df / 2) - log(df * mpmath.pi) / 2 - log(s)
                                    - (df + 1) / 2 * log(1 + ((x - loc) / s) ** 2 / df)),
        "gamma": lambda x, a, loc, s: (a - 1) * log((x - loc) / s) - (x - loc) / s - lg(a) - log(s),
        "beta": lambda x, a, b, loc, s: ((a - 1) * log((x - loc) / s) + (b - 1) * log(1 - (x - loc) / s)
                                         + lg(a + b) - lg(a) - lg(b) - log(s)),
    }[name]


LOGPDF_POINTS = {
    "norm": (0.4, -0.3, 1.7),
    "t": (0.9, 3.5, 0.2, 1.3),
    "gamma": (2.1, 2.5, 0.3, 1.4),
    "beta": (0.45, 2.5, 1.5, 0.1, 0.8),
}


@pytest.mark.parametrize("backend", BACKENDS4)
@pytest.mark.parametrize("dist", sorted(LOGPDF_POINTS))
def test_logpdf_in_every_continuous_argument_matches_mpmath(dist, backend):
    from diffkit import scipy as dks

    point = LOGPDF_POINTS[dist]
    f = getattr(dks.stats, dist).logpdf
    np.testing.assert_allclose(float(f(*point)), getattr(st, dist).logpdf(*point), rtol=1e-13)
    args = tuple(range(len(point)))
    got = dk.grad(f, argnums=args, backend=backend)(*point)
    mpf = _mp_logpdf(dist)
    with mpmath.workdps(30):
        mp_point = [mpmath.mpf(p) for p in point]
        want = [float(mpmath.diff(mpf, mp_point, tuple(int(i == j) for i in args))) for j in args]
    np.testing.assert_allclose(np.array(got, dtype=float), want, **_tol(backend))
    pdf = dk.grad(getattr(dks.stats, dist).pdf, backend=backend)(*point)
    np.testing.assert_allclose(float(pdf), want[0] * getattr(st, dist).pdf(*point), **_tol(backend))


CDF_POINTS = {  # (x, shape parameters..., loc, scale)
    "norm": ((0.4, -0.3, 1.7), 0),
    "t": ((0.9, 3.5, 0.2, 1.3), 1),
    "gamma": ((2.1, 2.5, 0.3, 1.4), 1),
    "beta": ((0.45, 2.5, 1.5, 0.1, 0.8), 2),
}


@pytest.mark.parametrize("backend", BACKENDS4)
@pytest.mark.parametrize("dist", sorted(CDF_POINTS))
def test_cdf_in_x_loc_scale_is_the_density(dist, backend):
    from diffkit import scipy as dks

    point, nshape = CDF_POINTS[dist]
    f = getattr(dks.stats, dist).cdf
    np.testing.assert_allclose(float(f(*point)), getattr(st, dist).cdf(*point), rtol=1e-13)
    loc_i, scale_i = 1 + nshape, 2 + nshape
    gx, gloc, gscale = dk.grad(f, argnums=(0, loc_i, scale_i), backend=backend)(*point)
    pdf = getattr(st, dist).pdf(*point)
    z = (point[0] - point[loc_i]) / point[scale_i]
    np.testing.assert_allclose([float(gx), float(gloc), float(gscale)], [pdf, -pdf, -pdf * z], **_tol(backend))


def test_cdf_shape_parameters_are_not_differentiated():
    from diffkit import scipy as dks

    with pytest.raises(dk.UnsupportedOperation, match="not differentiable in a"):
        dk.grad(lambda a: dks.stats.gamma.cdf(1.0, a))(2.0)


@pytest.mark.parametrize("backend", ["forward", "reverse", "symbolic"])
def test_norm_logcdf_sf_and_poisson(backend):
    from diffkit import scipy as dks

    g = dk.grad(dks.stats.norm.logcdf, backend=backend)(-0.7)
    np.testing.assert_allclose(float(g), st.norm.pdf(-0.7) / st.norm.cdf(-0.7), rtol=1e-12)
    s = dk.grad(dks.stats.norm.sf, backend=backend)(0.2)
    np.testing.assert_allclose(float(s), -st.norm.pdf(0.2), rtol=1e-12)
    k = np.array([0, 3, 7])
    mu = np.array([0.5, 2.5, 6.0])
    np.testing.assert_allclose(dks.stats.poisson.logpmf(k, mu), st.poisson.logpmf(k, mu), rtol=1e-13)
    if backend != "symbolic":  # arrays of points: the symbolic backend's cost grows with them
        gm = dk.grad(lambda m: np.sum(dks.stats.poisson.logpmf(k, m)), backend=backend)(mu)
        np.testing.assert_allclose(gm, k / mu - 1.0, rtol=1e-13)
        gp = dk.grad(lambda m: np.sum(dks.stats.poisson.pmf(k, m)), backend=backend)(mu)
        np.testing.assert_allclose(gp, st.poisson.pmf(k, mu) * (k / mu - 1.0), rtol=1e-12)


@pytest.mark.parametrize("backend", ["forward", "reverse", "compiled"])
def test_multivariate_normal_logpdf(backend):
    from diffkit import scipy as dks

    rng = np.random.default_rng(5)
    a = rng.normal(size=(3, 3))
    cov = a @ a.T + 3.0 * np.eye(3)
    mean = rng.normal(size=3)
    xs = rng.normal(size=(4, 3))
    np.testing.assert_allclose(dks.stats.multivariate_normal.logpdf(xs, mean, cov),
                               st.multivariate_normal.logpdf(xs, mean, cov), rtol=1e-12)
    x = xs[0]
    np.testing.assert_allclose(dks.stats.multivariate_normal.logpdf(x, mean, cov),
                               st.multivariate_normal.logpdf(x, mean, cov), rtol=1e-12)
    gx, gm, gc = dk.grad(dks.stats.multivariate_normal.logpdf, argnums=(0, 1, 2), backend=backend)(x, mean, cov)
    inv = np.linalg.inv(cov)
    r = x - mean
    np.testing.assert_allclose(gx, -inv @ r, rtol=1e-11)
    np.testing.assert_allclose(gm, inv @ r, rtol=1e-11)
    np.testing.assert_allclose(gc, 0.5 * (inv @ np.outer(r, r) @ inv - inv), rtol=1e-10, atol=1e-13)
    gs = dk.grad(lambda X: np.sum(dks.stats.multivariate_normal.logpdf(X, mean, cov)), backend=backend)(xs)
    np.testing.assert_allclose(gs, -(xs - mean) @ inv, rtol=1e-11)


@pytest.mark.parametrize("backend", ["forward", "reverse", "symbolic"])
def test_dirichlet_logpdf(backend):
    from diffkit import scipy as dks

    x = np.array([0.2, 0.5, 0.3])
    alpha = np.array([1.5, 2.0, 0.7])
    np.testing.assert_allclose(dks.stats.dirichlet.logpdf(x, alpha), st.dirichlet.logpdf(x, alpha), rtol=1e-13)
    gx, ga = dk.grad(dks.stats.dirichlet.logpdf, argnums=(0, 1), backend=backend)(x, alpha)
    np.testing.assert_allclose(gx, (alpha - 1.0) / x, rtol=1e-12)
    np.testing.assert_allclose(ga, np.log(x) + sc.digamma(alpha.sum()) - sc.digamma(alpha), rtol=1e-12)


def test_scipy_entries_do_not_change_what_expression_strings_call():
    # expression strings and diffkit.strategies call the table's entries by their NumPy
    # names: no SciPy entry may take one (np.i0 exists; SciPy's i0 is "bessel_i0")
    from diffkit.core.function import expression_functions
    from diffkit.scipy_special import SCIPY_PRIMITIVES

    for name, prim in SCIPY_PRIMITIVES.items():
        for n in (name,) + prim.aliases:
            assert not hasattr(np, n), n
    assert not set(SCIPY_PRIMITIVES) & set(expression_functions())
    assert dk.grad(sc.i0)(0.5) == pytest.approx(sc.i1(0.5), rel=1e-15)


def test_diffkit_scipy_special_namespace():
    from diffkit import scipy as dks

    assert dks.special.logsumexp is dks.logsumexp
    g = dk.grad(lambda x: dks.special.polygamma(1, x) + dks.special.zeta(2.0, x), backend="forward")(1.5)
    np.testing.assert_allclose(float(g), sc.polygamma(2, 1.5) - 2.0 * sc.zeta(3.0, 1.5), rtol=1e-13)


@pytest.mark.parametrize("name", ["erf-gammaln", "bessel", "erfinv", "gammainc"])
def test_crosscheck_agrees_with_the_50_digit_reference(name):
    f, x = {
        "erf-gammaln": (lambda x: sc.erf(x) * sc.gammaln(x), 1.3),
        "bessel": (lambda x: sc.i1(x) + sc.jv(1.0, x), 0.7),
        "erfinv": (sc.erfinv, 0.3),
        "gammainc": (lambda x: sc.gammainc(2.0, x), 0.9),
    }[name]
    report = dk.crosscheck(f, (x,), "derivative")
    assert report.ok, str(report)
