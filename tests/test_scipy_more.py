"""Coverage of HIPS autograd's numpy.fft, scipy.special, scipy.stats and scipy.signal wrappers.

``INVENTORY`` lists, for every function those wrappers differentiate (and the
arguments they differentiate it in), a real function of it and a point; the
forward and reverse gradients must agree with central differences of the same
function on plain arrays (and so must the symbolic and numeric backends').
``REFUSED`` lists the derivatives diffkit does not
have (a shape parameter or an order without a closed form): each raises
``dk.UnsupportedOperation`` naming the function and the parameter, rather than
returning a number. The new entries (gammasgn, rgamma, j0, j1, y0, y1,
multigammaln, hfft, ihfft, the new distributions' functions) are checked
besides against mpmath, SciPy's values and hand derivations, on the symbolic
and numeric backends too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

sc = pytest.importorskip("scipy.special")
st = pytest.importorskip("scipy.stats")
mpmath = pytest.importorskip("mpmath")

import diffkit as dk


class _DiffkitScipy:
    """``diffkit.scipy``, imported on first use: importing it adds SciPy's entries to the
    table, which must not happen while pytest collects (other modules parametrise over
    the table then)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # pytest's collection asks for __test__, pytestmark ...
            raise AttributeError(name)
        import diffkit.scipy

        return getattr(diffkit.scipy, name)


dks = _DiffkitScipy()


def _d(path: str) -> Callable[..., Any]:
    """``diffkit.scipy``'s function at ``path`` (``"stats.norm.logpdf"``), looked up when called."""
    def f(*args: Any, **kwargs: Any) -> Any:
        obj: Any = dks
        for part in path.split("."):
            obj = getattr(obj, part)
        return obj(*args, **kwargs)

    f.__name__ = path.replace(".", "_")
    return f


multigammaln = _d("special.multigammaln")

RNG = np.random.default_rng(7)


def central(f: Callable[..., Any], args: tuple[Any, ...], argnum: int, h: float = 1e-5) -> np.ndarray:
    """Central differences of the real-valued ``f`` in ``args[argnum]``, elementwise."""
    x = np.array(args[argnum], dtype=float)
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        step = h * max(1.0, abs(float(x[idx])))
        xp, xm = x.copy(), x.copy()
        xp[idx] += step
        xm[idx] -= step
        fp = f(*args[:argnum], xp, *args[argnum + 1:])
        fm = f(*args[:argnum], xm, *args[argnum + 1:])
        g[idx] = (float(fp) - float(fm)) / (2.0 * step)
    return g


def weights(shape: tuple[int, ...], phase: float = 0.0) -> np.ndarray:
    return np.cos(1.3 * np.arange(int(np.prod(shape))) + phase).reshape(shape) + 0.5


def real_of(z: Any) -> Any:
    """A real scalar of an array, complex or not: a weighted sum of its real and imaginary parts."""
    shape = np.shape(z)
    return np.sum(np.real(z) * weights(shape)) + np.sum(np.imag(z) * weights(shape, 0.7))


X8 = RNG.normal(size=8)
X7 = RNG.normal(size=7)
M46 = RNG.normal(size=(4, 6))
T345 = RNG.normal(size=(3, 4, 5))
COV = np.array([[2.0, 0.3, 0.1], [0.3, 1.5, -0.2], [0.1, -0.2, 1.0]])
MEAN = np.array([0.2, -0.4, 0.5])


def _c(x: Any) -> Any:
    """A complex array from a real one: first half real parts, second half imaginary."""
    n = np.shape(x)[-1] // 2
    return x[..., :n] + 1j * x[..., n:]


# name: (f, args, argnums); f returns a real scalar
INVENTORY: dict[str, tuple[Callable[..., Any], tuple[Any, ...], tuple[int, ...]]] = {
    # numpy.fft
    "fft.fft": (lambda x: real_of(np.fft.fft(x)), (X8,), (0,)),
    "fft.fft-n-ortho": (lambda x: real_of(np.fft.fft(x, 11, norm="ortho")), (X8,), (0,)),
    "fft.ifft": (lambda x: real_of(np.fft.ifft(_c(x))), (X8,), (0,)),
    "fft.ifft-forward": (lambda x: real_of(np.fft.ifft(x, 5, norm="forward")), (X8,), (0,)),
    "fft.fft2": (lambda x: real_of(np.fft.fft2(x)), (M46,), (0,)),
    "fft.fft2-s-axes-norm": (lambda x: real_of(np.fft.fft2(x, s=(5, 3), axes=(1, 0), norm="ortho")), (M46,), (0,)),
    "fft.ifft2": (lambda x: real_of(np.fft.ifft2(x * (1 + 0.5j))), (M46,), (0,)),
    "fft.fftn": (lambda x: real_of(np.fft.fftn(x, axes=(0, 2))), (T345,), (0,)),
    "fft.ifftn": (lambda x: real_of(np.fft.ifftn(x, s=(2, 6), axes=(1, 2), norm="forward")), (T345,), (0,)),
    "fft.rfft": (lambda x: real_of(np.fft.rfft(x)), (X8,), (0,)),
    "fft.rfft-odd": (lambda x: real_of(np.fft.rfft(x, norm="ortho")), (X7,), (0,)),
    "fft.irfft": (lambda x: real_of(np.fft.irfft(x[:5] + 1j * x[3:])), (X8,), (0,)),
    "fft.irfft-n-odd": (lambda x: real_of(np.fft.irfft(_c(x), n=7, norm="forward")), (X8,), (0,)),
    "fft.rfft2": (lambda x: real_of(np.fft.rfft2(x)), (M46,), (0,)),
    "fft.rfft2-s-norm": (lambda x: real_of(np.fft.rfft2(x, s=(3, 5), norm="ortho")), (M46,), (0,)),
    "fft.irfft2": (lambda x: real_of(np.fft.irfft2(x * (1 - 0.5j))), (M46,), (0,)),
    "fft.rfftn": (lambda x: real_of(np.fft.rfftn(x)), (T345,), (0,)),
    "fft.irfftn": (lambda x: real_of(np.fft.irfftn(x + 0.3j, s=(4, 7), axes=(0, 2))), (T345,), (0,)),
    "fft.fftshift": (lambda x: real_of(np.fft.fftshift(x)), (M46,), (0,)),
    "fft.ifftshift": (lambda x: real_of(np.fft.ifftshift(x, axes=1)), (M46,), (0,)),
    "fft.hfft": (lambda x: real_of(np.fft.hfft(_c(x))), (X8,), (0,)),
    "fft.hfft-n-ortho": (lambda x: real_of(np.fft.hfft(x[:5] + 1j * x[3:], n=9, norm="ortho")), (X8,), (0,)),
    "fft.hfft-forward-axis": (lambda x: real_of(np.fft.hfft(x, axis=0, norm="forward")), (M46,), (0,)),
    "fft.ihfft": (lambda x: real_of(np.fft.ihfft(x)), (X8,), (0,)),
    "fft.ihfft-n-forward": (lambda x: real_of(np.fft.ihfft(x, n=5, norm="forward")), (X7,), (0,)),
    # scipy.special
    "special.beta": (sc.beta, (1.5, 2.5), (0, 1)),
    "special.betainc": (lambda x: sc.betainc(2.5, 1.5, x), (0.3,), (0,)),
    "special.betaln": (sc.betaln, (0.8, 3.0), (0, 1)),
    "special.polygamma": (lambda x: dks.special.polygamma(2, x), (1.3,), (0,)),
    "special.psi": (sc.psi, (1.6,), (0,)),
    "special.digamma": (sc.digamma, (4.2,), (0,)),
    "special.gamma": (sc.gamma, (3.3,), (0,)),
    "special.gammaln": (sc.gammaln, (2.7,), (0,)),
    "special.gammainc": (lambda x: sc.gammainc(2.5, x), (1.3,), (0,)),
    "special.gammaincc": (lambda x: sc.gammaincc(0.7, x), (2.1,), (0,)),
    "special.gammasgn": (lambda x: np.sum(sc.gammasgn(x) * x * x), (np.array([1.5, -0.5, -1.5, -2.3]),), (0,)),
    "special.rgamma": (sc.rgamma, (1.7,), (0,)),
    "special.rgamma-negative": (sc.rgamma, (-1.4,), (0,)),
    "special.multigammaln": (lambda a: multigammaln(a, 3), (2.2,), (0,)),
    "special.j0": (sc.j0, (1.3,), (0,)),
    "special.y0": (sc.y0, (1.3,), (0,)),
    "special.j1": (sc.j1, (-2.1,), (0,)),
    "special.y1": (sc.y1, (0.7,), (0,)),
    "special.jn": (lambda x: sc.jn(2, x), (1.9,), (0,)),
    "special.yn": (lambda x: sc.yn(3, x), (2.4,), (0,)),
    "special.i0": (sc.i0, (1.3,), (0,)),
    "special.i1": (sc.i1, (-0.9,), (0,)),
    "special.iv": (lambda x: sc.iv(1.5, x), (0.8,), (0,)),
    "special.ive": (lambda x: sc.ive(1, x), (1.4,), (0,)),
    "special.erf": (sc.erf, (0.7,), (0,)),
    "special.erfc": (sc.erfc, (-0.4,), (0,)),
    "special.erfinv": (sc.erfinv, (0.6,), (0,)),
    "special.erfcinv": (sc.erfcinv, (0.3,), (0,)),
    "special.logit": (sc.logit, (0.35,), (0,)),
    "special.expit": (sc.expit, (-1.3,), (0,)),
    "special.log_ndtr": (sc.log_ndtr, (-2.3,), (0,)),
    "special.logsumexp": (lambda x: dks.logsumexp(x, axis=1)[1], (M46,), (0,)),
    "special.logsumexp-b": (lambda x, b: dks.logsumexp(x, b=b), (X8[:3], np.array([0.5, 1.0, 2.0])), (0, 1)),
    # scipy.signal
    "signal.convolve": (lambda a, b: real_of(dks.signal.convolve(a, b, mode="same")), (M46, M46[:2, :3]), (0, 1)),
    "signal.correlate": (lambda a, b: real_of(dks.signal.correlate(a, b, mode="valid")), (X8, X7[:3]), (0, 1)),
    # scipy.stats
    "stats.beta.cdf": (_d("stats.beta.cdf"), (0.45, 2.5, 1.5), (0,)),
    "stats.beta.logpdf": (_d("stats.beta.logpdf"), (0.45, 2.5, 1.5), (0, 1, 2)),
    "stats.beta.pdf": (_d("stats.beta.pdf"), (0.45, 2.5, 1.5), (0, 1, 2)),
    "stats.chi2.cdf": (_d("stats.chi2.cdf"), (1.3, 2.5), (0,)),
    "stats.chi2.logpdf": (_d("stats.chi2.logpdf"), (1.3, 2.5), (0, 1)),
    "stats.chi2.pdf": (_d("stats.chi2.pdf"), (1.3, 3.0), (0, 1)),
    "stats.dirichlet.logpdf": (_d("stats.dirichlet.logpdf"), (np.array([0.2, 0.3, 0.5]), np.array([1.5, 2.0, 0.7])),
                               (0, 1)),
    "stats.dirichlet.pdf": (_d("stats.dirichlet.pdf"), (np.array([0.2, 0.3, 0.5]), np.array([1.5, 2.0, 0.7])), (0, 1)),
    "stats.gamma.cdf": (_d("stats.gamma.cdf"), (2.1, 2.5), (0,)),
    "stats.gamma.logpdf": (_d("stats.gamma.logpdf"), (2.1, 2.5), (0, 1)),
    "stats.gamma.pdf": (_d("stats.gamma.pdf"), (2.1, 2.5), (0, 1)),
    "stats.multivariate_normal.logpdf": (_d("stats.multivariate_normal.logpdf"), (np.array([0.1, 0.3, -0.2]), MEAN, COV),
                                         (0, 1, 2)),
    "stats.multivariate_normal.pdf": (_d("stats.multivariate_normal.pdf"), (np.array([0.1, 0.3, -0.2]), MEAN, COV),
                                      (0, 1, 2)),
    "stats.multivariate_normal.entropy": (lambda c: dks.stats.multivariate_normal.entropy(MEAN, c), (COV,), (0,)),
    "stats.norm.pdf": (_d("stats.norm.pdf"), (0.4, -0.3, 1.7), (0, 1, 2)),
    "stats.norm.cdf": (_d("stats.norm.cdf"), (0.4, -0.3, 1.7), (0, 1, 2)),
    "stats.norm.sf": (_d("stats.norm.sf"), (0.4, -0.3, 1.7), (0, 1, 2)),
    "stats.norm.logpdf": (_d("stats.norm.logpdf"), (0.4, -0.3, 1.7), (0, 1, 2)),
    "stats.norm.logcdf": (_d("stats.norm.logcdf"), (0.4, -0.3, 1.7), (0, 1, 2)),
    "stats.norm.logsf": (_d("stats.norm.logsf"), (0.4, -0.3, 1.7), (0, 1, 2)),
    "stats.poisson.cdf": (lambda mu: dks.stats.poisson.cdf(3.0, mu), (2.2,), (0,)),
    "stats.poisson.logpmf": (lambda mu: dks.stats.poisson.logpmf(3, mu), (2.2,), (0,)),
    "stats.poisson.pmf": (lambda mu: dks.stats.poisson.pmf(3, mu), (2.2,), (0,)),
    "stats.t.pdf": (_d("stats.t.pdf"), (0.9, 3.5, 0.2, 1.3), (0, 1, 2, 3)),
    "stats.t.cdf": (_d("stats.t.cdf"), (0.9, 3.5, 0.2, 1.3), (0, 2, 3)),
    "stats.t.logpdf": (_d("stats.t.logpdf"), (0.9, 3.5, 0.2, 1.3), (0, 1, 2, 3)),
    "stats.t.logcdf": (_d("stats.t.logcdf"), (0.9, 3.5, 0.2, 1.3), (0, 2, 3)),
}


SYMBOLIC_SLOW = {name for name in INVENTORY if name.startswith("fft.") and np.ndim(INVENTORY[name][1][0]) > 1
                 or name in ("fft.fft-n-ortho",)}
"""Multi-dimensional transforms take the symbolic backend seconds (exact DFT matrices):
tests/test_numpy_coverage.py runs them there; the inventory runs the rest."""


@pytest.mark.parametrize(("name", "backend"), [(n, b) for n in sorted(INVENTORY)
                                               for b in ("forward", "reverse", "symbolic", "numeric")
                                               if not (b == "symbolic" and n in SYMBOLIC_SLOW)])
def test_inventory_matches_central_differences(name: str, backend: str) -> None:
    f, args, argnums = INVENTORY[name]
    got = dk.grad(f, argnums=argnums, backend=backend)(*args)
    for k, j in enumerate(argnums):
        want = central(f, args, j)
        np.testing.assert_allclose(np.asarray(got[k], dtype=float), want, rtol=1e-6, atol=1e-8,
                                   err_msg=f"{name}, argument {j}")


def test_inventory_names_every_autograd_function() -> None:
    # what HIPS autograd's fft.py, scipy/signal.py, scipy/special.py, scipy/stats/*.py differentiate
    autograd = {
        "signal": "convolve",
        "fft": "fft ifft fft2 ifft2 fftn ifftn rfft irfft rfft2 irfft2 rfftn irfftn fftshift ifftshift",
        "special": "beta betainc betaln polygamma psi digamma gamma gammaln gammainc gammaincc gammasgn rgamma "
                   "multigammaln j0 y0 j1 y1 jn yn i0 i1 iv ive erf erfc erfinv erfcinv logit expit logsumexp",
        "stats.beta": "cdf logpdf pdf", "stats.chi2": "cdf logpdf pdf", "stats.dirichlet": "logpdf pdf",
        "stats.gamma": "cdf logpdf pdf", "stats.multivariate_normal": "logpdf pdf entropy",
        "stats.norm": "pdf cdf sf logpdf logcdf logsf", "stats.poisson": "cdf logpmf pmf",
        "stats.t": "pdf cdf logpdf logcdf",
    }
    listed = {name.split("-")[0] for name in INVENTORY}
    for module, names in autograd.items():
        for n in names.split():
            assert f"{module}.{n}" in listed, f"{module}.{n}"


# ---------------------------------------------------------------------------
# Refusals: derivatives diffkit does not have raise, naming function and parameter
# ---------------------------------------------------------------------------

REFUSED: dict[str, tuple[Callable[[Any], Any], float, str]] = {
    "gammainc-a": (lambda a: sc.gammainc(a, 1.0), 2.0, "gammainc is not differentiable in a"),
    "gammaincc-a": (lambda a: sc.gammaincc(a, 1.0), 2.0, "gammaincc is not differentiable in a"),
    "betainc-a": (lambda a: sc.betainc(a, 2.0, 0.3), 2.0, "betainc is not differentiable in a"),
    "betainc-b": (lambda b: sc.betainc(2.0, b, 0.3), 2.0, "betainc is not differentiable in b"),
    "stdtr-df": (lambda df: sc.stdtr(df, 0.5), 3.0, "stdtr is not differentiable in df"),
    "jv-v": (lambda v: sc.jv(v, 1.0), 2.0, "jv is not differentiable in v"),
    "yn-n": (lambda n: sc.yn(n, 1.0), 2.0, "yn is not differentiable in v"),
    "iv-v": (lambda v: sc.iv(v, 1.0), 2.0, "iv is not differentiable in v"),
    "ive-v": (lambda v: sc.ive(v, 1.0), 2.0, "ive is not differentiable in v"),
    "polygamma-n": (lambda n: dks.special.polygamma(n, 2.0), 1.0, "polygamma is not differentiable in n"),
    "zeta-x": (lambda x: dks.special.zeta(x, 2.0), 3.0, "zeta is not differentiable in x"),
    "multigammaln-d": (lambda d: multigammaln(3.0, d), 2.0, "multigammaln: the dimension d"),
    "gamma.cdf-a": (lambda a: dks.stats.gamma.cdf(1.0, a), 2.0, "gamma.cdf is not differentiable in a"),
    "beta.cdf-a": (lambda a: dks.stats.beta.cdf(0.3, a, 2.0), 2.0, "beta.cdf is not differentiable in a"),
    "beta.cdf-b": (lambda b: dks.stats.beta.cdf(0.3, 2.0, b), 2.0, "beta.cdf is not differentiable in b"),
    "chi2.cdf-df": (lambda df: dks.stats.chi2.cdf(1.0, df), 2.0, "chi2.cdf is not differentiable in df"),
    "t.cdf-df": (lambda df: dks.stats.t.cdf(1.0, df), 2.0, "t.cdf is not differentiable in df"),
    "t.logcdf-df": (lambda df: dks.stats.t.logcdf(1.0, df), 2.0, "t.cdf is not differentiable in df"),
    "poisson.cdf-k": (lambda k: dks.stats.poisson.cdf(k, 2.0), 2.0, "poisson.cdf is not differentiable in k or loc"),
}


@pytest.mark.parametrize("backend", ["forward", "reverse", "symbolic"])
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_derivatives_without_a_closed_form_refuse(name: str, backend: str) -> None:
    f, x, message = REFUSED[name]
    with pytest.raises(dk.UnsupportedOperation, match=message):
        dk.grad(f, backend=backend)(x)


def test_refused_parameters_work_as_constants_and_numeric_differentiates_them() -> None:
    # the same functions with the parameter a plain number differentiate in x
    g = dk.grad(lambda x: sc.gammainc(2.0, x))(1.0)
    np.testing.assert_allclose(g, np.exp(-1.0), rtol=1e-14)  # x e^-x / Gamma(2) at 1
    # the numeric backend's finite differences need no closed form: gammainc in a against mpmath
    with mpmath.workdps(30):
        want = float(mpmath.diff(lambda a: mpmath.gammainc(a, 0, 1, regularized=True), 2))
    np.testing.assert_allclose(dk.grad(lambda a: sc.gammainc(a, 1.0), backend="numeric")(2.0), want, rtol=1e-7)


# ---------------------------------------------------------------------------
# The new special functions against mpmath on every backend
# ---------------------------------------------------------------------------

SPECIAL = {  # name: (diffkit function, mpmath function, point)
    "rgamma": (sc.rgamma, mpmath.rgamma, 1.7),
    "rgamma-negative": (sc.rgamma, mpmath.rgamma, -1.4),
    "j0": (sc.j0, lambda x: mpmath.besselj(0, x), 1.3),
    "j1": (sc.j1, lambda x: mpmath.besselj(1, x), -2.1),
    "y0": (sc.y0, lambda x: mpmath.bessely(0, x), 1.3),
    "y1": (sc.y1, lambda x: mpmath.bessely(1, x), 0.7),
    "multigammaln": (lambda a: multigammaln(a, 3),
                     lambda a: 3 * mpmath.log(mpmath.pi) / 2 + sum(mpmath.loggamma(a - mpmath.mpf(j) / 2)
                                                                   for j in range(3)), 2.2),
}


@pytest.mark.parametrize("backend", ["forward", "reverse", "symbolic", "numeric"])
@pytest.mark.parametrize("name", sorted(SPECIAL))
def test_new_special_functions_match_mpmath(name: str, backend: str) -> None:
    f, mpf, x = SPECIAL[name]
    with mpmath.workdps(30):
        want = float(mpmath.diff(mpf, mpmath.mpf(x)))
        value = float(mpf(mpmath.mpf(x)))
    np.testing.assert_allclose(float(f(x)), value, rtol=1e-13)
    rtol = 1e-7 if backend == "numeric" else 1e-11
    np.testing.assert_allclose(float(dk.grad(f, backend=backend)(x)), want, rtol=rtol)


@pytest.mark.parametrize("backend", ["forward", "reverse", "symbolic"])
def test_second_derivatives_of_the_bessel_entries(backend: str) -> None:
    for f, mpf, x in ((sc.j0, lambda t: mpmath.besselj(0, t), 1.3), (sc.y1, lambda t: mpmath.bessely(1, t), 0.9)):
        with mpmath.workdps(30):
            want = float(mpmath.diff(mpf, mpmath.mpf(x), 2))
        np.testing.assert_allclose(float(dk.hessian(f, backend=backend)(x)), want, rtol=1e-10)


@pytest.mark.parametrize("backend", ["forward", "reverse", "symbolic", "numeric"])
def test_gammasgn_has_derivative_zero(backend: str) -> None:
    x = np.array([1.5, -0.5, -1.5, -2.3])
    g = dk.grad(lambda x: np.sum(sc.gammasgn(x) * x * x), backend=backend)(x)
    np.testing.assert_allclose(g, 2.0 * x * sc.gammasgn(x), rtol=1e-12)  # the sign is a constant factor


def test_multigammaln_values_and_domain() -> None:
    a = np.array([1.6, 2.5, 4.0])
    np.testing.assert_allclose(multigammaln(a, 3), sc.multigammaln(a, 3), rtol=1e-14)
    g = dk.grad(lambda a: np.sum(multigammaln(a, 3)))(a)
    np.testing.assert_allclose(g, sc.digamma(a) + sc.digamma(a - 0.5) + sc.digamma(a - 1.0), rtol=1e-13)
    from diffkit.scipy_special import multigammaln as mgl

    assert dks.special.multigammaln is mgl
    with pytest.raises(dk.InvalidArgument, match="multigammaln"):
        dk.grad(lambda a: multigammaln(a, 4))(1.2)


# ---------------------------------------------------------------------------
# The new distribution functions: SciPy's values, hand-derived derivatives
# ---------------------------------------------------------------------------

STATS_VALUES = {  # name: (diffkit function, SciPy function, args)
    "chi2.logpdf": (_d("stats.chi2.logpdf"), st.chi2.logpdf, (1.3, 2.5, 0.1, 1.2)),
    "chi2.pdf": (_d("stats.chi2.pdf"), st.chi2.pdf, (np.array([0.4, 1.3, 5.0]), 3.0)),
    "chi2.cdf": (_d("stats.chi2.cdf"), st.chi2.cdf, (1.3, 2.5, 0.1, 1.2)),
    "norm.logsf": (_d("stats.norm.logsf"), st.norm.logsf, (np.array([-1.0, 0.4, 3.0]), -0.3, 1.7)),
    "t.logcdf": (_d("stats.t.logcdf"), st.t.logcdf, (np.array([-1.0, 0.4, 3.0]), 3.5, 0.2, 1.3)),
    "poisson.cdf": (_d("stats.poisson.cdf"), st.poisson.cdf, (np.array([-1.0, 0.0, 2.5, 3.0]), 1.7)),
    "poisson.cdf-loc": (_d("stats.poisson.cdf"), st.poisson.cdf, (np.array([1.0, 4.0]), 1.7, 1.0)),
    "mvn.entropy": (_d("stats.multivariate_normal.entropy"), st.multivariate_normal.entropy, (MEAN, COV)),
}


@pytest.mark.parametrize("name", sorted(STATS_VALUES))
def test_new_distribution_functions_give_scipys_values(name: str) -> None:
    f, ref, args = STATS_VALUES[name]
    np.testing.assert_allclose(f(*args), ref(*args), rtol=1e-12)


@pytest.mark.parametrize("backend", ["forward", "reverse", "symbolic", "numeric"])
def test_new_distribution_derivatives_by_hand(backend: str) -> None:
    tol = {"rtol": 1e-6 if backend == "numeric" else 1e-11}
    x, df = 1.3, 2.5
    # chi2: d/dx logpdf = (df/2 - 1)/x - 1/2; d/dx cdf = pdf
    np.testing.assert_allclose(float(dk.grad(_d("stats.chi2.logpdf"), backend=backend)(x, df)),
                               (df / 2 - 1) / x - 0.5, **tol)
    np.testing.assert_allclose(float(dk.grad(_d("stats.chi2.cdf"), backend=backend)(x, df)), st.chi2.pdf(x, df), **tol)
    # d/ddf logpdf = (log(x/2) - digamma(df/2)) / 2
    np.testing.assert_allclose(float(dk.grad(_d("stats.chi2.logpdf"), argnums=1, backend=backend)(x, df)),
                               0.5 * (np.log(x / 2) - sc.digamma(df / 2)), **tol)
    # norm.logsf: -pdf/sf; t.logcdf: pdf/cdf
    np.testing.assert_allclose(float(dk.grad(_d("stats.norm.logsf"), backend=backend)(0.4)),
                               -st.norm.pdf(0.4) / st.norm.sf(0.4), **tol)
    np.testing.assert_allclose(float(dk.grad(_d("stats.t.logcdf"), backend=backend)(0.4, 3.5)),
                               st.t.pdf(0.4, 3.5) / st.t.cdf(0.4, 3.5), **tol)
    # poisson.cdf in mu: -pmf(floor(k), mu)
    np.testing.assert_allclose(float(dk.grad(lambda m: dks.stats.poisson.cdf(2.5, m), backend=backend)(1.7)),
                               -st.poisson.pmf(2, 1.7), **tol)


@pytest.mark.parametrize("backend", ["forward", "reverse"])
def test_multivariate_normal_entropy_gradient_is_half_the_inverse(backend: str) -> None:
    g = dk.grad(lambda c: dks.stats.multivariate_normal.entropy(None, c), backend=backend)(COV)
    np.testing.assert_allclose(g, 0.5 * np.linalg.inv(COV).T, rtol=1e-12)
    s = dk.grad(lambda v: dks.stats.multivariate_normal.entropy(None, v), backend=backend)(2.0)
    np.testing.assert_allclose(float(s), 0.25, rtol=1e-14)  # d/dv (log v)/2


# ---------------------------------------------------------------------------
# numpy.fft.hfft and ihfft
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("norm", [None, "backward", "ortho", "forward"])
@pytest.mark.parametrize("backend", ["forward", "reverse", "symbolic", "numeric"])
def test_hfft_ihfft_match_numpy_and_central_differences(norm: Any, backend: str) -> None:
    for n in (None, 7, 10):
        def f(x: Any, n: Any = n) -> Any:
            return real_of(np.fft.hfft(x[:5] + 1j * x[3:], n=n, norm=norm))

        def g(x: Any, n: Any = n) -> Any:
            return real_of(np.fft.ihfft(x, n=n, norm=norm))

        for fn in (f, g):
            np.testing.assert_allclose(dk.grad(fn, backend=backend)(X8), central(fn, (X8,), 0), rtol=1e-6, atol=1e-8)
    y = dk.jacobian(lambda x: np.fft.hfft(x + 0.5j, norm=norm), backend="forward")
    assert y(X7).shape == (12, 7)


def test_hfft_by_hand() -> None:
    # hfft of a Hermitian half-spectrum c (length m, n = 2 (m - 1)) is
    # y_k = c_0 + (-1)^k c_{m-1} + 2 Re sum_{0<j<m-1} c_j e^{2 pi i j k / n}: d y_k / d Re c_j
    # = 2 cos(2 pi j k / n) inside, 1 and (-1)^k at the ends
    m, n = 5, 8
    jac = dk.jacobian(lambda x: np.fft.hfft(x + 0j), backend="reverse")(X8[:m])
    k, j = np.arange(n)[:, None], np.arange(m)[None, :]
    want = 2.0 * np.cos(2 * np.pi * j * k / n)
    want[:, 0] = 1.0
    want[:, -1] = (-1.0) ** np.arange(n)
    np.testing.assert_allclose(jac, want, atol=1e-12)
    # ihfft: conj(rfft(x)) / n, d/dx_t of Im = +sin(2 pi j t / n) / n
    jac_i = dk.jacobian(lambda x: np.imag(np.fft.ihfft(x)), backend="forward")(X8)
    t = np.arange(8)[None, :]
    jj = np.arange(5)[:, None]
    np.testing.assert_allclose(jac_i, np.sin(2 * np.pi * jj * t / 8) / 8, atol=1e-14)


def test_hfft_values_match_numpy() -> None:
    for norm in (None, "ortho", "forward"):
        c = X8[:5] + 1j * X8[3:]
        got = dk.jvp(lambda x, norm=norm: np.fft.hfft(x[:5] + 1j * x[3:], n=9, norm=norm), (X8,), (np.ones(8),))[0]
        np.testing.assert_allclose(got, np.fft.hfft(c, n=9, norm=norm), rtol=1e-13)
        got_i = dk.jvp(lambda x, norm=norm: np.fft.ihfft(x, n=6, norm=norm), (X8,), (np.ones(8),))[0]
        np.testing.assert_allclose(got_i, np.fft.ihfft(X8, n=6, norm=norm), rtol=1e-13)


# ---------------------------------------------------------------------------
# scipy.signal.convolve and correlate (diffkit.scipy.signal)
# ---------------------------------------------------------------------------

ss = pytest.importorskip("scipy.signal")

# (shape of in1, shape of in2): 1-D and 2-D (and one 3-D), either argument the larger, and a
# pair where neither is larger in every axis (no 'valid' mode there)
CONV_SHAPES = [((6,), (3,)), ((3,), (6,)), ((4,), (4,)), ((5, 4), (2, 3)), ((2, 3), (5, 4)), ((4, 5), (4, 2)),
               ((3, 2), (2, 4)), ((3, 3, 2), (2, 2, 2))]


def _conv_cases() -> list[tuple[Any, ...]]:
    cases = []
    for s1, s2 in CONV_SHAPES:
        for mode in ("full", "valid", "same"):
            fits = all(n >= m for n, m in zip(s1, s2)) or all(m >= n for n, m in zip(s1, s2))
            if mode == "valid" and not fits:
                continue
            cases.append((s1, s2, mode))
    return cases


@pytest.mark.parametrize("backend", ["forward", "reverse"])
@pytest.mark.parametrize("fname", ["convolve", "correlate"])
@pytest.mark.parametrize(("s1", "s2", "mode"), _conv_cases())
def test_convolve_correlate_match_scipy_and_central_differences(s1: Any, s2: Any, mode: str, fname: str,
                                                                backend: str) -> None:
    rng = np.random.default_rng(abs(hash((s1, s2, mode))) % 2**32)
    a, b = rng.normal(size=s1), rng.normal(size=s2)
    ours, theirs = getattr(dks.signal, fname), getattr(ss, fname)
    for method in ("direct", "fft", "auto"):
        want = theirs(a, b, mode=mode, method=method)
        got = dk.jvp(lambda x, method=method: ours(x, b, mode, method), (a,), (np.zeros_like(a),), backend=backend)[0]
        np.testing.assert_allclose(got, want, atol=1e-12, err_msg=method)
        w = weights(want.shape)
        def both(x: Any, y: Any, w: Any = w, method: str = method) -> Any:
            return np.sum(w * ours(x, y, mode=mode, method=method))

        def f1(x: Any, both: Any = both) -> Any:
            return both(x, b)

        def f2(y: Any, both: Any = both) -> Any:
            return both(a, y)

        np.testing.assert_allclose(dk.grad(f1, backend=backend)(a), central(f1, (a,), 0), atol=1e-8)
        np.testing.assert_allclose(dk.grad(f2, backend=backend)(b), central(f2, (b,), 0), atol=1e-8)
        ga, gb = dk.grad(both, argnums=(0, 1), backend=backend)(a, b)
        np.testing.assert_allclose(ga, central(both, (a, b), 0), atol=1e-8)
        np.testing.assert_allclose(gb, central(both, (a, b), 1), atol=1e-8)


@pytest.mark.parametrize("backend", ["symbolic", "numeric"])
@pytest.mark.parametrize("mode", ["full", "valid", "same"])
def test_convolve_2d_on_the_symbolic_and_numeric_backends(mode: str, backend: str) -> None:
    a = np.array([[1.0, 2.0, 0.5], [0.3, -1.0, 2.0]])
    k = np.array([[0.5, 1.0], [2.0, -1.0]])
    for fname in ("convolve", "correlate"):
        def f(x: Any, y: Any, fname: str = fname) -> Any:
            return np.sum(getattr(dks.signal, fname)(x, y, mode) ** 2)

        ga, gk = dk.grad(f, argnums=(0, 1), backend=backend)(a, k)
        np.testing.assert_allclose(ga, central(f, (a, k), 0), rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(gk, central(f, (a, k), 1), rtol=1e-7, atol=1e-8)
        if backend == "symbolic":  # exact: the reverse backend's numbers to rounding
            ra, rk = dk.grad(f, argnums=(0, 1), backend="reverse")(a, k)
            np.testing.assert_allclose(ga, ra, rtol=1e-13, atol=1e-13)
            np.testing.assert_allclose(gk, rk, rtol=1e-13, atol=1e-13)


def test_convolve_gradient_by_hand() -> None:
    # d/dk sum(w * convolve(x, k, 'valid')) = correlate(x, w, 'valid') reversed: by the sum's definition
    # out[t] = sum_j k[j] x[t + m - 1 - j], so d/dk[j] = sum_t w[t] x[t + m - 1 - j]
    x, k, w = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.5, -1.0]), np.array([1.0, 10.0, 100.0])
    g = dk.grad(lambda k: np.sum(w * dks.signal.convolve(x, k, mode="valid")), backend="reverse")(k)
    want = [sum(w[t] * x[t + 1 - j] for t in range(3)) for j in range(2)]
    np.testing.assert_allclose(g, want, rtol=1e-15)
    # the gradient of 'same' in in1 for a kernel centred at its middle tap is the flipped kernel
    g = dk.grad(lambda x: dks.signal.convolve(x, np.array([1.0, 2.0, 3.0]), mode="same")[2],
                backend="forward")(np.zeros(5))
    np.testing.assert_allclose(g, [0.0, 3.0, 2.0, 1.0, 0.0])


def test_complex_correlate_conjugates_its_second_argument() -> None:
    a = np.array([1.0, 2.0, -0.5])
    z = np.array([1.0 + 2.0j, -0.5j, 0.3])
    def f(x: Any) -> Any:
        return np.sum(np.abs(dks.signal.correlate(x * (1 + 0.5j), z)) ** 2)

    np.testing.assert_allclose(dks.signal.correlate(a, z), ss.correlate(a, z), rtol=1e-14)
    for backend in ("forward", "reverse"):
        np.testing.assert_allclose(dk.grad(f, backend=backend)(a), central(f, (a,), 0), rtol=1e-7)
        np.testing.assert_allclose(
            dk.jvp(lambda x: dks.signal.correlate(a, x * z), (np.ones(3),), (np.zeros(3),), backend=backend)[0],
            ss.correlate(a, z), rtol=1e-14)


def test_convolve_arguments_are_checked() -> None:
    x = np.ones(3)
    for bad, match in (({"mode": "circular"}, "mode flags"), ({"method": "overlap"}, "method flags")):
        with pytest.raises(dk.InvalidArgument, match=match):
            dk.grad(lambda x, bad=bad: np.sum(dks.signal.convolve(x, x, **bad)))(x)
    with pytest.raises(dk.InvalidArgument, match="same dimensionality"):
        dk.grad(lambda x: np.sum(dks.signal.convolve(x, np.ones((2, 2)))))(x)
    with pytest.raises(dk.InvalidArgument, match="at least as large"):
        dk.grad(lambda x: np.sum(dks.signal.correlate(x, np.ones((2, 4)), mode="valid")))(np.ones((3, 2)))
    # 0-d inputs multiply, as SciPy's do; plain inputs are SciPy's result
    assert float(dk.grad(lambda s: dks.signal.convolve(s, np.array(3.0)))(np.array(2.0))) == 3.0
    assert dks.signal.convolve is dks.convolve and type(dks.convolve(x, x)) is np.ndarray


@pytest.mark.parametrize("backend", ["forward", "reverse", "symbolic", "numeric"])
def test_norm_logcdf_and_logsf_in_the_tails(backend: str) -> None:
    # log_ndtr keeps the tails: the derivative is pdf/cdf, ~ -x far in the lower tail, where
    # log(cdf) would underflow; mpmath at 40 digits is the reference
    x = np.array([-30.0, -5.0, 0.3, 8.0]) if backend != "symbolic" else np.array([-5.0, 0.3, 8.0])
    with mpmath.workdps(40):
        want = [float(mpmath.diff(lambda t: mpmath.log(mpmath.ncdf(t)), mpmath.mpf(v))) for v in x]
        want_sf = [float(mpmath.diff(lambda t: mpmath.log(mpmath.erfc(t / mpmath.sqrt(2)) / 2), mpmath.mpf(v)))
                   for v in -x]
    np.testing.assert_allclose(dks.stats.norm.logcdf(x), st.norm.logcdf(x), rtol=1e-14)
    np.testing.assert_allclose(dks.stats.norm.logsf(-x), st.norm.logsf(-x), rtol=1e-14)
    # SymPy writes erfc(-y) as 2 - erfc(y): the symbolic backend's lower tail loses digits to that
    rtol = {"numeric": 1e-6, "symbolic": 1e-9}.get(backend, 1e-12)
    got = dk.grad(lambda x: np.sum(dks.stats.norm.logcdf(x)), backend=backend)(x)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-300 if backend != "numeric" else 1e-9)
    got_sf = dk.grad(lambda x: np.sum(dks.stats.norm.logsf(x)), backend=backend)(-x)
    np.testing.assert_allclose(got_sf, want_sf, rtol=rtol, atol=1e-300 if backend != "numeric" else 1e-9)
    with mpmath.workdps(40):
        h = float(mpmath.diff(lambda t: mpmath.log(mpmath.ncdf(t)), mpmath.mpf(-1.3), 2))
    np.testing.assert_allclose(float(dk.hessian(_d("stats.norm.logcdf"), backend=backend)(-1.3)), h,
                               rtol=1e-4 if backend == "numeric" else 1e-11)
