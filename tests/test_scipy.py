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


@pytest.mark.parametrize("backend", ["forward", "reverse"])
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


@pytest.mark.parametrize("backend", ["forward", "reverse"])
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
