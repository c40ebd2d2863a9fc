"""Plots of diffkit's results, drawn with matplotlib (an optional extra: ``pip install 'diffkit[plot]'``).

* :func:`step_sweep`: the V curves of forward, central and complex-step
  differences (relative error against the step, log-log);
* :func:`swell`: expression swell on the logistic map (operation counts or
  times against n, from :func:`diffkit.swell.swell_table`);
* :func:`bench`: time ratios (gradient time / function time) as horizontal
  bars, with their targets;
* :func:`sigmoid`: the sigmoid and its derivative, computed by diffkit;
* :func:`report`: one cross-check report, each backend's error against its
  tolerance;
* :func:`suite`: a suite run, error / tolerance per case and backend, and the
  time per case; :func:`suite_plots` and :func:`png_base64` embed it in the
  HTML report.

matplotlib is imported inside the functions, never by ``import diffkit``, and
only its object-oriented API is used (a :class:`matplotlib.figure.Figure`,
no pyplot state), so the plots work headless and from threads. Every function
takes an optional ``ax`` to draw into and returns the Figure; save it with
``fig.savefig("name.png")``.

Example:
    >>> from diffkit import plots
    >>> fig = plots.sigmoid()
    >>> type(fig).__name__, len(fig.axes)
    ('Figure', 1)
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

from .errors import InvalidArgument, InvalidType

MISSING_MATPLOTLIB = "diffkit's plots need matplotlib: pip install 'diffkit[plot]'"

METHOD_COLORS = {"forward": "C0", "central": "C1", "complex": "C2"}
VERDICT_COLORS = {"ok": "#2e7d32", "fail": "#c62828", "error": "#8e24aa", "timeout": "#757575",
                  "convention": "#ef6c00", "unsupported": "#9e9e9e", "expected": "#1565c0"}
BACKEND_STYLE = {"symbolic": ("C0", "o"), "numeric": ("C1", "s"), "forward": ("C2", "^"), "reverse": ("C3", "v")}


def require_matplotlib() -> Any:
    """The ``matplotlib.figure.Figure`` class; a clear ImportError when matplotlib is missing.

    Example:
        >>> from diffkit.plots import require_matplotlib
        >>> require_matplotlib().__name__
        'Figure'
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(MISSING_MATPLOTLIB) from e
    return Figure


def _axes(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    """``(figure, axes)``: a new constrained-layout Figure, or the root figure of ``ax``."""
    Figure = require_matplotlib()
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        return fig, fig.add_subplot()
    return _root(ax.figure), ax


def _root(fig: Any) -> Any:
    """The top-level Figure of a (sub)figure."""
    while getattr(fig, "figure", fig) is not fig and getattr(fig, "figure", None) is not None:
        fig = fig.figure
    return fig


def _finite(v: Any) -> float | None:
    """``v`` as a float, or None for None, NaN, inf and what is not a number (JSON's "inf" strings too)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def png_base64(fig: Any, dpi: int = 100) -> str:
    """The figure as a base64-encoded PNG (what the HTML reports embed).

    Args:
        fig: a matplotlib Figure.
        dpi: resolution.

    Returns:
        ASCII text, for ``<img src="data:image/png;base64,...">``.

    Example:
        >>> import base64
        >>> from diffkit import plots
        >>> text = plots.png_base64(plots.bench([{"name": "f", "ratio": 2.0, "target": 3.0}]))
        >>> base64.b64decode(text)[:8]
        b'\\x89PNG\\r\\n\\x1a\\n'
    """
    import base64
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return base64.b64encode(buf.getvalue()).decode("ascii")


# ---------------------------------------------------------------------------
# Step sweep
# ---------------------------------------------------------------------------

_SWEEP_LABELS = {"forward": "forward  (f(x+h) - f(x)) / h", "central": "central  (f(x+h) - f(x-h)) / 2h",
                 "complex": "complex step  Im f(x+ih) / h"}


def step_sweep(result_or_f: Any, x: float | None = None, ax: Any = None, *, name: str | None = None) -> Any:
    """The V curves: relative error of three difference formulas against the step, log-log.

    For small steps round-off grows as ``eps/h`` (the dotted line); for large
    ones truncation grows as ``h`` (forward) or ``h**2`` (central); the complex
    step has no subtraction and stays at round-off. A star marks each
    method's best step. Errors that are exactly 0 are not drawn (log scale).

    Args:
        result_or_f: a :class:`~diffkit.numeric_tools.SweepResult` from
            :func:`diffkit.step_sweep`, or a function of one scalar (then
            ``x`` is required and the sweep is computed with default steps).
        x: the point (required with a function; with a result only used in the title).
        ax: matplotlib Axes to draw into; default a new Figure.
        name: the function's name in the title (default: the function's name).

    Returns:
        The matplotlib Figure. Its lines for the three methods have the gids
        ``forward``, ``central`` and ``complex``, and their data are the
        result's steps and errors.

    Example:
        >>> import numpy as np, diffkit as dk
        >>> from diffkit import plots
        >>> sweep = dk.step_sweep(np.exp, 1.0)
        >>> fig = plots.step_sweep(sweep, 1.0, name="exp")
        >>> line = [l for l in fig.axes[0].lines if l.get_gid() == "central"][0]
        >>> np.array_equal(line.get_ydata(), sweep.central, equal_nan=True)
        True
        >>> fig.axes[0].get_title()
        "Difference quotients of exp at x = 1  (f'(x) = 2.71828)"
    """
    import numpy as np

    from .numeric_tools import SweepResult
    from .numeric_tools import step_sweep as sweep_of

    if isinstance(result_or_f, SweepResult):
        res = result_or_f
    else:
        if x is None:
            raise InvalidType("plots.step_sweep(f, x): a function needs the point x (or pass a SweepResult)")
        from .core.function import as_function

        F = as_function(result_or_f)
        name = name or F.name
        res = sweep_of(F, x)
    fig, ax = _axes(ax, (7.5, 5.8))
    ax.set_xscale("log")
    ax.set_yscale("log", nonpositive="mask")
    steps = np.asarray(res.steps, dtype=float)
    columns = {m: np.asarray(getattr(res, m), dtype=float) for m in ("forward", "central", "complex")}
    positive = np.concatenate([c[np.isfinite(c) & (c > 0)] for c in columns.values()])
    top = float(np.max(positive, initial=0.0))
    # errors of exactly 0 have no place on a log axis: hollow markers on a floor below the rest
    floor = 10 ** (math.floor(math.log10(float(np.min(positive)))) - 1) if positive.size else 1e-17
    zeros_drawn = False
    for k, (method, errs) in enumerate(columns.items()):
        label = _SWEEP_LABELS[method]
        if not np.any(np.isfinite(errs)):
            label += f"\n  ({res.reason})" if res.reason else " (no finite value)"
        color = METHOD_COLORS[method]
        ax.plot(steps, errs, marker="o", ms=3, lw=1.4, color=color, label=label, gid=method)
        zero = errs == 0
        if zero.any():
            ax.plot(steps[zero], np.full(int(zero.sum()), floor * 1.6 ** k), ls="none", marker="o", ms=5,
                    mfc="white", mec=color, gid=f"zero-{method}")
            zeros_drawn = True
        h, e = res.best(method)
        if math.isfinite(h):
            y = e if e > 0 else floor * 1.6 ** k
            ax.plot([h], [y], marker="*", ms=14, color=color, mec="black", mew=0.8, ls="none",
                    gid=f"best-{method}", zorder=5)
            right = h > float(np.min(steps)) ** 0.15 * float(np.max(steps)) ** 0.85  # near the right edge
            ax.annotate(f"h = {h:.0e}" + ("" if e > 0 else ", error 0"), (h, y),
                        xytext=(-8 if right else 6, 8 if e == 0 else -12), textcoords="offset points",
                        fontsize=8, color=color, ha="right" if right else "left",
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    eps = float(np.finfo(np.float64).eps)
    ref = eps / steps
    keep = ref <= max(top, eps) * 10
    if keep.any():
        ax.plot(steps[keep], ref[keep], ls=":", color="0.45", lw=1.2, label="eps / h  (round-off)", gid="eps/h")
    if zeros_drawn:
        ax.plot([], [], ls="none", marker="o", ms=5, mfc="white", mec="0.4", label="error exactly 0 (at the bottom)")
    ax.plot([], [], marker="*", ms=12, color="0.6", mec="black", ls="none", label="best step of each method")
    ax.set_xlabel("step h")
    ax.set_ylabel("relative error of f'(x)" if res.reference != 0 else "absolute error of f'(x)")
    where = f" at x = {x:g}" if x is not None else ""
    ax.set_title(f"Difference quotients of {name or 'f'}{where}  (f'(x) = {res.reference:.6g})", fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    return fig


# ---------------------------------------------------------------------------
# Expression swell
# ---------------------------------------------------------------------------

SWELL_OPS = (("function_ops", "l_n itself"), ("naive_ops", "naive d/dx (SymPy diff, tree)"),
             ("expanded_ops", "naive d/dx, expanded"), ("cse_ops", "naive d/dx after cse"),
             ("dag_cse_ops", "DAG-aware d/dx = what AD evaluates (cse)"))
SWELL_TIMES = (("function_time", "building l_n"), ("naive_time", "naive d/dx"), ("expanded_time", "expand"),
               ("cse_time", "cse"), ("dag_time", "DAG-aware d/dx"), ("ad_time", "AD (reverse), evaluated"))


def swell(rows: Any, ax: Any = None, *, quantity: str = "ops") -> Any:
    """Expression swell on the logistic map: sizes (or times) against n, log y axis.

    The naive derivative's tree grows exponentially with n; its expanded form
    and its cse form less so; the DAG-aware derivative (the graph automatic
    differentiation evaluates) grows linearly. A step that timed out or
    failed at some n is not drawn there, and its legend entry says at which n.

    Args:
        rows: the rows of :func:`diffkit.swell.swell_table` (or the dict
            ``{"rows": [...]}`` of ``diffkit swell --format json``).
        ax: matplotlib Axes to draw into; default a new Figure.
        quantity: ``"ops"`` (SymPy's ``count_ops``: the function, naive,
            expanded, cse and DAG-aware derivatives) or ``"time"`` (seconds
            of each step, with AD's evaluation time).

    Returns:
        The matplotlib Figure; each line's gid is its column (``naive_ops``, ...).

    Example:
        >>> from diffkit import plots
        >>> rows = [{"n": 1, "naive_ops": 1, "expanded_ops": 1, "dag_cse_ops": 1},
        ...         {"n": 2, "naive_ops": 20, "expanded_ops": 9, "dag_cse_ops": 5},
        ...         {"n": 3, "naive_ops": 80, "expanded_status": "timeout", "dag_cse_ops": 9}]
        >>> ax = plots.swell(rows).axes[0]
        >>> [(l.get_gid(), [int(v) for v in l.get_ydata()]) for l in ax.lines]
        [('naive_ops', [1, 20, 80]), ('expanded_ops', [1, 9]), ('dag_cse_ops', [1, 5, 9])]
        >>> ax.get_legend().get_texts()[1].get_text()
        'naive d/dx, expanded  (timeout at n = 3)'
    """
    if isinstance(rows, Mapping):
        rows = rows["rows"]
    rows = list(rows)
    if quantity not in ("ops", "time"):
        raise InvalidArgument(f"plots.swell: quantity is 'ops' or 'time', got {quantity!r}")
    fig, ax = _axes(ax, (7.0, 4.8))
    ax.set_yscale("log", nonpositive="mask")
    for k, (key, label) in enumerate(SWELL_OPS if quantity == "ops" else SWELL_TIMES):
        step = key.split("_")[0]
        xs: list[Any] = []
        ys: list[Any] = []
        skipped: dict[str, list[int]] = {}
        for r in rows:
            status = r.get(f"{step}_status", "ok")
            if status != "ok":
                skipped.setdefault(status, []).append(r["n"])
                continue
            v = r.get(key)
            if v is None or _finite(v) is None:
                continue
            xs.append(r["n"])
            ys.append(v)
        if not xs and not skipped:
            continue  # the step was not measured
        for status, ns in skipped.items():
            label += f"  ({status} at n = {_ranges(ns)})"
        ax.plot(xs, ys, marker="o", ms=4, color=f"C{k}", label=label, gid=key)
    ax.set_xlabel("n  (logistic map l_(n+1) = 4 l_n (1 - l_n), l_1 = x)")
    ax.set_ylabel("operations (SymPy count_ops)" if quantity == "ops" else "seconds")
    ax.set_title("Expression swell: d l_n / dx" + (" (operation counts)" if quantity == "ops" else " (time)"),
                 fontsize=11)
    _readable_log_y(ax, [v for line in ax.lines for v in line.get_ydata()])
    ns = [r["n"] for r in rows]
    if ns:
        ax.set_xticks(range(min(ns), max(ns) + 1))
    ax.grid(True, which="major", alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8, loc="upper left")
    return fig


def _readable_log_y(ax: Any, values: Iterable[Any]) -> None:
    """Plain numbers on a log y axis; over less than 3 decades, ticks at 1, 2 and 5 of each decade."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    positive = [f for f in (_finite(v) for v in values) if f is not None and f > 0]
    if positive and math.log10(max(positive) / min(positive)) < 3:
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())


def _ranges(ns: Sequence[int]) -> str:
    """``[3, 4, 5, 8]`` -> ``"3-5, 8"``."""
    out: list[str] = []
    ns = sorted(ns)
    i = 0
    while i < len(ns):
        j = i
        while j + 1 < len(ns) and ns[j + 1] == ns[j] + 1:
            j += 1
        out.append(str(ns[i]) if i == j else f"{ns[i]}-{ns[j]}")
        i = j + 1
    return ", ".join(out)


# ---------------------------------------------------------------------------
# Benchmark ratios
# ---------------------------------------------------------------------------


def bench(rows: Iterable[Mapping[str, Any]], ax: Any = None, *, xlabel: str = "gradient time / function time",
          title: str = "Cost of a gradient", log: bool | None = None) -> Any:
    """Time ratios as horizontal bars, each with its target as a vertical line.

    A bar is green when its ratio is at most its target, red above it, and
    blue without a target. The ratio is written at the end of each bar.

    Args:
        rows: dicts ``{"name": str, "ratio": float, "target": float | None}``
            (``target`` may be left out); a ratio that is None or not finite
            is drawn as "n/a".
        ax: matplotlib Axes to draw into; default a new Figure.
        xlabel: what the ratio is.
        title: the plot's title.
        log: a log x axis; by default when the ratios span more than a factor 50.

    Returns:
        The matplotlib Figure: one bar per row, top to bottom, whose right
        end is the ratio (gid ``bar:<name>``), and one line per target (gid
        ``target:<name>``).

    Example:
        >>> from diffkit import plots
        >>> fig = plots.bench([{"name": "reverse", "ratio": 3.1, "target": 4.0},
        ...                    {"name": "numeric", "ratio": 12.0, "target": 4.0},
        ...                    {"name": "symbolic", "ratio": 2.0}])
        >>> [round(float(p.get_x() + p.get_width()), 6) for p in fig.axes[0].patches]
        [3.1, 12.0, 2.0]
    """
    rows = list(rows)
    for r in rows:
        if "name" not in r or "ratio" not in r:
            raise InvalidArgument(f"plots.bench: each row is {{'name', 'ratio', 'target'}}, got {dict(r)!r}")
    fig, ax = _axes(ax, (7.0, 1.4 + 0.45 * max(len(rows), 1)))
    ratios = [_finite(r["ratio"]) for r in rows]
    targets = [_finite(r.get("target")) for r in rows]
    values = [v for v in ratios + targets if v is not None and v > 0]
    if log is None:
        log = bool(values) and max(values) / min(values) > 50
    base = 0.0
    if log:
        ax.set_xscale("log")
        base = 10 ** math.floor(math.log10(min(values))) if values else 1.0
    target_label = "target"
    for i, (r, ratio, target) in enumerate(zip(rows, ratios, targets)):
        name = str(r["name"])
        if ratio is None:
            ax.text(base if log else 0.0, i, "  n/a", va="center", fontsize=9)
        else:
            color = "C0" if target is None else (VERDICT_COLORS["ok"] if ratio <= target else VERDICT_COLORS["fail"])
            ax.barh(i, ratio - base, left=base, height=0.6, color=color, alpha=0.85, gid=f"bar:{name}")
            ax.annotate(_times(ratio), (max(ratio, target or ratio), i), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=9)
        if target is not None:
            ax.vlines(target, i - 0.42, i + 0.42, colors="black", linestyles="--", lw=1.6, label=target_label,
                      gid=f"target:{name}")
            target_label = "_target"
    ax.set_yticks(range(len(rows)), [str(r["name"]) for r in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)   # first row on top
    if values:
        hi = max(values)
        ax.set_xlim(base if log else 0.0, hi * (3.0 if log else 1.18))
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=11)
    ax.grid(True, axis="x", which="major", alpha=0.3)
    from matplotlib.patches import Patch

    kinds = {"within target": VERDICT_COLORS["ok"], "over target": VERDICT_COLORS["fail"], "no target": "C0"}
    used = {("no target" if t is None else "within target" if r <= t else "over target")
            for r, t in zip(ratios, targets) if r is not None}
    handles = [h for h in ax.get_legend_handles_labels()[0]]
    handles += [Patch(color=c, alpha=0.85, label=k) for k, c in kinds.items() if k in used]
    if handles:
        ax.legend(handles=handles, fontsize=8, loc="best")
    return fig


def scaling(rows: Iterable[Mapping[str, Any]], ax: Any = None, *, field: str = "seconds",
            title: str = "Gradient time as n grows") -> Any:
    """How each tool's cost grows with n, log-log: one line per tool.

    Args:
        rows: dicts with ``"tool"``, ``"n"`` and ``field`` (rows of
            ``diffkit bench``'s ``scaling`` section); rows without a finite
            value are skipped.
        ax: matplotlib Axes to draw into; default a new Figure.
        field: the quantity on the y axis.
        title: the plot's title.

    Returns:
        The matplotlib Figure, one line per tool (gid ``tool:<name>``), in
        increasing n.

    Example:
        >>> from diffkit import plots
        >>> rows = [{"tool": "reverse", "n": n, "seconds": 1e-6 * n} for n in (10, 100, 1000)]
        >>> fig = plots.scaling(rows)
        >>> [[int(n) for n in line.get_xdata()] for line in fig.axes[0].lines]
        [[10, 100, 1000]]
    """
    fig, ax = _axes(ax, (7.0, 4.6))
    series: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        v = _finite(r.get(field))
        if v is not None and v > 0 and r.get("n"):
            series.setdefault(str(r["tool"]), []).append((r["n"], v))
    for i, (tool, pts) in enumerate(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=4, color=f"C{i % 10}", label=tool,
                gid=f"tool:{tool}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n")
    ax.set_ylabel(field)
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="both", alpha=0.25)
    if series:
        ax.legend(fontsize=8, loc="upper left")
    return fig


def _times(ratio: float) -> str:
    """``2.5x``, ``42x``, ``2,100x``."""
    return f"{ratio:,.0f}x" if abs(ratio) >= 1000 else f"{ratio:.3g}x"


# ---------------------------------------------------------------------------
# Sigmoid
# ---------------------------------------------------------------------------


def sigmoid(ax: Any = None, *, xlim: tuple[float, float] = (-6.0, 6.0), num: int = 241) -> Any:
    """The sigmoid and its derivative, the derivative computed by diffkit (forward mode).

    The derivative is the JVP of the elementwise ``sigmoid`` with a tangent of
    ones (its Jacobian is diagonal), by forward-mode AD; the maximum, 0.25 at
    0, is annotated: a deep stack of sigmoids multiplies such factors, so
    its gradient vanishes.

    Args:
        ax: matplotlib Axes to draw into; default a new Figure.
        xlim: the x range.
        num: the number of points (odd keeps 0 on the grid for a symmetric range).

    Returns:
        The matplotlib Figure, with lines of gid ``sigmoid`` and ``derivative``.

    Example:
        >>> import numpy as np
        >>> from diffkit import plots
        >>> ax = plots.sigmoid().axes[0]
        >>> d = [l for l in ax.lines if l.get_gid() == "derivative"][0]
        >>> float(np.max(d.get_ydata())), float(d.get_xdata()[np.argmax(d.get_ydata())])
        (0.25, 0.0)
    """
    import numpy as np

    from .core.function import Function
    from .operators import jvp

    fig, ax = _axes(ax, (7.0, 4.4))
    xs = np.linspace(float(xlim[0]), float(xlim[1]), int(num))
    F = Function.parse("sigmoid(x)")
    s, ds = jvp(F, (xs,), (np.ones_like(xs),), backend="forward")
    s, ds = np.asarray(s, dtype=float), np.asarray(ds, dtype=float)
    ax.plot(xs, s, color="C0", lw=2, label="sigmoid(x) = 1 / (1 + exp(-x))", gid="sigmoid")
    ax.plot(xs, ds, color="C3", lw=2, label="sigmoid'(x), by diffkit (forward-mode JVP)", gid="derivative")
    i = int(np.argmax(ds))
    ax.plot([xs[i]], [ds[i]], "o", color="C3", ms=6)
    ax.annotate(f"maximum {ds[i]:.2f} at x = {xs[i]:g}", (xs[i], ds[i]), xytext=(30, 40),
                textcoords="offset points", fontsize=9, arrowprops={"arrowstyle": "->", "color": "0.3"})
    ax.axhline(0.0, color="0.7", lw=0.8)
    ax.axvline(0.0, color="0.7", lw=0.8)
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(-0.05, 1.08)
    ax.set_xlabel("x")
    ax.set_title("The sigmoid and its derivative", fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9, loc="upper left")
    return fig


# ---------------------------------------------------------------------------
# A cross-check report
# ---------------------------------------------------------------------------


def report_tolerance(row: Any, reference: Any = None) -> float | None:
    """The tolerance drawn for one row of a :class:`~diffkit.Report`.

    The row's error divided by its error / tolerance ratio, so the error bar
    crosses the tolerance exactly when the ratio exceeds 1 (for an array,
    the tolerance at the element of worst ratio); where that is undefined (an
    error of 0), ``atol + rtol * max|reference|``; None without a tolerance.
    """
    err, ratio = _finite(row.abs_error), _finite(row.tol_ratio)
    if err is not None and ratio is not None and err > 0 and ratio > 0:
        return err / ratio
    value = getattr(reference, "value", None)
    if row.atol is not None and row.rtol is not None:
        import numpy as np

        scale = float(np.max(np.abs(value), initial=0.0)) if value is not None and len(value) else 0.0
        return float(row.atol) + float(row.rtol) * scale
    return None


def report(report: Any, ax: Any = None) -> Any:
    """One cross-check: each backend's largest absolute error against its tolerance, log x axis.

    One horizontal bar per backend, coloured by its verdict (green ok, red
    fail, orange convention, ...), ending at the error; a black tick marks the
    tolerance (see :func:`report_tolerance`). An error of exactly 0 is a
    hollow circle at the left edge, marked "exact"; a backend without an
    error (unsupported, error) shows its verdict only.

    Args:
        report: a :class:`~diffkit.Report` from :func:`diffkit.crosscheck`.
        ax: matplotlib Axes to draw into; default a new Figure.

    Returns:
        The matplotlib Figure; the y tick labels are the backends, in the
        report's order, and each bar's gid is ``error:<backend>``.

    Example:
        >>> import diffkit as dk
        >>> from diffkit import plots
        >>> rep = dk.crosscheck("sin(x)*exp(y)", args=(1.0, 2.0), argnums=(0, 1), time_budget=0.0)
        >>> fig = plots.report(rep)
        >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
        ['symbolic', 'numeric', 'forward', 'reverse', 'compiled']
    """
    rows = list(report.rows)
    fig, ax = _axes(ax, (7.5, 1.6 + 0.55 * max(len(rows), 1)))
    ax.set_xscale("log")
    errs = [_finite(r.abs_error) for r in rows]
    tols = [report_tolerance(r, report.reference) for r in rows]
    positive = [v for v in errs + tols if v is not None and v > 0]
    lo = 10 ** (math.floor(math.log10(min(positive))) - 1) if positive else 1e-17
    hi = 10 ** (math.ceil(math.log10(max(positive))) + 2) if positive else 1.0
    seen: dict[str, Any] = {}
    tol_drawn = False
    for i, (r, err, tol) in enumerate(zip(rows, errs, tols)):
        color = VERDICT_COLORS.get(r.verdict, "0.5")
        ratio = _finite(r.tol_ratio)
        note = r.verdict + (f", {r.cause}" if r.cause and r.verdict != "ok" else "")
        if err is not None and err > 0:
            ax.barh(i, err - lo, left=lo, height=0.55, color=color, alpha=0.85, gid=f"error:{r.backend}")
            note += f", err/tol {ratio:.2g}" if ratio is not None else ""
        elif err == 0:
            ax.plot([lo * 1.5], [i], "o", mfc="white", mec=color, mew=1.5, ms=8, gid=f"error:{r.backend}")
            note += ", exact (error 0)"
        elif r.abs_error is not None:  # inf or nan
            note += ", no finite error"
        seen.setdefault(r.verdict, color)
        if tol is not None and tol > 0:
            ax.plot([tol], [i], marker="|", ms=22, mew=2.5, color="black", ls="none", label="_tolerance",
                    gid=f"tolerance:{r.backend}")
            tol_drawn = True
        x_text = max(v for v in (err, tol, lo * 1.5) if v is not None and v > 0)
        ax.annotate(note, (x_text, i), xytext=(10, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [r.backend for r in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(lo, hi * 1e3)  # room for the notes
    ax.set_xlabel("largest absolute error against the reference (log scale)")
    ax.set_title(report.title, fontsize=11)
    ax.grid(True, axis="x", which="major", alpha=0.3)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = []
    if tol_drawn:
        handles.append(Line2D([], [], marker="|", ms=10, mew=2.5, color="black", ls="none", label="tolerance"))
    handles += [Patch(color=c, alpha=0.85, label=v) for v, c in seen.items()]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


# ---------------------------------------------------------------------------
# A suite run
# ---------------------------------------------------------------------------


def _records(result: Any) -> tuple[str, list[dict[str, Any]]]:
    """``(name, records)`` of a SuiteResult, a ``diffkit.suite/1`` dict, or a list of records."""
    if hasattr(result, "records"):
        return str(getattr(result, "name", "suite")), list(result.records)
    if isinstance(result, Mapping):
        return str(result.get("summary", {}).get("suite", "suite")), list(result["cases"])
    return "suite", list(result)


def suite(result: Any, ax: Any = None, *, kind: str = "both") -> Any:
    """A suite run: error / tolerance per case and backend, and the time per case.

    The top panel has one marker per case and backend at its largest
    error / tolerance ratio on a log axis; the dashed line at 1 is the
    tolerance (above it the backend disagrees). Ratios of 0 (exact results)
    sit on the dotted floor line; a case that errored or timed out is a
    shaded column. The bottom panel is each case's time (the cross-check in
    its own process), coloured by the case's verdict. A ring marks a row
    whose verdict is not plain "ok" (``expected``: a known disagreement with
    the cause the case names; ``convention``: a kink; ``fail``). Case ids
    label the x axis up to 60 cases; past that the ticks are case numbers
    and the cases above the tolerance are numbered and named in the top panel.

    Args:
        result: a :class:`~diffkit.harness.runner.SuiteResult`, the dict of
            ``diffkit suite --out x.json`` or a list of its records.
        ax: where to draw: with ``kind="both"`` None (a new Figure) or a pair
            of Axes; with ``kind="ratio"`` or ``"time"`` None or one Axes.
        kind: ``"both"``, ``"ratio"`` or ``"time"``.

    Returns:
        The matplotlib Figure. In the ratio panel each backend's markers
        are one line of gid ``ratio:<backend>``; the time bars have gids
        ``time:<case id>``.

    Example:
        >>> from diffkit import plots
        >>> records = [{"id": "a", "verdict": "ok", "elapsed": 0.2,
        ...             "rows": [{"backend": "numeric", "tol_ratio": 0.03}, {"backend": "reverse", "tol_ratio": 0.0}]},
        ...            {"id": "b", "verdict": "timeout", "elapsed": 60.0, "rows": []}]
        >>> fig = plots.suite(records)
        >>> [l.get_gid() for l in fig.axes[0].lines if str(l.get_gid()).startswith("ratio:")]
        ['ratio:numeric', 'ratio:reverse']
    """
    if kind not in ("both", "ratio", "time"):
        raise InvalidArgument(f"plots.suite: kind is 'both', 'ratio' or 'time', got {kind!r}")
    name, records = _records(result)
    n = len(records)
    width = max(8.0, min(16.0, 4.0 + 0.1 * n))
    if ax is None:
        Figure = require_matplotlib()
        if kind == "both":
            fig = Figure(figsize=(width, 7.5), layout="constrained")
            ax_r, ax_t = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
        else:
            fig = Figure(figsize=(width, 4.5), layout="constrained")
            ax_r = ax_t = fig.add_subplot()
    else:
        if kind == "both":
            try:
                ax_r, ax_t = ax
            except (TypeError, ValueError):
                raise InvalidType("plots.suite(kind='both') draws into a pair of Axes; pass kind='ratio' or "
                                  "'time' for one") from None
            fig = _root(ax_r.figure)
        else:
            ax_r = ax_t = ax
            fig = _root(ax.figure)
    if kind in ("both", "ratio"):
        _suite_ratio(ax_r, records, name)
    if kind in ("both", "time"):
        _suite_time(ax_t, records, name, title=kind == "time")
    label_ax = ax_t if kind in ("both", "time") else ax_r
    ids = [str(rec.get("id", k)) for k, rec in enumerate(records)]
    if n <= 60:
        flat = n <= 8 and max((len(i) for i in ids), default=0) <= 14
        label_ax.set_xticks(range(n), ids, rotation=0 if flat else 90, fontsize=8 if n <= 30 else 6)
    else:
        step = 10 if n <= 300 else 50
        label_ax.set_xticks(range(0, n, step))
        label_ax.set_xlabel("case number (in suite order)")
    for a in {id(ax_r): ax_r, id(ax_t): ax_t}.values():
        a.set_xlim(-0.7, n - 0.3)
    return fig


def _suite_ratio(ax: Any, records: list[dict[str, Any]], name: str) -> None:
    ratios: dict[str, tuple[list[int], list[float | None], list[str]]] = {}
    finite = []
    for k, rec in enumerate(records):
        for row in rec.get("rows") or []:
            tr = row.get("tol_ratio")
            if tr is None:
                continue
            v = _finite(tr)
            xs, ys, verdicts = ratios.setdefault(str(row.get("backend")), ([], [], []))
            xs.append(k)
            ys.append(v)  # None: nan or inf
            verdicts.append(str(row.get("verdict", "ok")))
            if v is not None and v > 0:
                finite.append(v)
    floor = 10 ** max(-8, min(-2, math.floor(math.log10(min(finite))) - 1)) if finite else 1e-3
    ceiling = 10 ** math.ceil(math.log10(max(max(finite, default=1.0), 1.0) * 10))
    ax.set_yscale("log")
    backends = list(ratios)
    ringed: dict[str, tuple[list[float], list[float]]] = {}
    above: dict[int, str] = {}
    for j, b in enumerate(backends):
        color, marker = BACKEND_STYLE.get(b, (f"C{4 + j}", "D"))
        xs, ys, verdicts = ratios[b]
        dodge = (j - (len(backends) - 1) / 2) * 0.12
        y = [ceiling if v is None else max(v, floor) for v in ys]
        ax.plot([x + dodge for x in xs], y, ls="none", marker=marker, ms=5, color=color, alpha=0.85, label=b,
                gid=f"ratio:{b}")
        for x, yy, v, verdict in zip(xs, y, ys, verdicts):
            if verdict != "ok":
                rx, ry = ringed.setdefault(verdict, ([], []))
                rx.append(x + dodge)
                ry.append(yy)
            if v is None or v > 1:
                above.setdefault(x, f"{b}: {verdict}")
    for verdict, (rx, ry) in ringed.items():
        ax.plot(rx, ry, ls="none", marker="o", ms=11, mfc="none", mew=1.3, color=VERDICT_COLORS.get(verdict, "0.3"),
                label=f"row verdict: {verdict}", gid=f"verdict:{verdict}")
    ax.axhline(1.0, color="black", ls="--", lw=1.2, label="tolerance (error / tol = 1)")
    ax.axhline(floor, color="0.5", ls=":", lw=1.0, label=f"exact (0), or below {floor:.0e}")
    if any(v is None for _, ys, _ in ratios.values() for v in ys):
        ax.axhline(ceiling, color=VERDICT_COLORS["fail"], ls=":", lw=1.0, label="nan or inf")
    shaded = False
    for k, rec in enumerate(records):
        if rec.get("verdict") in ("error", "timeout"):
            ax.axvspan(k - 0.5, k + 0.5, color=VERDICT_COLORS[rec["verdict"]], alpha=0.18, lw=0,
                       label="_case" if shaded else "case with an error or timeout")
            shaded = True
    if len(records) > 60 and above:  # no case ids on the axis: number the cases above the tolerance
        keys = sorted(above)[:30]
        last, lift = -10, 7
        for k in keys:
            top = max(ceiling if v is None else max(v, floor) for xs, ys, _ in ratios.values()
                      for x, v in zip(xs, ys) if x == k)
            lift = 7 if k - last > 3 or lift > 7 else 16  # neighbours' numbers on two levels
            last = k
            ax.annotate(str(k), (k, top), xytext=(0, lift), textcoords="offset points", ha="center", fontsize=7,
                        color="0.2")
        lines = [f"{k}: {records[k].get('id', k)} ({above[k]})" for k in keys]
        if len(above) > len(keys):
            lines.append(f"... and {len(above) - len(keys)} more")
        ax.text(1.01, 0.0, "above the tolerance:\n" + "\n".join(lines), transform=ax.transAxes, va="bottom",
                ha="left", fontsize=7, color="0.2")
    ax.set_ylim(floor / 2, ceiling * 5)
    ax.set_ylabel("largest error / tolerance")
    ax.set_title(f"diffkit suite {name}: error / tolerance per case and backend", fontsize=11)
    ax.grid(True, axis="y", which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _suite_time(ax: Any, records: list[dict[str, Any]], name: str, title: bool) -> None:
    times = [_finite(rec.get("elapsed")) for rec in records]
    positive = [t for t in times if t is not None and t > 0]
    if positive and max(positive) / min(positive) > 30:
        ax.set_yscale("log")
    seen: dict[str, Any] = {}
    for k, (rec, t) in enumerate(zip(records, times)):
        if t is None:
            continue
        verdict = str(rec.get("verdict"))
        color = VERDICT_COLORS.get(verdict, "0.5")
        bottom = min(positive) / 2 if ax.get_yscale() == "log" else 0.0
        ax.bar(k, t - bottom, bottom=bottom, width=0.7, color=color, alpha=0.85, gid=f"time:{rec.get('id', k)}")
        seen.setdefault(verdict, color)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=c, alpha=0.85, label=v) for v, c in seen.items()], fontsize=8,
              loc="upper left", bbox_to_anchor=(1.0, 1.0), title="case verdict", title_fontsize=8)
    ax.set_ylabel("seconds per case")
    if title:
        ax.set_title(f"diffkit suite {name}: time per case", fontsize=11)
    ax.grid(True, axis="y", which="major", alpha=0.3)


def suite_plots(result: Any, dpi: int = 100) -> list[dict[str, str]]:
    """The suite's plots as ``[{"alt", "data"}]`` base64 PNGs, for :func:`diffkit.harness.report.suite_to_html`.

    Example:
        >>> from diffkit import plots
        >>> records = [{"id": "a", "verdict": "ok", "elapsed": 0.2, "rows": [{"backend": "reverse", "tol_ratio": 0.0}]}]
        >>> [sorted(p) for p in plots.suite_plots(records)]
        [['alt', 'data']]
    """
    name, _ = _records(result)
    fig = suite(result)
    return [{"alt": f"suite {name}: error / tolerance per case and backend, and time per case",
             "data": png_base64(fig, dpi=dpi)}]
