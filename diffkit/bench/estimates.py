"""Do the numeric backend's error estimates bound its errors? Measured against 50-digit truth.

``bench/bench_estimates.py`` prints what :func:`run` measures. Every case is a
function, a point and an operator (first derivatives: ``grad``, ``jacobian``,
``jvp``, ``derivative`` of order 1; second: ``hessian``, ``derivative`` of
order 2; third: ``derivative`` of order 3), differentiated by
``dk.Numeric()`` with default settings through its ``*_result`` methods. The
truth is :func:`diffkit.precise` (the symbolic derivative evaluated in mpmath
at :data:`DPS` digits, at the exact binary point). Per case:

* the true error of every element against the estimate ``NumericResult.error``:
  the case is *bounded* when every element's error is at most its estimate;
* whether the result said it cannot bound its error (``NumericResult.bounded``
  False somewhere: a kink at the point, a sequence that never converged ...):
  such an element's estimate is conservative, and it still counts as bounded
  only if it is at least the true error;
* digits: ``-log10`` of the largest error over the largest true value
  (normwise relative; absolute when the truth is all zeros), capped at 16;
* evaluations, method, time.

Three groups of cases (:func:`cases`):

* ``random``: expressions drawn by :func:`diffkit.strategies.functions`
  (smooth and with kinks; one and two variables), through Hypothesis with a
  fixed seed and no database, so the same Hypothesis gives the same functions;
  points from a seeded NumPy generator, kept when
  :func:`diffkit.strategies.point_problem` finds nothing within ``1e-3``;
* ``standard``: every case of the built-in ``standard`` suite (its kinks at the
  kink included: the truth there is the table's convention);
* ``optimisation``: optimisation test functions with ``abs``, large magnitudes
  and oscillation (Schwefel, Rastrigin far from the origin, Griewank, Ackley,
  the egg holder, Huber's loss at its joint ...), at seeded points, some scaled.

A case whose truth cannot be computed (SymPy cannot trace it, or it is not
finite) is left out and counted. Drawing the random functions needs
Hypothesis (the ``test`` extra).
"""

from __future__ import annotations

import math
import multiprocessing
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import mpmath
import numpy as np

from ..errors import InvalidArgument

__all__ = ["DPS", "GOAL", "EstimateCase", "cases", "measure", "run", "summarize", "format_report", "meets_goal"]

DPS = 50
"""Digits of the mpmath truth."""

DIGITS_CAP = 16.0

GOAL = {"bound_fraction": 0.995, "first_median_digits": 15.0}
"""The targets: estimates bound the true error in at least 99.5% of the cases; first derivatives
reach a median of 15 digits."""

SEED = 20240611
"""Seed of the case generation (Hypothesis' and NumPy's)."""


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EstimateCase:
    """One measurement: ``op`` of ``f`` at ``args``.

    ``f`` is an expression string, a ``"module:function"`` name or a top-level
    function (cases cross process boundaries, so they pickle).
    """

    id: str
    group: str
    f: Any
    args: tuple[Any, ...]
    op: str = "grad"                 # derivative, grad, hessian, jacobian, jvp
    order: int = 1                   # for derivative
    argnums: Any = None              # default: every argument
    tangents: tuple[Any, ...] | None = None
    tags: tuple[str, ...] = field(default=())
    variables: tuple[str, ...] | None = None   # of an expression, in argument order

    @property
    def degree(self) -> int:
        """The derivative order measured: 1, 2 or 3."""
        if self.op == "derivative":
            return int(self.order)
        return 2 if self.op == "hessian" else 1

    def function(self) -> Any:
        from ..core.function import Function, as_function
        from ..harness.cases import resolve

        if isinstance(self.f, str) and self.variables is not None:
            return Function.parse(self.f, variables=self.variables, name=self.id)
        if isinstance(self.f, str):
            return resolve(self.f, name=self.id)
        return as_function(self.f)

    def nums(self) -> Any:
        if self.argnums is not None:
            return tuple(self.argnums) if isinstance(self.argnums, (list, tuple)) else int(self.argnums)
        return tuple(range(len(self.args))) if len(self.args) != 1 else 0


# -- optimisation test functions: top-level, so cases pickle ------------------------


def oscillating_quartic(t: Any) -> Any:
    """``100 (|t| - 5)**4 + 1000 sin(3 pi t)**2``: a quartic bowl with a fast ripple (period 1/3)."""
    return 100.0 * (np.abs(t) - 5.0) ** 4 + 1000.0 * np.sin(3.0 * np.pi * t) ** 2


def huber(r: Any) -> Any:
    """Huber's loss with ``delta = 1``, written with ``np.where`` as users do: C1 at ``|r| = 1``."""
    return np.where(np.abs(r) <= 1.0, 0.5 * r ** 2, 1.0 * (np.abs(r) - 0.5 * 1.0))


def huber_sum(r: Any) -> Any:
    """Huber's loss summed over a vector."""
    return np.sum(np.where(np.abs(r) <= 1.0, 0.5 * r ** 2, np.abs(r) - 0.5))


def schwefel(x: Any) -> Any:
    """Schwefel's function ``418.9829 n - sum x sin(sqrt|x|)`` on ``[-500, 500]``."""
    return 418.9829 * x.shape[0] - np.sum(x * np.sin(np.sqrt(np.abs(x))))


def rastrigin(x: Any) -> Any:
    """Rastrigin's function ``10 n + sum x^2 - 10 cos(2 pi x)``."""
    return 10.0 * x.shape[0] + np.sum(x ** 2 - 10.0 * np.cos(2.0 * np.pi * x))


# Constants that are not powers of two multiply here rather than divide: dk.precise builds
# x / c as x * c**-1 with c**-1 rounded to c's 53 bits, and inside cos(x / sqrt(2)) at x = 539
# that moved the "truth" by 4e-15 (about the error of the float computation itself).


def rastrigin_scaled(x: Any) -> Any:
    """Rastrigin of ``x / 1000`` times 1e6: the same ripple on a scale of 1000."""
    return 1e6 * rastrigin(x * 0.001)


def griewank(x: Any) -> Any:
    """Griewank's function ``1 + sum x^2 / 4000 - prod cos(x_i / sqrt(i))`` on ``[-600, 600]``."""
    inv = 1.0 / np.sqrt(np.arange(1.0, x.shape[0] + 1.0))
    return 1.0 + np.sum(x ** 2) * 0.00025 - np.prod(np.cos(x * inv))


def ackley(x: Any) -> Any:
    """Ackley's function (a = 20, b = 0.2, c = 2 pi) on ``[-32, 32]``."""
    n = x.shape[0]
    r = np.sqrt(np.sum(x ** 2) / n)
    return -20.0 * np.exp(-0.2 * r) - np.exp(np.sum(np.cos(2.0 * np.pi * x)) / n) + 20.0 + math.e


def eggholder(x: Any) -> Any:
    """The egg holder on ``[-512, 512]^2``: square roots of absolute values under sines."""
    a, b = x[0], x[1] + 47.0
    return -b * np.sin(np.sqrt(np.abs(a / 2.0 + b))) - a * np.sin(np.sqrt(np.abs(a - b)))


def styblinski_tang_big(x: Any) -> Any:
    """Styblinski-Tang times 1e8: values near 1e9."""
    return 1e8 * np.sum(x ** 4 - 16.0 * x ** 2 + 5.0 * x) / 2.0


def levy(x: Any) -> Any:
    """Levy's function on ``[-10, 10]^n``."""
    w = 1.0 + (x - 1.0) / 4.0
    head = np.sin(np.pi * w[0]) ** 2
    mid = np.sum((w[:-1] - 1.0) ** 2 * (1.0 + 10.0 * np.sin(np.pi * w[:-1] + 1.0) ** 2))
    tail = (w[-1] - 1.0) ** 2 * (1.0 + np.sin(2.0 * np.pi * w[-1]) ** 2)
    return head + mid + tail


def michalewicz(x: Any) -> Any:
    """Michalewicz's function (m = 10): steep valleys, ``sin(i x^2 / pi)**20``."""
    i = np.arange(1.0, x.shape[0] + 1.0) * (1.0 / np.pi)
    return -np.sum(np.sin(x) * np.sin(i * x ** 2) ** 20)


def abs_ripple(t: Any) -> Any:
    """``|t| * 1e4 + cos(40 t)``: a large slope from abs with a fast ripple."""
    return 1e4 * np.abs(t) + np.cos(40.0 * t)


def shifted_abs_quartic(t: Any) -> Any:
    """``(|t - 3| + 1)**4 * 1e3 + sin(t)**2``."""
    return 1e3 * (np.abs(t - 3.0) + 1.0) ** 4 + np.sin(t) ** 2


def big_sine(t: Any) -> Any:
    """``sin(t)`` far from the origin, times 1e10."""
    return 1e10 * np.sin(t)


_SCALAR_OPT: list[tuple[Callable[[Any], Any], float, float]] = [
    (oscillating_quartic, -40.0, 40.0),
    (abs_ripple, -5.0, 5.0),
    (shifted_abs_quartic, -20.0, 20.0),
    (big_sine, 1e3, 1e5),
]

_VECTOR_OPT: list[tuple[Callable[[Any], Any], int, float]] = [
    (schwefel, 2, 500.0),
    (schwefel, 3, 500.0),
    (rastrigin, 2, 100.0),
    (rastrigin, 3, 1e4),
    (rastrigin_scaled, 2, 5e3),
    (griewank, 2, 600.0),
    (griewank, 3, 600.0),
    (ackley, 2, 32.0),
    (eggholder, 2, 512.0),
    (styblinski_tang_big, 2, 5.0),
    (levy, 2, 10.0),
    (michalewicz, 2, 3.0),
]


def _optimisation_cases(rng: np.random.Generator, points: int) -> list[EstimateCase]:
    out: list[EstimateCase] = []
    # the three examples the estimates were fixed on, at their exact points
    out += [EstimateCase("oscillating_quartic@-27.9842/d1", "optimisation", oscillating_quartic, (-27.9842,),
                         "derivative", 1, tags=("example",)),
            EstimateCase("huber@1/d1", "optimisation", huber, (1.0,), "derivative", 1, tags=("example", "kink")),
            EstimateCase("huber@-1/d1", "optimisation", huber, (-1.0,), "derivative", 1, tags=("example", "kink")),
            EstimateCase("softplus(x)*y**2@(1,0)/hessian", "optimisation", "softplus(x)*y**2", (1.0, 0.0),
                         "hessian", tags=("example",))]
    for fn, lo, hi in _SCALAR_OPT:
        for k in range(points):
            x = float(np.round(rng.uniform(lo, hi), 4))
            for n in (1, 2, 3):
                out.append(EstimateCase(f"{fn.__name__}@{x}/d{n}", "optimisation", fn, (x,), "derivative", n))
    for k in range(points):
        x = float(np.round(rng.uniform(-3.0, 3.0), 3))
        out.append(EstimateCase(f"huber@{x}/d1", "optimisation", huber, (x,), "derivative", 1))
    for fn, dim, scale in _VECTOR_OPT:
        for k in range(points):
            x = np.round(rng.uniform(-scale, scale, dim), 4)
            label = f"{fn.__name__}{dim}@{np.array2string(x, separator=',')}"
            for op in ("grad", "hessian"):
                out.append(EstimateCase(f"{label}/{op}", "optimisation", fn, (x,), op))
    r = np.array([0.3, -1.0, 1.0, 2.5])  # joints at +-1
    out.append(EstimateCase("huber_sum@joints/grad", "optimisation", huber_sum, (r,), "grad", tags=("kink",)))
    return out


# -- the standard suite --------------------------------------------------------


def _standard_cases() -> list[EstimateCase]:
    from ..harness.builtin_suites import SUITES

    out = []
    rng = np.random.default_rng(SEED)
    for c in SUITES["standard"]():
        args = tuple(c.point())
        op = c.op
        tangents = None
        if op == "vjp":
            op = "jacobian"  # what the harness asks the numeric backend for a vjp
        if op == "jvp":
            tangents = tuple(rng.uniform(-1.0, 1.0, np.shape(a)) if np.ndim(a) else float(rng.uniform(-1, 1))
                             for a in args)
        argnums = c.argnums
        if c.op in ("vjp", "jvp"):
            argnums = tuple(range(len(args)))
        out.append(EstimateCase(f"standard:{c.id}", "standard", c.f, args, op, c.order, argnums, tangents,
                                tuple(c.tags)))
    return out


# -- random functions from the property-test strategies -------------------------


def _draw_functions(variables: tuple[str, ...], smooth: bool, count: int, seed: int,
                    max_depth: int = 3) -> list[str]:
    """``count`` distinct expressions of ``diffkit.strategies.functions``, deterministically (seeded)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from hypothesis import strategies as st

    from ..strategies import functions

    found: list[str] = []
    seen: set[str] = set()

    @hseed(seed)
    @settings(max_examples=8 * count, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def draw(data: Any) -> None:
        F = data.draw(functions(variables=variables, max_depth=max_depth, smooth=smooth))
        if len(found) >= count:
            raise _Enough  # stops Hypothesis (it replays this example: it raises again)
        src = F.source
        if src in seen or not any(v in _names(src) for v in variables):
            return
        seen.add(src)
        found.append(src)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            draw()
        except _Enough:
            pass
    return found[:count]


class _Enough(Exception):
    """Raised inside the Hypothesis test once enough functions were drawn."""


def _names(src: str) -> set[str]:
    import re

    return set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", src))


def _random_point(src: str, variables: tuple[str, ...], rng: np.random.Generator, tries: int = 20
                  ) -> tuple[float, ...] | None:
    from ..core.function import Function
    from ..strategies import point_problem

    F = Function.parse(src, variables=variables)
    for _ in range(tries):
        # mostly in [-2, 2] as the property tests draw, sometimes wider
        width = 2.0 if rng.uniform() < 0.8 else 10.0
        args = tuple(float(np.round(v, 6)) for v in rng.uniform(-width, width, len(variables)))
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                if point_problem(F, args, 1e-3) is None:
                    return args
            except Exception:  # noqa: BLE001 - a point the probe cannot judge: try another
                continue
    return None


def _random_cases(n1: int, n2: int, seed: int) -> list[EstimateCase]:
    rng = np.random.default_rng(seed)
    out: list[EstimateCase] = []
    one = _draw_functions(("x",), True, (2 * n1) // 3, seed) + _draw_functions(("x",), False, n1 - (2 * n1) // 3,
                                                                               seed + 1)
    two = _draw_functions(("x", "y"), True, (2 * n2) // 3, seed + 2) + \
        _draw_functions(("x", "y"), False, n2 - (2 * n2) // 3, seed + 3)
    for src in one:
        p = _random_point(src, ("x",), rng)
        if p is None:
            continue
        for n in (1, 2, 3):
            out.append(EstimateCase(f"{src}@{p[0]}/d{n}", "random", src, p, "derivative", n,
                                    variables=("x",)))
    for src in two:
        p = _random_point(src, ("x", "y"), rng)
        if p is None:
            continue
        for op in ("grad", "hessian"):
            out.append(EstimateCase(f"{src}@{p}/{op}", "random", src, p, op, argnums=(0, 1),
                                    variables=("x", "y")))
    return out


def cases(quick: bool = False, seed: int = SEED) -> list[EstimateCase]:
    """The cases: random functions, the standard suite, optimisation functions.

    ``quick`` takes 60 of them: the examples the estimates were fixed on, and
    fewer random functions, suite cases and points, each group represented.
    """
    rng = np.random.default_rng(seed + 7)
    if quick:
        every = _random_cases(8, 10, seed) + _standard_cases()[::9] + _optimisation_cases(rng, 1)
        examples = [c for c in every if "example" in c.tags]
        picked: list[EstimateCase] = []
        groups = ("random", "standard", "optimisation")
        for i, g in enumerate(groups):
            rest = [c for c in every if c.group == g and "example" not in c.tags]
            want = (56 - len(picked)) // (len(groups) - i)
            picked += rest[::max(1, len(rest) // want)][:want]
        return examples + picked
    return _random_cases(160, 230, seed) + _standard_cases() + _optimisation_cases(rng, 8)


# ---------------------------------------------------------------------------
# Measuring one case
# ---------------------------------------------------------------------------


def _flat(v: Any) -> list[Any]:
    if isinstance(v, tuple):
        return [e for part in v for e in _flat(part)]
    return list(np.ravel(np.asarray(v, dtype=object)))


def _truth(F: Any, case: EstimateCase) -> list[Any]:
    from ..backends.symbolic import precise

    if case.op == "jvp":
        J = precise(F, case.args, op="jacobian", argnums=tuple(range(len(case.args))), dps=DPS)
        with mpmath.workdps(DPS):
            total = None
            for j, t in zip(J, case.tangents or ()):
                tt = np.asarray(t, dtype=float)
                jm = np.asarray(j, dtype=object)
                tm = np.vectorize(mpmath.mpf, otypes=[object])(tt) if tt.ndim else mpmath.mpf(float(tt))
                term = np.tensordot(jm, tm, axes=tt.ndim) if tt.ndim else jm * tm
                total = term if total is None else total + term
        return _flat(total)
    op = "jacobian" if case.op == "jacobian" else case.op
    return _flat(precise(F, case.args, op=op, argnums=case.nums(), order=case.order, dps=DPS))


def _numeric(F: Any, case: EstimateCase) -> Any:
    from ..backends.numeric import Numeric

    B = Numeric()
    if case.op == "derivative":
        return B.derivative_result(F, case.args[0], order=case.order)
    if case.op == "grad":
        return B.gradient_result(F, case.args, case.nums())
    if case.op == "hessian":
        return B.hessian_result(F, case.args, case.nums())
    if case.op == "jacobian":
        return B.jacobian_result(F, case.args, case.nums())
    if case.op == "jvp":
        return B.jvp_result(F, case.args, case.tangents)
    raise InvalidArgument(f"estimates benchmark: unknown op {case.op!r}")


def measure(case: EstimateCase) -> dict[str, Any]:
    """One case's row: ``id``, ``group``, ``op``, ``degree``, ``status`` ("ok" or why it was left
    out), ``error`` (largest true error), ``estimate`` (the estimate of that element),
    ``ratio`` (largest error / estimate), ``bounded``, ``said_unbounded``, ``digits``,
    ``nfev``, ``method``, ``reason``, ``seconds``."""
    row: dict[str, Any] = {"id": case.id, "group": case.group, "op": case.op, "degree": case.degree,
                           "tags": list(case.tags)}
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            F = case.function()
            truth = _truth(F, case)
        except Exception as e:  # noqa: BLE001 - no truth: the case is left out, and counted
            row["status"] = f"no truth ({type(e).__name__})"
            return row
        with mpmath.workdps(DPS):
            if not all(mpmath.isfinite(mpmath.mpf(t)) for t in truth):
                row["status"] = "truth not finite"
                return row
        t0 = time.perf_counter()
        try:
            r = _numeric(F, case)
        except Exception as e:  # noqa: BLE001 - a crash is a result too: reported, never bounded
            row.update(status="ok", error=math.inf, estimate=math.nan, ratio=math.inf, bounded=False,
                       said_unbounded=False, digits=0.0, nfev=0, method="raised",
                       reason=f"{type(e).__name__}: {e}", seconds=time.perf_counter() - t0)
            return row
        seconds = time.perf_counter() - t0
    values = [float(v) for v in _flat(r.value)]
    errors = [float(e) for e in _flat(r.error)]
    flags = [bool(b) for b in _flat(getattr(r, "bounded", True))]
    if len(flags) == 1 and len(values) > 1:
        flags = flags * len(values)
    with mpmath.workdps(DPS):
        true_err = [abs(mpmath.mpf(v) - mpmath.mpf(t)) if math.isfinite(v) else mpmath.inf
                    for v, t in zip(values, truth)]
        ok = [bool(e <= mpmath.mpf(est)) if not math.isnan(est) else False for e, est in zip(true_err, errors)]
        scale = max((abs(mpmath.mpf(t)) for t in truth), default=mpmath.mpf(0))
        worst = max(range(len(values)), key=lambda i: _ratio(true_err[i], errors[i])) if values else 0
        big = max(true_err, default=mpmath.mpf(0))
        rel = big / scale if scale > 0 else big
        digits = DIGITS_CAP if rel == 0 else (0.0 if not mpmath.isfinite(rel)
                                              else min(DIGITS_CAP, float(-mpmath.log10(rel))))
    row.update(status="ok", error=float(true_err[worst]) if values else 0.0,
               estimate=errors[worst] if values else 0.0,
               ratio=max((_ratio(e, est) for e, est in zip(true_err, errors)), default=0.0),
               bounded=all(ok), said_unbounded=not all(flags), digits=digits, nfev=int(r.nfev),
               method=r.method, reason=r.reason, seconds=seconds, elements=len(values))
    return row


def _ratio(err: Any, est: float) -> float:
    e = float(err)
    if e == 0:
        return 0.0
    if math.isnan(est) or est <= 0:
        return math.inf
    return e / est


# ---------------------------------------------------------------------------
# Running and summarizing
# ---------------------------------------------------------------------------


def run(quick: bool = False, processes: int | None = None, progress: Callable[[str], None] | None = None,
        selection: Sequence[EstimateCase] | None = None) -> dict[str, Any]:
    """Measure every case (in ``processes`` worker processes; 1 runs here) and summarize.

    Returns :func:`summarize`'s dictionary with the per-case ``rows``.
    """
    chosen = list(selection) if selection is not None else cases(quick=quick)
    t0 = time.perf_counter()
    if progress:
        progress(f"estimates: {len(chosen)} cases")
    procs = processes if processes is not None else (1 if quick else min(2, multiprocessing.cpu_count()))
    if procs <= 1:
        rows = [measure(c) for c in chosen]
    else:
        ctx = multiprocessing.get_context("spawn" if "fork" not in multiprocessing.get_all_start_methods()
                                          else "fork")
        with ctx.Pool(procs) as pool:
            rows = pool.map(measure, chosen, chunksize=8)
    out = summarize(rows)
    out["seconds"] = time.perf_counter() - t0
    return out


def _median(xs: Sequence[float]) -> float:
    return float(np.median(xs)) if len(xs) else math.nan


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Cases, fraction bounded, results that said they cannot bound, digits and evaluations per order."""
    done = [r for r in rows if r.get("status") == "ok"]
    left_out = [r for r in rows if r.get("status") != "ok"]
    per_degree = {}
    for d in sorted({r["degree"] for r in done}):
        sel = [r for r in done if r["degree"] == d]
        per_degree[d] = {"cases": len(sel), "bounded": float(np.mean([r["bounded"] for r in sel])),
                         "median_digits": _median([r["digits"] for r in sel]),
                         "median_nfev": _median([r["nfev"] for r in sel]),
                         "said_unbounded": sum(r["said_unbounded"] for r in sel)}
    per_group = {}
    for g in sorted({r["group"] for r in done}):
        sel = [r for r in done if r["group"] == g]
        per_group[g] = {"cases": len(sel), "bounded": float(np.mean([r["bounded"] for r in sel]))}
    misses = sorted((r for r in done if not r["bounded"]), key=lambda r: -r["ratio"])
    return {
        "cases": len(done),
        "left_out": len(left_out),
        "left_out_why": sorted({r["status"] for r in left_out}),
        "bound_fraction": float(np.mean([r["bounded"] for r in done])) if done else math.nan,
        "said_unbounded": sum(r["said_unbounded"] for r in done),
        "per_degree": per_degree,
        "per_group": per_group,
        "worst": misses,
        "rows": list(rows),
    }


def meets_goal(summary: dict[str, Any]) -> bool:
    """The goals of :data:`GOAL`: the bound fraction and the median digits of first derivatives."""
    first = summary["per_degree"].get(1, {})
    return bool(summary["bound_fraction"] >= GOAL["bound_fraction"]
                and first.get("median_digits", 0.0) >= GOAL["first_median_digits"])


def format_report(summary: dict[str, Any], worst: int = 12) -> str:
    """The printed report of :func:`run`'s summary."""
    lines = [f"{summary['cases']} cases (function, point, order), truth: diffkit.precise at {DPS} digits"
             + (f"; {summary['left_out']} left out ({', '.join(summary['left_out_why'])})"
                if summary["left_out"] else "")]
    lines.append(f"estimate >= true error: {100 * summary['bound_fraction']:.2f}% "
                 f"(goal >= {100 * GOAL['bound_fraction']:.1f}%)")
    lines.append(f"results that said they cannot bound their error: {summary['said_unbounded']}")
    lines.append(f"{'order':<8}{'cases':>7}{'bounded':>10}{'median digits':>15}{'median evals':>14}"
                 f"{'said unbounded':>16}")
    for d, s in summary["per_degree"].items():
        lines.append(f"{d:<8}{s['cases']:>7}{100 * s['bounded']:>9.2f}%{s['median_digits']:>15.1f}"
                     f"{s['median_nfev']:>14.0f}{s['said_unbounded']:>16}")
    lines.append("by group: " + ", ".join(f"{g} {s['cases']} ({100 * s['bounded']:.1f}% bounded)"
                                          for g, s in summary["per_group"].items()))
    if summary["worst"]:
        lines.append("worst cases (true error / estimate):")
        for r in summary["worst"][:worst]:
            lines.append(f"  {r['ratio']:9.3g}x  error {r['error']:.3g}  estimate {r['estimate']:.3g}  "
                         f"{r['method']}  {r['id'][:90]}")
    if "seconds" in summary:
        lines.append(f"{summary['seconds']:.0f} s")
    return "\n".join(lines)
