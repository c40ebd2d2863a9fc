"""Speed and size of the symbolic backend: setup, per-call time and operation counts.

The ``symbolic`` section of ``diffkit bench`` (and of ``bench/bench_symbolic.py``):

1. Gradient of f(x) = sum(sin(x_i) x_i^2) at n = 200: setup time (trace +
   derivative + cse + lambdify, the median of a few fresh builds; target
   <= 1 s, aim 0.3 s) and per-call time against the reverse AD backend
   (target <= 3x).
2. The logistic map's derivative at n = 10, evaluated at 100,000 points: the
   compiled DAG-aware derivative against forward and reverse AD, and against
   SymPy's naive derivative lambdified with and without cse.
3. Growth with n (section ``symbolic-scaling``): the same measurements for
   other sizes of both.

Every row also has the derivative's size in operations: ``ops_dag`` for
diffkit's DAG-aware derivative (the operations of its cse form, i.e. with
shared subexpressions counted once), ``ops_naive`` for ``sympy.diff`` on the
expression tree (``sympy.count_ops``, shared subexpressions counted each
time) and ``ops_cse`` for that naive derivative after cse: the numbers of
``diffkit swell`` (``dag_cse_ops``, ``naive_ops``, ``cse_ops``).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

import numpy as np
import sympy

from ..backends.symbolic import SIZE_LIMIT, Compiled, compile_derivative, derivative_exprs, trace_args
from ..operators import grad, jvp, vjp
from ..swell import logistic
from .timing import Stat, timeit

__all__ = ["SCALING", "TARGET_TEXT", "cse_ops", "logistic_row", "op_counts", "run", "sum_sin_row", "sum_sin_sq"]

TARGET_TEXT = "setup <= 1 s, call <= 3x reverse"

SCALING = {"sum sin(x) x^2": ((25, 50, 100), (50, 100)), "logistic map": ((2, 4, 6, 8), (4, 8))}
"""case -> (sizes n of the default run, of the quick run) for the ``symbolic-scaling`` rows."""

def sum_sin_sq(x: Any) -> Any:
    """f(x) = sum(sin(x_i) x_i^2)."""
    return np.sum(np.sin(x) * x**2)


def _logistic(n: int) -> Callable[[Any], Any]:
    def l_n(x: Any) -> Any:
        return logistic(x, n)

    l_n.__name__ = f"logistic_{n}"
    return l_n


def _leaves(tree: Any) -> list[Any]:
    """The expressions of a derivative (a tuple over argnums of expressions or object arrays)."""
    out: list[Any] = []
    for t in tree if isinstance(tree, tuple) else (tree,):
        if isinstance(t, tuple):
            out.extend(_leaves(t))
        elif isinstance(t, np.ndarray):
            out.extend(t.ravel().tolist())
        else:
            out.append(t)
    return out


def cse_ops(exprs: Sequence[Any]) -> int:
    """``count_ops`` of the cse form of ``exprs``: the replacements plus the reduced expressions.

    The cse runs without canonical ordering (``order="none"``, as diffkit's
    compiler does): with it, SymPy sizes every subtree of a DAG-shaped
    derivative, exponential in the logistic map's n. The counts are those of
    :func:`diffkit.swell.cse_ops`.
    """
    replacements, reduced = sympy.cse(list(exprs), order="none")
    return int(sum(sympy.count_ops(r) for _, r in replacements) + sum(sympy.count_ops(r) for r in reduced))


def op_counts(fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int] = (0,)) -> dict[str, int]:
    """Size of the gradient of ``fun`` at the shapes of ``primals``, in operations.

    ``{"ops_dag": cse ops of diffkit's DAG-aware derivative, "ops_naive":
    count_ops of SymPy's naive derivative, "ops_cse": cse ops of the naive one}``.

    Example:
        >>> op_counts(lambda x: 4 * x * (1 - x), [0.3])
        {'ops_dag': 2, 'ops_naive': 2, 'ops_cse': 2}
    """
    traced = trace_args(fun, primals, SIZE_LIMIT)
    _, dag = derivative_exprs(fun, traced, "grad", argnums, method="dag")
    traced = trace_args(fun, primals, SIZE_LIMIT)
    _, naive = derivative_exprs(fun, traced, "grad", argnums, method="naive")
    naive_leaves = _leaves(naive)
    return {"ops_dag": cse_ops(_leaves(dag)), "ops_naive": int(sum(sympy.count_ops(e) for e in naive_leaves)),
            "ops_cse": cse_ops(naive_leaves)}


def _setup(fun: Callable[..., Any], primals: Sequence[Any], builds: int) -> tuple[dict[str, float], Compiled]:
    """Median setup of ``builds`` fresh trace + derivative + cse + lambdify, with its parts; the median build."""
    comps = sorted((compile_derivative(fun, primals, "grad", (0,)) for _ in range(builds)),
                   key=lambda c: c.setup_time)
    med = comps[len(comps) // 2]
    return ({"setup_seconds": med.setup_time, "trace_seconds": med.trace_time,
             "derivative_seconds": med.derivative_time, "compile_seconds": med.compile_time}, med)


def _row(section: str, case: str, n: int, setup: dict[str, float], call: Stat, reverse: Stat,
         ops: dict[str, int], target: bool) -> dict[str, Any]:
    return {
        "section": section, "case": case, "n": n, **setup,
        "call_seconds": call.median, "call_iqr_seconds": call.iqr,
        "reverse_call_seconds": reverse.median, "reverse_call_iqr_seconds": reverse.iqr,
        "ratio": call.median / reverse.median if reverse.median > 0 else math.nan,
        **ops, "target": TARGET_TEXT if target else None,
        "ok": (setup["setup_seconds"] <= 1.0 and call.median <= 3.0 * reverse.median) if target else None,
    }


def sum_sin_row(n: int = 200, quick: bool = False, section: str = "symbolic", target: bool = True,
                builds: int | None = None, budget: float | None = None) -> dict[str, Any]:
    """Gradient of :func:`sum_sin_sq` at n random points: setup, call vs reverse, sizes."""
    x = np.random.default_rng(0).normal(size=n)
    setup, _ = _setup(sum_sin_sq, [x], builds or (3 if quick else 5))
    gs = grad(sum_sin_sq, backend="symbolic")
    gr = grad(sum_sin_sq, backend="reverse")
    ts, tr = timeit([lambda: gs(x), lambda: gr(x)], budget=budget or (0.3 if quick else 1.0), min_repeats=7)
    ops = op_counts(sum_sin_sq, [x])
    return _row(section, "sum sin(x) x^2", n, setup, ts, tr, ops, target)


def logistic_row(n: int = 10, quick: bool = False, section: str = "symbolic", target: bool = True,
                 points: int = 100_000, variants: bool = True, builds: int | None = None,
                 budget: float | None = None) -> dict[str, Any]:
    """The logistic map l_n's derivative at ``points`` points: the compiled DAG-aware derivative vs AD.

    ``call_seconds`` is the compiled derivative evaluated on all the points,
    ``reverse_call_seconds`` ``dk.vjp`` with its ``vjp_fn`` applied. With
    ``variants`` the row also has ``variants``: ``[{"method", "call_seconds",
    "iqr_seconds"}]`` for forward AD, reverse AD, reverse AD's ``vjp_fn`` alone,
    and SymPy's naive derivative lambdified with cse and (not in quick mode,
    about 1 s a call at n = 10) without; and ``naive_cse_setup_seconds``.
    """
    f = _logistic(n)
    pts = np.random.default_rng(1).uniform(0.0, 1.0, points)
    ones = np.ones_like(pts)
    setup, dag = _setup(f, [0.3], builds or (3 if quick else 5))
    fns: list[tuple[str, Callable[[], Any]]] = [
        ("symbolic DAG-aware, compiled", lambda: dag.evaluate(pts)),
        ("reverse AD (vjp)", lambda: vjp(f, pts)[1](ones)),
    ]
    extra: dict[str, Any] = {}
    if variants:
        xs = sympy.Symbol("x", real=True)
        naive = sympy.diff(logistic(xs, n), xs)
        t0 = time.perf_counter()
        naive_cse = sympy.lambdify([xs], naive, "numpy", cse=True)
        extra["naive_cse_setup_seconds"] = time.perf_counter() - t0
        rev_fn = vjp(f, pts)[1]
        fns += [
            ("forward AD (jvp)", lambda: jvp(f, (pts,), (ones,), backend="forward")),
            ("reverse AD (vjp_fn only)", lambda: rev_fn(ones)),
            ("SymPy naive diff, lambdify + cse", lambda: naive_cse(pts)),
        ]
        if not quick:
            naive_plain = sympy.lambdify([xs], naive, "numpy")
            fns.append(("SymPy naive diff, lambdify", lambda: naive_plain(pts)))
    stats = timeit([fn for _, fn in fns], budget=budget or (0.5 if quick else 3.0), min_repeats=7)
    row = _row(section, "logistic map", n, setup, stats[0], stats[1], op_counts(f, [0.3]), target)
    row["points"] = points
    if variants:
        row.update(extra)
        row["variants"] = [{"method": name, "call_seconds": st.median, "iqr_seconds": st.iqr}
                           for (name, _), st in zip(fns, stats)]
    return row


def run(quick: bool = False, progress: Callable[[str], None] | None = None, peers: bool = True,
        n: int = 200, logistic_n: int = 10, scaling: dict[str, Sequence[int]] | None = None,
        points: int = 100_000) -> list[dict[str, Any]]:
    """The symbolic section: JSON-able rows (``peers`` is accepted and ignored: no peer here).

    Every row: ``section`` ("symbolic", or "symbolic-scaling" for the growth
    with n), ``case``, ``n``, ``setup_seconds`` (with ``trace_seconds``,
    ``derivative_seconds``, ``compile_seconds``), ``call_seconds`` and
    ``reverse_call_seconds`` (medians of >= 7 side-by-side calls, with their
    ``*_iqr_seconds``), ``ratio`` (call / reverse), ``ops_dag``, ``ops_naive``,
    ``ops_cse``, ``target`` (the targets' text on the two "symbolic" rows, None on
    the scaling rows) and ``ok``; the logistic map's rows add ``points`` and
    the main one ``variants`` (see :func:`logistic_row`).

    Args:
        quick: fewer builds, shorter budgets, fewer sizes, no naive lambdify without cse.
        progress: called with a short message as each part starts.
        n, logistic_n: the sizes of the two main rows.
        scaling: case -> sizes of the scaling rows (default :data:`SCALING`).
        points: points at which the logistic map's derivative is evaluated.
    """
    if scaling is None:
        scaling = {case: sizes[1] if quick else sizes[0] for case, sizes in SCALING.items()}
    rows = []
    if progress:
        progress(f"symbolic: sum sin(x) x^2, n = {n}")
    rows.append(sum_sin_row(n, quick))
    if progress:
        progress(f"symbolic: logistic map, n = {logistic_n}")
    rows.append(logistic_row(logistic_n, quick, points=points))
    for size in scaling.get("sum sin(x) x^2", ()):
        if progress:
            progress(f"symbolic scaling: sum sin(x) x^2, n = {size}")
        rows.append(sum_sin_row(size, quick, section="symbolic-scaling", target=False, builds=3,
                                budget=0.3))
    for size in scaling.get("logistic map", ()):
        if progress:
            progress(f"symbolic scaling: logistic map, n = {size}")
        rows.append(logistic_row(size, quick, section="symbolic-scaling", target=False, points=points,
                                 variants=False, builds=3, budget=0.2))
    return rows
