"""Accuracy and cost of numeric derivatives on smooth test functions, against mpmath truth.

Each test function is written once against a small namespace (NumPy's names),
so the same definition runs on floats with NumPy and on 50-digit numbers with
mpmath. The truth is ``mpmath.diff`` at 50 digits. For every method this
prints, for first derivatives:

* digits: ``-log10`` of the relative error, median and worst over the cases
  (capped at 16: an exact result counts as 16 digits);
* evaluations per derivative (points at which the function was evaluated), median;
* how often the method's error estimate bounds the true error;

and the median and worst digits of second derivatives, with their median cost.

Methods: diffkit's numeric backend with default settings, plain central
differences (step ``eps**(1/3) * max(|x|, 1)``), and, when installed,
numdifftools and ``scipy.differentiate``.

Run: ``python bench/bench_numeric.py`` (``--cases`` lists the cases and the
per-case digits of diffkit).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import mpmath
import numpy as np

import diffkit as dk

mpmath.mp.dps = 50
DIGITS_CAP = 16.0


class _MP:
    """mpmath under NumPy's names, so one definition serves both."""

    sin, cos, tan, exp, log, sqrt = mpmath.sin, mpmath.cos, mpmath.tan, mpmath.exp, mpmath.log, mpmath.sqrt
    arcsin, arccos, arctan = mpmath.asin, mpmath.acos, mpmath.atan
    sinh, cosh, tanh = mpmath.sinh, mpmath.cosh, mpmath.tanh
    arcsinh, arccosh, arctanh = mpmath.asinh, mpmath.acosh, mpmath.atanh
    expm1, log1p, log10, cbrt, hypot = mpmath.expm1, mpmath.log1p, mpmath.log10, mpmath.cbrt, mpmath.hypot

    @staticmethod
    def log2(x: Any) -> Any:
        return mpmath.log(x, 2)

    @staticmethod
    def exp2(x: Any) -> Any:
        return mpmath.mpf(2) ** x

    @staticmethod
    def arctan2(y: Any, x: Any) -> Any:
        return mpmath.atan2(y, x)

    @staticmethod
    def abs(x: Any) -> Any:
        return abs(x)

    @staticmethod
    def maximum(x: Any, y: Any) -> Any:
        return mpmath.mpf(x) if x > y else mpmath.mpf(y)

    @staticmethod
    def minimum(x: Any, y: Any) -> Any:
        return mpmath.mpf(x) if x < y else mpmath.mpf(y)

    @staticmethod
    def logaddexp(x: Any, y: Any) -> Any:
        return mpmath.log(mpmath.exp(x) + mpmath.exp(y))


def _baydin(x: Any, m: Any) -> Any:
    # Baydin et al. 2018, Fig. 3: the logistic map's 3rd iterate, 64x(1-x)(1-2x)^2(1-8x+8x^2)^2
    return 64 * x * (1 - x) * (1 - 2 * x) ** 2 * (1 - 8 * x + 8 * x * x) ** 2


# (name, f(x, m), x): smooth at x; m is numpy or _MP
CASES: list[tuple[str, Callable[[Any, Any], Any], float]] = [
    ("exp", lambda x, m: m.exp(x), 0.7),
    ("sin", lambda x, m: m.sin(x), 1.3),
    ("cos", lambda x, m: m.cos(x), 0.4),
    ("tan", lambda x, m: m.tan(x), 1.1),
    ("log", lambda x, m: m.log(x), 0.3),
    ("sqrt", lambda x, m: m.sqrt(x), 2.5),
    ("arctan", lambda x, m: m.arctan(x), 1.7),
    ("arcsin", lambda x, m: m.arcsin(x), 0.6),
    ("arccos", lambda x, m: m.arccos(x), -0.3),
    ("sinh", lambda x, m: m.sinh(x), 1.2),
    ("cosh", lambda x, m: m.cosh(x), -0.8),
    ("tanh", lambda x, m: m.tanh(x), 0.9),
    ("arcsinh", lambda x, m: m.arcsinh(x), 2.2),
    ("arccosh", lambda x, m: m.arccosh(x), 1.8),
    ("arctanh", lambda x, m: m.arctanh(x), 0.45),
    ("expm1", lambda x, m: m.expm1(x), 1e-3),
    ("log1p", lambda x, m: m.log1p(x), 0.2),
    ("log2", lambda x, m: m.log2(x), 3.3),
    ("log10", lambda x, m: m.log10(x), 0.07),
    ("exp2", lambda x, m: m.exp2(x), 1.6),
    ("reciprocal", lambda x, m: 1 / x, 0.35),
    ("x**2.5", lambda x, m: x ** 2.5, 1.4),
    ("x**-1.5", lambda x, m: x ** -1.5, 0.8),
    ("exp(sin)", lambda x, m: m.exp(m.sin(x)), 0.9),
    ("sin*exp(-x)", lambda x, m: m.sin(x) * m.exp(-x), 2.0),
    ("log(1+x^2)", lambda x, m: m.log(1 + x * x), 0.7),
    ("sqrt(1+x^2)", lambda x, m: m.sqrt(1 + x * x), -1.1),
    ("runge", lambda x, m: 1 / (1 + 25 * x * x), 0.3),
    ("gauss", lambda x, m: m.exp(-x * x), 0.8),
    ("sinc", lambda x, m: m.sin(x) / x, 1.7),
    ("x log x", lambda x, m: x * m.log(x), 0.6),
    ("tanh(sin)", lambda x, m: m.tanh(m.sin(x)), 1.5),
    ("cos(exp)", lambda x, m: m.cos(m.exp(x)), 0.5),
    ("numdifftools", lambda x, m: m.exp(x) / (m.sin(x) ** 3 + m.cos(x) ** 3), 1.5),
    ("arctan(exp)", lambda x, m: m.arctan(m.exp(x)), -0.4),
    ("log cosh", lambda x, m: m.log(m.cosh(x)), 1.3),
    ("sqrt*sin near 0", lambda x, m: m.sqrt(x) * m.sin(x), 1e-4),
    ("log near 0", lambda x, m: m.log(x), 1e-8),
    ("sqrt near 0", lambda x, m: m.sqrt(x), 1e-10),
    ("cubic", lambda x, m: x ** 3 - 2 * x, 1.1),
    ("baydin", _baydin, 0.2),
    ("sin(10x)", lambda x, m: m.sin(10 * x), 0.3),
    ("exp(3x)cos(2x)", lambda x, m: m.exp(3 * x) * m.cos(2 * x), 0.6),
    ("arcsin^2", lambda x, m: m.arcsin(x) ** 2, 0.9),
    ("softplus", lambda x, m: m.log1p(m.exp(x)), 1.2),
    ("sigmoid", lambda x, m: 1 / (1 + m.exp(-x)), -0.7),
    ("sin^2+cos^3", lambda x, m: m.sin(x) ** 2 + m.cos(x) ** 3, 2.4),
    ("x**x", lambda x, m: x ** x, 1.3),
    ("tan*arctan", lambda x, m: m.tan(x) * m.arctan(x), 0.8),
    ("sin(100)", lambda x, m: m.sin(x), 100.0),
    ("exp(20)", lambda x, m: m.exp(x), 20.0),
    ("x^2 at 1e6", lambda x, m: x * x, 1e6),
    # not complex-analytic in diffkit's table (or NumPy rejects complex input): finite differences
    ("logaddexp", lambda x, m: m.logaddexp(x, 1.0), 0.3),
    ("hypot", lambda x, m: m.hypot(x, 1.5), 0.7),
    ("arctan2", lambda x, m: m.arctan2(x, 2.0), 0.5),
    ("cbrt", lambda x, m: m.cbrt(x), 2.0),
    ("abs*sin", lambda x, m: m.abs(x) * m.sin(x), -1.2),
    ("maximum", lambda x, m: m.maximum(x, 0.5) * x, 1.5),
    ("exp(-|x|)", lambda x, m: m.exp(-m.abs(x)), 0.6),
    ("hypot(sin,cos2x)", lambda x, m: m.hypot(m.sin(x), m.cos(2 * x)), 0.4),
    ("cbrt(1+x^2)", lambda x, m: m.cbrt(1 + x * x), 0.7),
    ("arctan2(sin,cos+2)", lambda x, m: m.arctan2(m.sin(x), m.cos(x) + 2), 1.0),
    ("minimum(exp,3)", lambda x, m: m.minimum(m.exp(x), 3.0), 0.4),
    ("sqrt|x|", lambda x, m: m.sqrt(m.abs(x)), 3.0),
    ("logaddexp(sin,cos)", lambda x, m: m.logaddexp(m.sin(x), m.cos(x)), 0.9),
]


def truth(f: Callable[[Any, Any], Any], x: float, n: int) -> float:
    return float(mpmath.diff(lambda t: f(t, _MP), mpmath.mpf(x), n))


def digits(value: float, true: float) -> float:
    err = abs(value - true) / (abs(true) if true else 1.0)
    if not math.isfinite(err):
        return 0.0
    return min(DIGITS_CAP, -math.log10(err)) if err > 0 else DIGITS_CAP


@dataclass
class Row:
    value: float
    error: float   # the method's error estimate (NaN if it has none)
    nfev: float


class Counter:
    """Counts the points at which a function is evaluated (vectorized calls count each point)."""

    def __init__(self, f: Callable[[Any], Any]):
        self.f = f
        self.n = 0

    def __call__(self, x: Any) -> Any:
        self.n += int(np.size(x))
        return self.f(x)


def run_diffkit(f: Callable[[Any], Any], x: float, n: int) -> Row:
    r = dk.Numeric().derivative_result(f, x, order=n)
    return Row(float(r.value), float(r.error), r.nfev)


def run_central(f: Callable[[Any], Any], x: float, n: int) -> Row:
    eps = np.finfo(float).eps
    c = Counter(f)
    if n == 1:
        h = eps ** (1 / 3) * max(abs(x), 1.0)
        hp, hm = (x + h) - x, x - (x - h)
        v = (c(x + h) - c(x - h)) / (hp + hm)
    else:
        h = eps ** (1 / 4) * max(abs(x), 1.0)
        hp = (x + h) - x
        v = (c(x + hp) - 2 * c(x) + c(x - hp)) / (hp * hp)
    return Row(float(v), math.nan, c.n)


def run_numdifftools(f: Callable[[Any], Any], x: float, n: int) -> Row | None:
    try:
        import numdifftools as nd
    except ImportError:
        return None
    c = Counter(f)
    res = nd.Derivative(c, n=n, full_output=True)(x)
    return Row(float(res.estimate), float(res.error_estimate), c.n)


def run_scipy(f: Callable[[Any], Any], x: float, n: int) -> Row | None:
    try:
        from scipy import differentiate
    except ImportError:
        return None
    c = Counter(f)
    if n == 1:
        res = differentiate.derivative(c, x)
        return Row(float(res.df), float(res.error), c.n)
    res = differentiate.hessian(lambda v: c(v[0]), np.array([x]))
    return Row(float(res.ddf[0, 0]), float(res.error[0, 0]), c.n)


METHODS: list[tuple[str, Callable[[Callable[[Any], Any], float, int], Row | None]]] = [
    ("diffkit (default)", run_diffkit),
    ("plain central", run_central),
    ("numdifftools", run_numdifftools),
    ("scipy.differentiate", run_scipy),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", action="store_true", help="print diffkit's digits per case")
    args = ap.parse_args(argv)
    truths = {(name, n): truth(f, x, n) for name, f, x in CASES for n in (1, 2)}
    print(f"{len(CASES)} smooth test functions, truth: mpmath.diff at {mpmath.mp.dps} digits")
    print(f"{'method':<22}{'median':>8}{'worst':>8}{'evals':>8}{'bounds':>9}{'2nd median':>12}{'2nd worst':>11}"
          f"{'2nd evals':>11}{'time/case':>11}")
    per_case: dict[str, list[float]] = {}
    for label, run in METHODS:
        d1, d2, evals, evals2, covered = [], [], [], [], []
        t0 = time.perf_counter()
        skipped = False
        for name, f, x in CASES:
            fn = (lambda v, _f=f: _f(v, np))
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                r1 = run(fn, x, 1)
                r2 = run(fn, x, 2)
            if r1 is None or r2 is None:
                skipped = True
                break
            t1, t2 = truths[(name, 1)], truths[(name, 2)]
            d1.append(digits(r1.value, t1))
            d2.append(digits(r2.value, t2))
            evals.append(r1.nfev)
            evals2.append(r2.nfev)
            if math.isfinite(r1.error) or not math.isnan(r1.error):
                covered.append(abs(r1.value - t1) <= r1.error)
            if label.startswith("diffkit"):
                per_case[name] = [d1[-1], d2[-1], r1.nfev, float(abs(r1.value - t1) <= r1.error)]
        if skipped:
            print(f"{label:<22}  (not installed)")
            continue
        dt = (time.perf_counter() - t0) / len(CASES)
        cov = f"{100 * np.mean(covered):.0f}%" if covered else "-"
        print(f"{label:<22}{np.median(d1):8.1f}{np.min(d1):8.1f}{np.median(evals):8.0f}{cov:>9}"
              f"{np.median(d2):12.1f}{np.min(d2):11.1f}{np.median(evals2):11.0f}{dt * 1e3:9.1f}ms")
    if args.cases:
        print("\ndiffkit per case: digits (1st, 2nd), evaluations, estimate bounds the error")
        for name, (a, b, e, ok) in per_case.items():
            print(f"  {name:<22}{a:6.1f}{b:6.1f}{e:6.0f}  {'yes' if ok else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
