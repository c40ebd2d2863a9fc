"""What a benchmark run prints and writes: rich tables, the targets, JSON, and the docs page.

A run is a JSON-able dict (schema ``diffkit.bench/1``): the machine it ran on,
the rows of each section (``ad``, ``numeric``, ``symbolic``), and the targets
read off those rows. ``docs/benchmarks.md`` is rendered from that dict alone,
so the page can be regenerated from a saved run without measuring again.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
from typing import Any, Iterable

SCHEMA = "diffkit.bench/1"

# (section, case, tool, field, target, description): what the foundation issue asks of diffkit
TARGETS: tuple[tuple[str, str, str, str, float, str], ...] = (
    ("cheap gradient", "rosenbrock n=1e5", "diffkit reverse", "ratio", 2.0, "reverse grad / f, Rosenbrock n = 1e5"),
    ("cheap gradient", "mlp 64-128-10", "diffkit reverse", "ratio", 1.5, "reverse grad / f, MLP 64-128-10"),
    ("scalar chain", "scalar chain 1000 ops", "diffkit reverse", "ratio", 2.0, "scalar chain, µs per operation"),
    ("jacobian", "(1, 1000) reverse", "diffkit reverse", "ratio", 5.0, "Jacobian (1, 1000) / f, reverse"),
    ("jacobian", "(1000, 1) forward", "diffkit forward", "ratio", 5.0, "Jacobian (1000, 1) / f, forward"),
    ("jacobian", "(100, 100) reverse", "diffkit reverse", "ratio", 10.0, "Jacobian (100, 100) / f, reverse"),
    ("jacobian", "(100, 100) forward", "diffkit forward", "ratio", 10.0, "Jacobian (100, 100) / f, forward"),
    ("cheap gradient", "rosenbrock n=1e5", "diffkit compiled", "ratio", 2.0,
     "compiled grad / f, Rosenbrock n = 1e5"),
    ("cheap gradient", "mlp 64-128-10", "diffkit compiled", "ratio", 1.5, "compiled grad / f, MLP 64-128-10"),
    ("scalar chain", "scalar chain 1000 ops", "diffkit compiled", "ratio", 2.0,
     "compiled scalar chain, µs per operation"),
    ("jacobian", "(1, 1000) auto", "diffkit compiled", "ratio", 5.0, "compiled Jacobian (1, 1000) / f"),
    ("jacobian", "(1000, 1) auto", "diffkit compiled", "ratio", 5.0, "compiled Jacobian (1000, 1) / f"),
    ("jacobian", "(100, 100) auto", "diffkit compiled", "ratio", 10.0, "compiled Jacobian (100, 100) / f"),
)
"""Targets on the AD rows (the default process's figures); the numeric and symbolic ones are
checked in :func:`targets`."""


def machine(tools: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """The machine, the libraries and the settings a run was measured with."""
    import numpy as np

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = "unknown"
    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{info.get('name')} {info.get('version')}"
    except Exception:  # noqa: BLE001 - older NumPy: the BLAS is only a detail of the page
        pass
    from .._version import __version__

    keys = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cores": os.cpu_count(), "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "numpy": np.__version__, "blas": blas,
        "diffkit": __version__, "environment": {k: os.environ.get(k) for k in keys},
        "tools": {t["name"]: t.get("version") for t in tools},
    }


def targets(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the figure measured for it (``None`` when the run lacks it) and whether it is met."""
    out = []
    rows = run.get("sections", {}).get("ad", [])
    for section, case, tool, field, target, what in TARGETS:
        found = [r for r in rows if r.get("section") == section and r.get("case") == case and r.get("tool") == tool]
        value = found[0].get(field) if found else None
        out.append(_target(what, target, value, "<="))
    numeric = [r for r in run.get("sections", {}).get("numeric", []) if r.get("method") == "diffkit (default)"]
    n = numeric[0] if numeric else {}
    out.append(_target("numeric: median digits", 15.0, n.get("median_digits"), ">="))
    out.append(_target("numeric: worst digits", 12.0, n.get("worst_digits"), ">="))
    out.append(_target("numeric: median evaluations", 4.0, n.get("median_evals"), "<="))
    symbolic = [r for r in run.get("sections", {}).get("symbolic", []) if r.get("target") is not None]
    for r in symbolic:
        out.append(_target(f"symbolic: {r['case']} setup (s)", 1.0, r.get("setup_seconds"), "<="))
        out.append(_target(f"symbolic: {r['case']} call / reverse", 3.0, r.get("ratio"), "<="))
    return out


def _target(what: str, target: float, value: Any, sense: str) -> dict[str, Any]:
    ok = None
    if isinstance(value, (int, float)) and math.isfinite(value):
        ok = value <= target if sense == "<=" else value >= target
    return {"name": what, "target": target, "sense": sense, "measured": value, "met": ok}


def fmt(value: Any, digits: int = 3) -> str:
    """A figure for a table: 3 significant digits, '-' for missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def pivot(rows: list[dict[str, Any]], section: str, field: str = "ratio",
          notes: list[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """Rows of one section as a table: one line per case, one column per tool.

    A cell that was not measured shows a footnote mark; the reasons are
    appended to ``notes`` (numbered from 1). A row measured again with the tuned
    allocator (``tuned_<field>``) shows both figures, the default process's first:
    ``2.5 / 1.9``.

    Example:
        >>> rows = [{"section": "s", "case": "c", "tool": "t", "ratio": 2.5, "tuned_ratio": 1.9}]
        >>> pivot(rows, "s")
        (['case', 't'], [['c', '2.5 / 1.9']])
    """
    sel = [r for r in rows if r.get("section") == section]
    tools = list(dict.fromkeys(r["tool"] for r in sel))
    cases = list(dict.fromkeys(r["case"] for r in sel))
    cells = {(r["case"], r["tool"]): r for r in sel}
    notes = [] if notes is None else notes
    body = []
    for c in cases:
        line = [c]
        for t in tools:
            r = cells.get((c, t))
            if r is None:
                line.append("")
            elif r.get(field) is None:
                why = f"{t}: {r.get('note') or 'not measured'}"
                if why not in notes:
                    notes.append(why)
                line.append(f"n/a [{notes.index(why) + 1}]")
            else:
                spread = r.get("spread")
                cell = fmt(r[field]) + (f" ±{100 * spread:.0f}%" if isinstance(spread, float) and spread > 0.1
                                        else "")
                if r.get(f"tuned_{field}") is not None:
                    cell += f" / {fmt(r[f'tuned_{field}'])}"
                line.append(cell)
        body.append(line)
    return ["case", *tools], body


_AD_SECTIONS = (
    ("cheap gradient", "Cheap-gradient ratio: gradient time / NumPy f time"),
    ("scalar chain", "Per-operation overhead: scalar chain of 1,000 operations, µs per operation"),
    ("jacobian", "Jacobians: time / NumPy f time"),
    ("scaling", "Gradient time (seconds) as n grows, Rosenbrock"),
)


def _numeric_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    head = ["method", "median digits", "worst digits", "evals", "estimate bounds error",
            "2nd: median", "2nd: worst", "2nd: evals"]
    body = [[r["method"] + (f" {r['version']}" if r.get("version") else ""), fmt(r.get("median_digits")),
             fmt(r.get("worst_digits")), fmt(r.get("median_evals")),
             "-" if r.get("bound_rate") is None else f"{100 * r['bound_rate']:.0f}%",
             fmt(r.get("second_median_digits")), fmt(r.get("second_worst_digits")),
             fmt(r.get("second_median_evals"))] for r in rows if r.get("section") == "numeric"]
    return head, body


def _symbolic_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    head = ["case", "n", "setup (s)", "call (s)", "call / reverse", "ops DAG", "ops naive", "ops cse"]
    body = [[str(r.get("case")), fmt(r.get("n")), fmt(r.get("setup_seconds")), fmt(r.get("call_seconds")),
             fmt(r.get("ratio")), fmt(r.get("ops_dag")), fmt(r.get("ops_naive")), fmt(r.get("ops_cse"))]
            for r in rows]
    return head, body


def tables(run: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table of a run, in the order they are shown.

    Footnotes of cells that were not measured follow their table as rows of
    one cell each, ``[k] tool: why``.
    """
    out = []
    ad = run.get("sections", {}).get("ad", [])
    for section, title in _AD_SECTIONS:
        field = "seconds" if section == "scaling" else "ratio"
        notes: list[str] = []
        head, body = pivot(ad, section, field, notes)
        if any(r.get(f"tuned_{field}") is not None for r in ad if r.get("section") == section):
            title += " (default allocator / tuned allocator)"
        if body:
            out.append((title, head, body + [[f"[{i}] {n}"] for i, n in enumerate(notes, 1)]))
    setup = [{"section": "setup", "case": r["case"], "tool": r["tool"], "setup_seconds": r.get("setup_seconds"),
              "note": r.get("note")} for r in ad if r.get("section") in ("cheap gradient", "scalar chain", "jacobian")]
    if any(r["setup_seconds"] is not None for r in setup):
        notes = []
        head, body = pivot(setup, "setup", "setup_seconds", notes)
        out.append(("Setup (seconds): building the derivative and its first call (the compiled backend's and "
                    "JAX's trace and compile), not counted in the figures above", head,
                    body + [[f"[{i}] {n}"] for i, n in enumerate(notes, 1)]))
    numeric = run.get("sections", {}).get("numeric", [])
    if numeric:
        out.append(("Numeric accuracy: digits against 50-digit mpmath truth, evaluations per derivative",
                    *_numeric_table(numeric)))
    symbolic = run.get("sections", {}).get("symbolic", [])
    if symbolic:
        out.append(("Symbolic: setup, per-call time and expression size", *_symbolic_table(symbolic)))
    t = run.get("targets") or targets(run)
    out.append(("Targets", ["target", "goal", "measured", "met"],
                [[x["name"], f"{x['sense']} {fmt(x['target'])}", fmt(x["measured"]),
                  {True: "yes", False: "NO", None: "-"}[x["met"]]] for x in t]))
    return out


def print_run(run: dict[str, Any], console: Any) -> None:
    """Rich tables of a run on ``console``."""
    from rich.table import Table

    for title, head, body in tables(run):
        table = Table(title=title, title_justify="left")
        for i, h in enumerate(head):
            table.add_column(h, justify="left" if i == 0 else "right")
        foot = [line[0] for line in body if len(line) == 1]
        for line in body:
            if len(line) > 1:
                table.add_row(*line, style="red" if line[-1] == "NO" else None)
        console.print(table)
        for line in foot:
            console.print(line, markup=False, highlight=False, style="dim")


def _md_table(head: list[str], body: list[list[str]]) -> str:
    esc = [[c.replace("|", "\\|") for c in row] for row in [head, *body]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in esc[1:]]
    return "\n".join(lines)


KEPT = "<!-- written by hand: kept when the page is regenerated -->"
"""Marks the end of ``docs/benchmarks.md``'s generated part (the start-up figures
come from ``bench/bench_startup.py``, not from ``diffkit bench``)."""


def kept_part(old_page: str) -> str:
    r"""The hand-written end of a benchmarks page, from :data:`KEPT` on ("" without it).

    Example:
        >>> kept_part("# Benchmarks\n...\n" + KEPT + "\n## Start-up\n")
        '\n<!-- written by hand: kept when the page is regenerated -->\n## Start-up\n'
        >>> kept_part("# Benchmarks\n")
        ''
    """
    at = old_page.find(KEPT)
    return "" if at < 0 else "\n" + old_page[at:]


def to_markdown(run: dict[str, Any], figure: str | None = None) -> str:
    """The ``docs/benchmarks.md`` page of a run (``figure``: a scaling plot to show, relative to docs/)."""
    m = run.get("machine", {})
    env = m.get("environment", {})
    tools = ", ".join(f"{k} {v}" if v else k for k, v in m.get("tools", {}).items())
    parts = [
        "# Benchmarks",
        "",
        "<!-- generated by `diffkit bench --json docs/benchmarks.json --markdown docs/benchmarks.md`; "
        "regenerate, do not edit -->",
        "",
        "diffkit measured against itself and against the tools its users would otherwise pick, on the "
        "same functions, in one process. Times are medians of at least 7 repeats after a warm-up, the "
        "function and its derivative timed in alternating rounds so that the shared machine's noise hits "
        "both alike; `±` gives the interquartile range where it exceeds 10% of the median. Ratios are "
        "derivative time / plain NumPy function time (lower is better). Every peer differentiates the "
        "same function, written once against its array module; JAX is timed jit-compiled (compile time "
        "excluded), PyTorch in eager mode.",
        "",
        f"Measured {m.get('date', '?')} on {m.get('cpu', '?')} ({m.get('cores', '?')} cores, "
        f"{m.get('system', '?')}), Python {m.get('python', '?')}, NumPy {m.get('numpy', '?')} "
        f"({m.get('blas', '?')}), diffkit {m.get('diffkit', '?')}; one BLAS thread "
        f"(OPENBLAS_NUM_THREADS={env.get('OPENBLAS_NUM_THREADS')}). Each AD figure is given twice, "
        f"`default / tuned`: first in a process with glibc's default allocator (malloc thresholds "
        f"{env.get('MALLOC_TRIM_THRESHOLD_') or 'unset'}), as users run, then in a child process with the "
        "malloc thresholds raised to 1e9 (freed temporaries reused, not returned to the OS: no page "
        "faults on large arrays); targets are judged on the first. The compiled backend's and JAX's "
        "first call (trace and compile) is setup, not timed in the figures. "
        f"Tools: {tools or 'diffkit only'}. The whole run took {fmt(run.get('seconds'))} s"
        + (" (`--quick`)." if run.get("quick") else "."),
        "",
        "Run it yourself: `pip install \".[peers]\"` (autograd, JAX, PyTorch 2.13 CPU, numdifftools, "
        "SciPy) and `diffkit bench`; without the peers installed it compares diffkit's backends only.",
        "",
    ]
    for title, head, body in tables(run):
        foot = [line[0] for line in body if len(line) == 1]
        parts += [f"## {title}", "", _md_table(head, [line for line in body if len(line) > 1]), ""]
        if foot:
            parts += ["\n".join(f"{line}  " for line in foot), ""]
        if title.startswith("Gradient time") and figure:
            parts += [f"![gradient time against n, log-log]({figure})", ""]
    return "\n".join(parts).rstrip() + "\n"
