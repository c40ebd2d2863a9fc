"""Accuracy and cost of numeric derivatives on smooth test functions, against mpmath truth.

The ``numeric`` section of ``diffkit bench`` (and of ``bench/bench_numeric.py``).

Each test function of :data:`CASES` is written once against a small namespace
(NumPy's names), so the same definition runs on floats with NumPy and on
50-digit numbers with mpmath. The truth is ``mpmath.diff`` at :data:`DPS`
digits. For every method :func:`run` gives, for first derivatives:

* digits: ``-log10`` of the relative error, median and worst over the cases
  (capped at :data:`DIGITS_CAP`: an exact result counts as 16 digits);
* evaluations per derivative (points at which the function was evaluated), median;
* how often the method's error estimate bounds the true error;

the median and worst digits of second derivatives with their median cost, and
the time per case (first and second derivative).

Methods (:data:`METHODS`): diffkit's numeric backend with default settings,
plain central differences (step ``eps**(1/3) * max(|x|, 1)``), and, when
installed, numdifftools and ``scipy.differentiate``.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import mpmath
import numpy as np

from .._version import __version__
from ..backends.numeric import Numeric
from ..errors import InvalidArgument
from .timing import timeit

__all__ = ["CASES", "DIGITS_CAP", "DPS", "METHODS", "TARGETS", "Estimate", "available_methods", "digits",
           "evaluate", "run", "select_cases", "truth"]

DPS = 50
"""Digits of the mpmath truth."""

DIGITS_CAP = 16.0
"""Digits given to an exact result (and the most any result gets)."""

TARGETS = {"median_digits": (">=", 15.0), "worst_digits": (">=", 12.0), "median_evals": ("<=", 4.0)}
"""diffkit's targets on its first derivatives: field -> (sense, value)."""

TARGET_TEXT = "median >= 15 digits, worst >= 12, median evaluations <= 4"


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


Case = tuple[str, Callable[[Any, Any], Any], float]

# (name, f(x, m), x): smooth at x; m is numpy or _MP
CASES: list[Case] = [
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
    """The n-th derivative of ``f`` at ``x``: ``mpmath.diff`` at :data:`DPS` digits, rounded to a float."""
    with mpmath.workdps(DPS):
        return float(mpmath.diff(lambda t: f(t, _MP), mpmath.mpf(x), n))


def digits(value: float, true: float) -> float:
    """Correct digits of ``value``: ``-log10`` of the relative error (absolute where ``true`` is 0).

    Capped at :data:`DIGITS_CAP` (an exact value gets the cap); 0 for a NaN or
    infinite value; negative when the error exceeds ``|true|``.

    Example:
        >>> digits(2.0, 2.0), round(digits(2.0 * (1 + 1e-9), 2.0), 6), digits(float("nan"), 1.0)
        (16.0, 9.0, 0.0)
    """
    err = abs(value - true) / (abs(true) if true else 1.0)
    if not math.isfinite(err):
        return 0.0
    return min(DIGITS_CAP, -math.log10(err)) if err > 0 else DIGITS_CAP


@dataclass
class Estimate:
    """One method's answer for one derivative."""

    value: float
    error: float   # the method's error estimate (NaN if it has none)
    nfev: float    # points at which the function was evaluated


class Counter:
    """Counts the points at which a function is evaluated (vectorized calls count each point)."""

    def __init__(self, f: Callable[[Any], Any]):
        self.f = f
        self.n = 0

    def __call__(self, x: Any) -> Any:
        self.n += int(np.size(x))
        return self.f(x)


Method = Callable[[Callable[[Any], Any], float, int], Estimate]


def diffkit_default(f: Callable[[Any], Any], x: float, n: int) -> Estimate:
    """diffkit's numeric backend, default settings."""
    r = Numeric().derivative_result(f, x, order=n)
    return Estimate(float(r.value), float(r.error), r.nfev)


def plain_central(f: Callable[[Any], Any], x: float, n: int) -> Estimate:
    """Central differences with the textbook step (``eps**(1/3)``, ``eps**(1/4)`` for n = 2)."""
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
    return Estimate(float(v), math.nan, c.n)


def numdifftools_default(f: Callable[[Any], Any], x: float, n: int) -> Estimate:
    """``numdifftools.Derivative``, default settings."""
    import numdifftools as nd

    c = Counter(f)
    res = nd.Derivative(c, n=n, full_output=True)(x)
    return Estimate(float(res.estimate), float(res.error_estimate), c.n)


def scipy_default(f: Callable[[Any], Any], x: float, n: int) -> Estimate:
    """``scipy.differentiate.derivative`` (``hessian`` for n = 2), default settings."""
    from scipy import differentiate

    c = Counter(f)
    if n == 1:
        res = differentiate.derivative(c, x)
        return Estimate(float(res.df), float(res.error), c.n)
    res = differentiate.hessian(lambda v: c(v[0]), np.array([x]))
    return Estimate(float(res.ddf[0, 0]), float(res.error[0, 0]), c.n)


def _version_of(module: str, package: str) -> Callable[[], str | None]:
    def version() -> str | None:
        import importlib

        try:
            importlib.import_module(module)
            return importlib.import_module(package).__version__
        except Exception:  # noqa: BLE001 - missing, or too old to have the module: not available
            return None

    return version


# (label, method, version (None: unavailable) or "" for no package, peer)
METHODS: list[tuple[str, Method, Callable[[], str | None], bool]] = [
    ("diffkit (default)", diffkit_default, lambda: __version__, False),
    ("plain central", plain_central, lambda: "", False),
    ("numdifftools", numdifftools_default, _version_of("numdifftools", "numdifftools"), True),
    ("scipy.differentiate", scipy_default, _version_of("scipy.differentiate", "scipy"), True),
]
"""(label, method, version getter, is a peer). The getter returns None when the method is not importable."""


def available_methods(peers: bool = True) -> list[tuple[str, Method, str | None]]:
    """``(label, method, version)`` of the methods that can run (the peers only if ``peers`` and installed)."""
    out = []
    for label, method, version, is_peer in METHODS:
        if is_peer and not peers:
            continue
        v = version()
        if v is None:
            continue
        out.append((label, method, v or None))
    return out


def select_cases(cases: Sequence[str] | None = None, limit: int | None = None) -> list[Case]:
    """The cases named in ``cases`` (all by default), the first ``limit`` of them if given."""
    chosen = list(CASES)
    if cases is not None:
        by_name = {c[0]: c for c in CASES}
        unknown = [c for c in cases if c not in by_name]
        if unknown:
            raise InvalidArgument(f"accuracy benchmark: unknown case(s) {', '.join(unknown)}; "
                                  f"choose from {', '.join(by_name)}")
        chosen = [by_name[c] for c in cases]
    return chosen[:limit] if limit is not None else chosen


def _numpy_fn(f: Callable[[Any, Any], Any]) -> Callable[[Any], Any]:
    return lambda v: f(v, np)


def _answers(method: Method, cases: Sequence[Case]) -> list[tuple[Estimate, Estimate]]:
    """The method's first and second derivative on every case (warnings silenced, a fresh function each)."""
    out = []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for _, f, x in cases:
            fn = _numpy_fn(f)
            out.append((method(fn, x, 1), method(fn, x, 2)))
    return out


def _median(xs: Sequence[float]) -> float:
    return float(np.median(xs)) if len(xs) else math.nan


def evaluate(label: str, method: Method, cases: Sequence[Case],
             truths: dict[tuple[str, int], float] | None = None, version: str | None = None,
             per_case: bool = False) -> dict[str, Any]:
    """One method's row (without ``seconds_per_case``): digits, evaluations, bound rate.

    ``truths`` maps ``(case name, order)`` to the true derivative (computed
    with :func:`truth` where missing). With ``per_case``, the row has a
    ``cases`` list: ``{"case", "x", "digits", "second_digits", "evals", "bounded"}``
    (``bounded`` is None when the method gives no error estimate).
    """
    truths = {} if truths is None else truths
    for name, f, x in cases:
        for n in (1, 2):
            if (name, n) not in truths:
                truths[(name, n)] = truth(f, x, n)
    answers = _answers(method, cases)
    d1, d2, evals, evals2, covered, rows = [], [], [], [], [], []
    for (name, _, x), (r1, r2) in zip(cases, answers):
        t1, t2 = truths[(name, 1)], truths[(name, 2)]
        d1.append(digits(r1.value, t1))
        d2.append(digits(r2.value, t2))
        evals.append(float(r1.nfev))
        evals2.append(float(r2.nfev))
        bounded = None if math.isnan(r1.error) else bool(abs(r1.value - t1) <= r1.error)
        if bounded is not None:
            covered.append(bounded)
        rows.append({"case": name, "x": float(x), "digits": d1[-1], "second_digits": d2[-1],
                     "evals": float(r1.nfev), "bounded": bounded})
    row: dict[str, Any] = {
        "section": "numeric", "method": label, "version": version,
        "median_digits": _median(d1), "worst_digits": float(min(d1)) if d1 else math.nan,
        "median_evals": _median(evals),
        "bound_rate": float(np.mean(covered)) if covered else None,
        "second_median_digits": _median(d2), "second_worst_digits": float(min(d2)) if d2 else math.nan,
        "second_median_evals": _median(evals2),
        "seconds_per_case": None, "n_cases": len(cases),
    }
    if per_case:
        row["cases"] = rows
    return row


def _meets(row: dict[str, Any]) -> bool:
    ok = True
    for key, (sense, target) in TARGETS.items():
        v = row.get(key)
        ok = ok and v is not None and math.isfinite(v) and (v >= target if sense == ">=" else v <= target)
    return bool(ok)


def run(quick: bool = False, progress: Callable[[str], None] | None = None, peers: bool = True,
        cases: Sequence[str] | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """The numeric section: one JSON-able row per available method.

    Every row: ``section`` ("numeric"), ``method``, ``version`` (None for plain
    central differences), ``median_digits``, ``worst_digits``, ``median_evals``,
    ``bound_rate`` (fraction of cases whose error estimate bounds the true error,
    None without estimates), ``second_median_digits``, ``second_worst_digits``,
    ``second_median_evals``, ``seconds_per_case`` (first and second derivative of
    one case: median over at least 7 timed passes), ``n_cases``, ``timed_cases``,
    ``target`` and ``ok`` (diffkit's targets, None on the other rows); diffkit's
    row also has ``cases``, the digits of every case (see :func:`evaluate`).

    Args:
        quick: accuracy on all cases either way; the timing passes run over
            every fifth case instead of all of them.
        progress: called with a short message as each method starts.
        peers: also numdifftools and scipy.differentiate, when installed.
        cases, limit: run only these cases / the first ``limit`` (for tests).
    """
    chosen = select_cases(cases, limit)
    if not chosen:
        raise InvalidArgument(f"accuracy benchmark: no cases to run (cases={cases!r}, limit={limit!r})")
    if progress:
        progress(f"numeric: mpmath truth of {len(chosen)} cases")
    truths = {(name, n): truth(f, x, n) for name, f, x in chosen for n in (1, 2)}
    timed = chosen[::5] if quick and len(chosen) > 10 else chosen
    rows = []
    for label, method, version in available_methods(peers):
        if progress:
            progress(f"numeric: {label}")
        is_diffkit = label.startswith("diffkit")
        row = evaluate(label, method, chosen, truths, version, per_case=is_diffkit)
        row["timed_cases"] = len(timed)
        row["target"] = TARGET_TEXT if is_diffkit else None
        row["ok"] = _meets(row) if is_diffkit else None
        if is_diffkit:
            row["cases"] = row.pop("cases")  # last: the long part
        rows.append((row, method))
    if progress:
        progress(f"numeric: timing {len(rows)} methods on {len(timed)} cases")
    stats = timeit([functools.partial(_answers, method, timed) for _, method in rows], budget=1.0 if quick else 2.0,
                   min_repeats=7)
    out = []
    for (row, _), st in zip(rows, stats):
        row["seconds_per_case"] = st.median / len(timed)
        out.append(row)
    return out
