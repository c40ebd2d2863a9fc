"""SciPy functions that are Python code, written on the table's primitives (the ``scipy`` extra).

``scipy.special.logsumexp`` and the ``scipy.stats`` distributions are Python
functions: they turn their arguments into NumPy arrays (``np.asarray``), which
a traced value cannot be, so they do not reach diffkit's dispatch. This module
gives the same functions written in NumPy on the primitive table (HIPS
autograd's ``autograd.scipy`` takes the same route): use ``diffkit.scipy``'s
in the function you differentiate, SciPy's everywhere else; on plain arrays
they give SciPy's values. Imported by the user only: ``import diffkit`` does
not import it (nor SciPy).

* :func:`logsumexp` (``axis``, ``b``, ``keepdims``), also as ``special.logsumexp``, with
  ``special.polygamma``, ``special.zeta`` and ``special.multigammaln`` (Python functions in
  SciPy, not ufuncs);
* ``stats.norm``: ``logpdf``, ``pdf``, ``cdf``, ``logcdf``, ``sf``, ``logsf`` (in x, loc, scale);
* ``stats.t``: ``logpdf``, ``pdf`` (in x, df, loc, scale); ``cdf``, ``logcdf`` (in x, loc, scale: not df);
* ``stats.chi2``: ``logpdf``, ``pdf`` (in x, df, loc, scale); ``cdf`` (in x, loc, scale: not df);
* ``stats.gamma``: ``logpdf``, ``pdf`` (in x, a, loc, scale); ``cdf`` (in x, loc, scale: not a);
* ``stats.beta``: ``logpdf``, ``pdf`` (in x, a, b, loc, scale); ``cdf`` (in x, loc, scale: not a, b);
* ``stats.poisson``: ``logpmf``, ``pmf``, ``cdf`` (in mu; k is an integer);
* ``stats.multivariate_normal``: ``logpdf``, ``pdf`` (in x, mean, cov); ``entropy`` (in cov);
* ``stats.dirichlet``: ``logpdf``, ``pdf`` (in x, alpha);
* ``signal.convolve``, ``signal.correlate`` (also :func:`convolve`, :func:`correlate`): N-d, in
  both arrays, modes ``'full'``, ``'valid'``, ``'same'``, every ``method``.

Example:
    >>> import numpy as np, diffkit as dk
    >>> from diffkit.scipy import logsumexp, stats
    >>> g = dk.grad(lambda x: logsumexp(x))(np.array([0.0, np.log(3.0)]))
    >>> np.round(g, 12)                       # the softmax
    array([0.25, 0.75])
    >>> float(dk.grad(lambda x: stats.norm.logpdf(x, 1.0, 2.0))(0.0))   # -(x - loc) / scale**2
    0.25
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import scipy.special as sc

from . import scipy_special  # defines SciPy's entries of the table
from .core.values import Value, concrete, is_complex
from .errors import InvalidArgument, UnsupportedOperation

__all__ = ["convolve", "correlate", "logsumexp", "signal", "special", "stats"]

_LOG_2PI = math.log(2.0 * math.pi)
_SQRT2 = math.sqrt(2.0)


def _shift(a: Any, axis: Any) -> Any:
    """The maximum of ``a``'s numbers along ``axis`` (kept), 0 where not finite: a constant,
    so subtracting and adding it back changes the value's rounding, not its derivative.
    The symbolic backend's values have no numbers: no shift there."""
    v = np.asarray(concrete(a))
    if v.dtype.kind == "c":  # the numeric backend's complex step: shift by the real part
        v = v.real
    elif v.dtype.kind not in "fiu":
        return 0.0
    m = np.max(v, axis=axis, keepdims=True)
    return np.where(np.isfinite(m), m, 0.0)


def logsumexp(a: Any, axis: Any = None, b: Any = None, keepdims: bool = False, return_sign: bool = False) -> Any:
    """``scipy.special.logsumexp`` on traced values: ``log(sum(b * exp(a)))`` along ``axis``.

    Its gradient in ``a`` is the softmax (times ``b``); ``b`` may be traced too
    (taken as non-negative).

    Example:
        >>> import numpy as np, diffkit as dk
        >>> float(logsumexp(np.array([1.0, 2.0])))
        2.313261687518223
        >>> np.round(dk.grad(lambda b: logsumexp(np.zeros(2), b=b))(np.array([1.0, 3.0])), 12)
        array([0.25, 0.25])
    """
    if return_sign:
        raise UnsupportedOperation("diffkit.scipy.logsumexp(return_sign=True) is not supported; "
                                   "keep b non-negative")
    if not isinstance(a, Value) and not isinstance(b, Value):
        return sc.logsumexp(a, axis=axis, b=b, keepdims=keepdims)
    m = _shift(a, axis)
    e = np.exp(a - m)
    if b is not None:
        e = b * e
    out = np.log(np.sum(e, axis=axis, keepdims=True)) + m
    if not keepdims:
        out = np.squeeze(out, axis=axis) if axis is not None else np.reshape(out, ())
    return out


def _standard(x: Any, loc: Any, scale: Any) -> Any:
    return (x - loc) / scale


# --------------------------------------------------------------------------
# Distributions
# --------------------------------------------------------------------------


def _norm_logpdf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    z = _standard(x, loc, scale)
    return -0.5 * (z * z) - np.log(scale) - 0.5 * _LOG_2PI


def _norm_cdf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    return 0.5 * sc.erfc(-_standard(x, loc, scale) / _SQRT2)


def _norm_sf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    return 0.5 * sc.erfc(_standard(x, loc, scale) / _SQRT2)


def _norm_logcdf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    return sc.log_ndtr(_standard(x, loc, scale))


def _norm_logsf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    return sc.log_ndtr(-_standard(x, loc, scale))


def _t_logpdf(x: Any, df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    z = _standard(x, loc, scale)
    return (sc.gammaln(0.5 * (df + 1.0)) - sc.gammaln(0.5 * df) - 0.5 * np.log(df * math.pi) - np.log(scale)
            - 0.5 * (df + 1.0) * np.log1p(z * z / df))


def _t_cdf(x: Any, df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    return sc.stdtr(_constant(df, "t.cdf", "df"), _standard(x, loc, scale))


def _gamma_logpdf(x: Any, a: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    z = _standard(x, loc, scale)
    return sc.xlogy(a - 1.0, z) - z - sc.gammaln(a) - np.log(scale)


def _gamma_cdf(x: Any, a: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    return sc.gammainc(_constant(a, "gamma.cdf", "a"), _standard(x, loc, scale))


def _beta_logpdf(x: Any, a: Any, b: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    z = _standard(x, loc, scale)
    return sc.xlogy(a - 1.0, z) + sc.xlog1py(b - 1.0, -z) - sc.betaln(a, b) - np.log(scale)


def _beta_cdf(x: Any, a: Any, b: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    return sc.betainc(_constant(a, "beta.cdf", "a"), _constant(b, "beta.cdf", "b"), _standard(x, loc, scale))


def _poisson_logpmf(k: Any, mu: Any, loc: Any = 0.0) -> Any:
    k = _constant(k, "poisson.logpmf", "k") - loc
    return sc.xlogy(k, mu) - mu - sc.gammaln(np.asarray(k, dtype=float) + 1.0)


def _poisson_cdf(k: Any, mu: Any, loc: Any = 0.0) -> Any:
    # P(K <= k) = Q(floor(k) + 1, mu), the regularized upper incomplete gamma in mu:
    # d/dmu = -pmf(floor(k), mu); 0 for k < 0
    if isinstance(k, Value) or isinstance(loc, Value):  # counts: floor(k - loc) has derivative 0 or none
        raise UnsupportedOperation("diffkit.scipy.stats.poisson.cdf is not differentiable in k or loc; "
                                   "pass them as constants")
    k = np.floor(np.asarray(k, dtype=float) - loc)
    return np.where(k >= 0, sc.gammaincc(np.maximum(k, 0.0) + 1.0, mu), 0.0)


def _chi2_logpdf(x: Any, df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    z = _standard(x, loc, scale)
    half = 0.5 * df
    return sc.xlogy(half - 1.0, z) - 0.5 * z - sc.gammaln(half) - half * math.log(2.0) - np.log(scale)


def _chi2_cdf(x: Any, df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    return sc.gammainc(0.5 * _constant(df, "chi2.cdf", "df"), 0.5 * _standard(x, loc, scale))


def _constant(v: Any, where: str, name: str) -> Any:
    # the symbolic backend traces every argument as a symbol: there the parameter is a
    # constant of the derivatives (its partial is not in the table)
    if isinstance(v, Value) and v._trace.backend_name != "symbolic":
        raise UnsupportedOperation(f"diffkit.scipy.stats.{where} is not differentiable in {name}; "
                                   f"pass {name} as a constant")
    return v


def _mvn_logpdf(x: Any, mean: Any = None, cov: Any = 1.0) -> Any:
    d = np.shape(x)[-1]
    r = x if mean is None else x - mean
    cov = cov * np.eye(d) if np.ndim(cov) == 0 else cov
    sol = np.linalg.solve(cov, np.swapaxes(r, -1, -2) if np.ndim(r) > 1 else r)
    quad = np.sum(r * np.swapaxes(sol, -1, -2), axis=-1) if np.ndim(r) > 1 else np.sum(r * sol)
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (d * _LOG_2PI + logdet + quad)


def _mvn_entropy(mean: Any = None, cov: Any = 1.0) -> Any:
    # 0.5 (d (1 + log 2 pi) + log det cov): d/dcov = 0.5 inv(cov)^T; the mean does not enter
    cov = np.atleast_2d(cov) if np.ndim(cov) < 2 else cov
    d = np.shape(cov)[-1]
    _, logdet = np.linalg.slogdet(cov)
    return 0.5 * (d * (1.0 + _LOG_2PI) + logdet)


def _dirichlet_logpdf(x: Any, alpha: Any) -> Any:
    return (np.sum(sc.xlogy(alpha - 1.0, x), axis=-1) + sc.gammaln(np.sum(alpha, axis=-1))
            - np.sum(sc.gammaln(alpha), axis=-1))


def _exp_of(logf: Any) -> Any:
    def f(*args: Any, **kwargs: Any) -> Any:
        return np.exp(logf(*args, **kwargs))

    f.__doc__ = f"exp of {logf.__name__.lstrip('_')}"
    return f


def _log_of(f: Any) -> Any:
    def logf(*args: Any, **kwargs: Any) -> Any:
        return np.log(f(*args, **kwargs))

    return logf


# --------------------------------------------------------------------------
# scipy.signal: convolve and correlate
# --------------------------------------------------------------------------

_CONV_MODES = ("full", "valid", "same")
_CONV_METHODS = ("auto", "direct", "fft")


def _full_convolution(a: Any, v: Any) -> Any:
    """The full N-d convolution ``out[k] = sum_i a[i] v[k - i]``: the array ``v``, zero-padded
    and gathered at ``k - i`` (the N-d Toeplitz operator of ``v``), times ``a``. Made of
    indexing, padding, reshapes and a matrix product (table operations), so every backend
    runs it and its derivative in either argument is the transpose of the same operator."""
    sa, sv = np.shape(a), np.shape(v)
    if int(np.prod(sa)) > int(np.prod(sv)):  # gather K x I entries with I the smaller array
        a, v, sa, sv = v, a, sv, sa
    nd = len(sa)
    out_shape = tuple(n + m - 1 for n, m in zip(sa, sv))
    vp = np.pad(v, [(n - 1, n - 1) for n in sa])
    index = []
    for d in range(nd):
        k = np.arange(out_shape[d]).reshape([-1 if e == d else 1 for e in range(2 * nd)])
        i = np.arange(sa[d]).reshape([-1 if e == nd + d else 1 for e in range(2 * nd)])
        index.append(k - i + (sa[d] - 1))
    toeplitz = np.reshape(vp[tuple(index)], (int(np.prod(out_shape)), int(np.prod(sa))))
    return np.reshape(toeplitz @ np.reshape(a, (-1,)), out_shape)


def _conv_arguments(in1: Any, in2: Any, mode: str, method: str, where: str) -> None:
    if mode not in _CONV_MODES:
        raise InvalidArgument(f"diffkit.scipy.signal.{where}: acceptable mode flags are 'valid', 'same', or "
                              f"'full', not {mode!r}")
    if method not in _CONV_METHODS:
        raise InvalidArgument(f"diffkit.scipy.signal.{where}: acceptable method flags are 'auto', 'direct', "
                              f"or 'fft', not {method!r}")
    s1, s2 = np.shape(in1), np.shape(in2)
    if len(s1) != len(s2):
        raise InvalidArgument(f"diffkit.scipy.signal.{where}: in1 and in2 should have the same dimensionality")
    if mode == "valid" and not (all(n >= m for n, m in zip(s1, s2)) or all(m >= n for n, m in zip(s1, s2))):
        raise InvalidArgument(f"diffkit.scipy.signal.{where}: for 'valid' mode, one must be at least as large "
                              "as the other in every dimension")


def convolve(in1: Any, in2: Any, mode: str = "full", method: str = "auto") -> Any:
    """``scipy.signal.convolve`` on traced values: the N-d convolution of ``in1`` and ``in2``
    (same number of dimensions), ``mode`` ``'full'``, ``'valid'`` or ``'same'`` (the size of
    ``in1``, centred like SciPy's). ``method`` (``'auto'``, ``'direct'``, ``'fft'``) chooses
    how SciPy computes it, not what it is: diffkit computes the sum directly, so the values
    agree with SciPy's to rounding and the derivative is the same for every method. Both
    arguments may be traced; on plain arrays this is SciPy's function.

    Example:
        >>> import numpy as np, diffkit as dk
        >>> convolve(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.5]))
        array([0. , 1. , 2.5, 4. , 1.5])
        >>> dk.grad(lambda k: np.sum(convolve(np.array([1.0, 2.0, 3.0]), k, mode="valid")))(np.ones(2))
        array([5., 3.])
    """
    if not isinstance(in1, Value) and not isinstance(in2, Value):
        import scipy.signal

        return scipy.signal.convolve(in1, in2, mode=mode, method=method)
    _conv_arguments(in1, in2, mode, method, "convolve")
    s1, s2 = np.shape(in1), np.shape(in2)
    if len(s1) == 0:
        return in1 * in2
    if 0 in s1 or 0 in s2:
        raise InvalidArgument("diffkit.scipy.signal.convolve of an empty array")
    full = _full_convolution(in1, in2)
    if mode == "full":
        return full
    if mode == "valid":  # the part where the smaller array lies inside the larger
        box = tuple(slice(min(n, m) - 1, max(n, m)) for n, m in zip(s1, s2))
    else:  # 'same': in1's size, centred in the full result (SciPy's _centered)
        box = tuple(slice((m - 1) // 2, (m - 1) // 2 + n) for n, m in zip(s1, s2))
    return full[box]


def correlate(in1: Any, in2: Any, mode: str = "full", method: str = "auto") -> Any:
    """``scipy.signal.correlate`` on traced values: the convolution of ``in1`` with ``in2``
    reversed along every axis (and conjugated, if complex), as SciPy defines it; the modes
    and methods of :func:`convolve`.

    Example:
        >>> import numpy as np, diffkit as dk
        >>> correlate(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.5]), mode="same")
        array([2. , 3.5, 3. ])
        >>> dk.grad(lambda x: correlate(x, np.array([1.0, -1.0]), mode="valid")[0])(np.zeros(3))
        array([ 1., -1.,  0.])
    """
    if not isinstance(in1, Value) and not isinstance(in2, Value):
        import scipy.signal

        return scipy.signal.correlate(in1, in2, mode=mode, method=method)
    _conv_arguments(in1, in2, mode, method, "correlate")
    if np.ndim(in2):
        in2 = in2[(slice(None, None, -1),) * np.ndim(in2)]
    if is_complex(in2):
        in2 = np.conj(in2)
    return convolve(in1, in2, mode=mode, method=method)


signal = SimpleNamespace(convolve=convolve, correlate=correlate)
"""``scipy.signal``'s ``convolve`` and ``correlate`` for traced values."""


special = SimpleNamespace(logsumexp=logsumexp, polygamma=scipy_special.polygamma, zeta=scipy_special.zeta,
                          multigammaln=scipy_special.multigammaln)
"""``scipy.special``'s Python functions (not ufuncs) for traced values: ``special.logsumexp``,
``special.polygamma``, ``special.zeta``, ``special.multigammaln``. SciPy's ufuncs (``erf``, ``gammaln`` ...) need no
stand-in: call SciPy's."""

stats = SimpleNamespace(
    norm=SimpleNamespace(logpdf=_norm_logpdf, pdf=_exp_of(_norm_logpdf), cdf=_norm_cdf, logcdf=_norm_logcdf,
                         sf=_norm_sf, logsf=_norm_logsf),
    t=SimpleNamespace(logpdf=_t_logpdf, pdf=_exp_of(_t_logpdf), cdf=_t_cdf, logcdf=_log_of(_t_cdf)),
    chi2=SimpleNamespace(logpdf=_chi2_logpdf, pdf=_exp_of(_chi2_logpdf), cdf=_chi2_cdf),
    gamma=SimpleNamespace(logpdf=_gamma_logpdf, pdf=_exp_of(_gamma_logpdf), cdf=_gamma_cdf),
    beta=SimpleNamespace(logpdf=_beta_logpdf, pdf=_exp_of(_beta_logpdf), cdf=_beta_cdf),
    poisson=SimpleNamespace(logpmf=_poisson_logpmf, pmf=_exp_of(_poisson_logpmf), cdf=_poisson_cdf),
    multivariate_normal=SimpleNamespace(logpdf=_mvn_logpdf, pdf=_exp_of(_mvn_logpdf), entropy=_mvn_entropy),
    dirichlet=SimpleNamespace(logpdf=_dirichlet_logpdf, pdf=_exp_of(_dirichlet_logpdf)),
)
"""``scipy.stats``' distributions as functions on the table's primitives: ``stats.norm.logpdf(x, loc, scale)``
and the others listed in the module's docstring, with SciPy's argument order."""
