"""Cross-check results (:class:`Report`, :class:`Row`, :class:`Reference`) and their renderings.

A :class:`Report` renders itself as text, Markdown, JSON and one
self-contained HTML page. The JSON schema (``"schema": "diffkit.crosscheck/1"``)
is documented in ``docs/harness.md``; :func:`from_json` reads it back. HTML is
rendered with Jinja2 with autoescaping on, so function names, sources and
messages — all user-supplied — are escaped. A suite run renders as JSON
(``"schema": "diffkit.suite/1"``), Markdown or HTML too.

This module imports nothing else of the harness: :mod:`~diffkit.harness.crosscheck`
builds reports, :mod:`~diffkit.harness.runner` collects them, and both import
their types from here.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import InvalidArgument, NotFound

SCHEMA = "diffkit.crosscheck/1"
"""The ``schema`` of a cross-check report's JSON."""
SUITE_SCHEMA = "diffkit.suite/1"
"""The ``schema`` of a suite run's JSON."""


@dataclass
class Reference:
    """What the backends are compared with."""

    value: np.ndarray | None       # flattened float64, or None when there is none
    kind: str                      # symbolic, mpmath differences, AD agreement, or "none"
    note: str = ""
    error: np.ndarray | None = None  # a bound on the reference's own error, where it has one

    @property
    def independent(self) -> bool:
        """Built without the table's derivative rules (symbolic or mpmath differences)."""
        return self.kind.startswith(("symbolic", "mpmath"))


@dataclass
class Row:
    """One backend's result in a cross-check."""

    backend: str
    verdict: str                           # "ok", "fail", "convention", "unsupported", "error", "expected"
    value: list[float] | None = None       # flattened
    abs_error: float | None = None         # largest |value - reference|
    rel_error: float | None = None         # largest |value - reference| / |reference| (where not 0)
    tol_ratio: float | None = None         # largest error / tolerance (<= 1 passes)
    rtol: float | None = None
    atol: float | None = None
    cause: str | None = None               # for a disagreement: truncation, round-off, ...
    message: str = ""
    worst_index: int | None = None
    setup_time: float | None = None        # seconds: first call minus a later call
    call_time: float | None = None         # seconds, median of repeats
    call_spread: float | None = None       # interquartile range of the repeats
    repeats: int = 0
    nfev: int | None = None                # function evaluations (numeric backend)
    error_estimate: float | None = None    # the backend's own largest error estimate
    method: str | None = None              # numeric method used

    @property
    def passed(self) -> bool:
        """Agrees with the reference (a difference explained as a convention counts as agreement)."""
        return self.verdict in ("ok", "convention", "unsupported", "expected")


@dataclass
class Report:
    """The result of :func:`~diffkit.crosscheck`: one row per backend, the reference and the point."""

    function: str
    op: str
    argnums: list[int]
    point: list[Any]
    shape: list[int]
    labels: list[str]
    reference: Reference
    rows: list[Row]
    kinks: list[str] = field(default_factory=list)
    f_time: float | None = None
    source: str | None = None

    @property
    def ok(self) -> bool:
        """Every backend agrees with the reference within its tolerance (conventions count as agreement)."""
        return all(r.passed for r in self.rows) and any(r.verdict == "ok" for r in self.rows)

    @property
    def title(self) -> str:
        """The report's heading: ``"<op> of <function> at (<point>)"``."""
        point = ", ".join(_fmt_point(p) for p in self.point)
        return f"{self.op} of {self.function} at ({point})"

    def row(self, backend: str) -> Row:
        """The row of one backend."""
        found = next((r for r in self.rows if r.backend == backend), None)
        if found is not None:
            return found
        raise NotFound(f"report of {self.function}: no row for backend {backend!r}; rows: "
                       f"{', '.join(r.backend for r in self.rows)}")

    def __str__(self) -> str:
        return to_text(self)

    def to_markdown(self) -> str:
        """The report as a Markdown table with a heading."""
        return to_markdown(self)

    def to_json(self) -> str:
        """The report as JSON (schema ``diffkit.crosscheck/1``, see docs/harness.md)."""
        return to_json(self)

    @classmethod
    def from_json(cls, text: str) -> Report:
        """A report read back from :meth:`to_json`."""
        return from_json(text)

    def to_html(self) -> str:
        """The report as one self-contained HTML page (everything user-supplied is escaped)."""
        return to_html([self], title=f"{self.op} of {self.function}")

    def plot(self, ax: Any = None) -> Any:
        """Each backend's error against its tolerance, as a matplotlib Figure (see :func:`diffkit.plots.report`).

        Needs matplotlib (``pip install 'diffkit[plot]'``); ``ax`` is an Axes to
        draw into, by default a new Figure.
        """
        from ..plots import report as plot_report

        return plot_report(self, ax=ax)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["schema"] = SCHEMA
        d["ok"] = self.ok
        return d

VERDICT_MARK = {"ok": "ok", "fail": "FAIL", "convention": "convention", "unsupported": "unsupported",
                "error": "ERROR", "timeout": "TIMEOUT", "expected": "expected"}


def _number(v: Any) -> float | None:
    """``v`` as a float when it is a number (or JSON's "nan"/"inf" strings), else None."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v)
    return None


def _g(v: Any, spec: str = "g") -> str:
    """A number formatted with ``spec``; anything else (a string read back from JSON) as text."""
    x = _number(v)
    if x is None:
        return "-" if v is None else str(v)
    if not math.isfinite(x):
        return str(x)
    return format(int(v) if isinstance(v, (int, np.integer)) and spec == "g" else x, spec)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, (float, np.floating)) or (isinstance(v, str) and _number(v) is not None):
        return _g(v, f".{digits}g")
    return str(v)


def _time_fmt(t: Any) -> str:
    t = _number(t)
    if t is None:
        return "-"
    if not math.isfinite(t):
        return str(t)
    if t < 1e-3:
        return f"{t * 1e6:.1f} us"
    if t < 1:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.2f} s"


def _value_fmt(row: Row, limit: int = 4) -> str:
    if row.value is None:
        return "-"
    if not isinstance(row.value, (list, tuple)):
        return _g(row.value, ".10g")
    vals = [_g(v, ".10g") for v in row.value[:limit]]
    return ", ".join(vals) + (", ..." if len(row.value) > limit else "")


HEADERS = ["backend", "verdict", "cause", "value", "abs err", "rel err", "err/tol", "setup", "call",
           "f evals", "own estimate"]


def _cells(r: Row) -> list[str]:
    return [r.backend, VERDICT_MARK.get(r.verdict, r.verdict), r.cause or "", _value_fmt(r), _fmt(r.abs_error),
            _fmt(r.rel_error), _fmt(r.tol_ratio, 2), _time_fmt(r.setup_time), _time_fmt(r.call_time),
            _fmt(r.nfev), _fmt(r.error_estimate)]


def _fmt_point(p: Any) -> str:
    if isinstance(p, (list, tuple, np.ndarray)):
        p = list(p)
        s = ", ".join(_g(v) for v in p[:4]) if p and not isinstance(p[0], (list, tuple, np.ndarray)) else "..."
        return f"[{s}{', ...' if len(p) > 4 else ''}]"
    return _g(p)


def _footer(rep: Report) -> list[str]:
    lines = [f"reference: {rep.reference.kind}" + (f" ({rep.reference.note})" if rep.reference.note else "")]
    if rep.kinks:
        lines.append("kinks at this point: " + "; ".join(rep.kinks))
    f_time = _number(rep.f_time)
    if f_time and math.isfinite(f_time):
        ratios = [f"{r.backend} {_number(r.call_time) / f_time:.1f}x" for r in rep.rows
                  if _number(r.call_time) and math.isfinite(_number(r.call_time))]
        lines.append(f"f: {_time_fmt(f_time)}; call time / f time: " + ", ".join(ratios))
    setups = [f"{r.backend} {_time_fmt(r.setup_time)}" for r in rep.rows
              if _number(r.setup_time) is not None and math.isfinite(_number(r.setup_time))]
    if setups:
        # what the first call costs beyond a later one: tracing and compiling (symbolic, compiled)
        lines.append("setup (first call minus the median call): " + ", ".join(setups))
    for r in rep.rows:
        if r.message and r.verdict != "ok":
            lines.append(f"{r.backend}: {r.message}")
    lines.append("verdict: " + ("all backends agree" if rep.ok else "DISAGREEMENT"))
    return lines


def to_text(rep: Report) -> str:
    """A plain-text table (what ``print(report)`` shows)."""
    rows = [HEADERS] + [_cells(r) for r in rep.rows]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(HEADERS))]
    out = [rep.title]
    for k, row in enumerate(rows):
        out.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out + _footer(rep))


_MD_SPECIAL = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\\": "\\\\", "`": "\\`", "*": "\\*", "_": "\\_",
               "[": "\\[", "]": "\\]", "|": "\\|", "#": "\\#", "~": "\\~", "!": "\\!", "\r": " ",
               "\n": " "}


def _md_escape(s: Any) -> str:
    """Text for Markdown: HTML's ``& < >`` as entities, Markdown's punctuation backslash-escaped, one line.

    Example:
        >>> _md_escape("<script>|`x`*[a](b)")
        '&lt;script&gt;\\\\|\\\\`x\\\\`\\\\*\\\\[a\\\\](b)'
    """
    return "".join(_MD_SPECIAL.get(c, c) for c in str(s))


def to_markdown(rep: Report) -> str:
    """A Markdown heading, table and notes."""
    out = [f"### {_md_escape(rep.title)}", "", "| " + " | ".join(HEADERS) + " |",
           "|" + "---|" * len(HEADERS)]
    out += ["| " + " | ".join(_md_escape(c) for c in _cells(r)) + " |" for r in rep.rows]
    out += [""] + [f"- {_md_escape(line)}" for line in _footer(rep)]
    return "\n".join(out) + "\n"


def _clean(v: Any) -> Any:
    """JSON has no NaN or inf: they become strings."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, list):
        return [_clean(x) for x in v]
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    return v


def _jsonable(v: Any) -> Any:
    """A suite record ready for JSON: NaN and inf become strings, tuples lists."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def to_dict(rep: Report) -> dict[str, Any]:
    d = rep.to_dict()
    ref = d["reference"]
    ref["value"] = None if rep.reference.value is None else [float(v) for v in rep.reference.value]
    ref["error"] = None if rep.reference.error is None else [float(v) for v in rep.reference.error]
    return _clean(d)


def to_json(rep: Report) -> str:
    """JSON of the report (schema ``diffkit.crosscheck/1``)."""
    return json.dumps(to_dict(rep), indent=1)


def _unclean(v: Any) -> Any:
    """The inverse of the JSON encoding of numbers: "nan", "inf" and "-inf" back to floats (numeric fields only)."""
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v)
    if isinstance(v, list):
        return [_unclean(x) for x in v]
    return v


ROW_NUMBERS = ("abs_error", "rel_error", "tol_ratio", "rtol", "atol", "setup_time", "call_time", "call_spread",
               "nfev", "error_estimate", "worst_index", "repeats")
"""The numeric fields of a row (NaN and inf are the strings "nan", "inf", "-inf" in JSON)."""
_ROW_TEXT = ("cause", "message", "method")


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise InvalidArgument(f"not a diffkit cross-check report: {what}")


def _numbers(v: Any, what: str) -> Any:
    """A number or a nested list of them (JSON strings "nan"/"inf" decoded); anything else is refused."""
    if isinstance(v, list):
        return [_numbers(x, what) for x in v]
    x = _number(v)
    _need(x is not None, f"{what} holds {type(v).__name__} {str(v)[:40]!r}, not a number")
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else x


def from_dict(d: dict[str, Any]) -> Report:
    """A :class:`Report` from :func:`to_dict`'s dict; a dict of another shape is an InvalidArgument."""
    if not isinstance(d, dict) or d.get("schema") != SCHEMA:
        schema = d.get("schema") if isinstance(d, dict) else None
        raise InvalidArgument(f"not a diffkit cross-check report (schema {schema!r}, expected {SCHEMA!r})")
    for key, kind in (("function", str), ("op", str), ("reference", dict), ("rows", list), ("point", list)):
        _need(isinstance(d.get(key), kind), f"{key!r} is not a {kind.__name__}")
    ref = d["reference"]
    _need(isinstance(ref.get("kind"), str), "the reference has no kind")
    reference = Reference(None if ref.get("value") is None else np.array(_numbers(ref["value"], "reference"),
                                                                            dtype=float),
                          ref["kind"], str(ref.get("note") or ""),
                          None if ref.get("error") is None else np.array(_numbers(ref["error"], "reference error"),
                                                                         dtype=float))
    fields = Row.__dataclass_fields__
    rows = []
    for k, r in enumerate(d["rows"]):
        _need(isinstance(r, dict) and isinstance(r.get("backend"), str) and isinstance(r.get("verdict"), str),
              f"row {k} has no backend and verdict")
        row = {key: v for key, v in r.items() if key in fields}
        for key in ROW_NUMBERS:
            if row.get(key) is not None:
                row[key] = _numbers(row[key], f"row {k} {key}")
        if row.get("value") is not None:
            _need(isinstance(row["value"], list), f"row {k} value is not a list")
            row["value"] = _numbers(row["value"], f"row {k} value")
        for key in _ROW_TEXT:
            if row.get(key) is not None:
                row[key] = str(row[key])
        rows.append(Row(**row))
    kinks = d.get("kinks") or []
    _need(isinstance(kinks, list), "'kinks' is not a list")
    f_time = d.get("f_time")
    return Report(d["function"], d["op"], list(d.get("argnums") or []) if isinstance(d.get("argnums"), list)
                  else d.get("argnums"), _numbers(d["point"], "point"), d.get("shape") or [],
                  [str(x) for x in d.get("labels") or []], reference, rows, [str(x) for x in kinks],
                  None if f_time is None else _numbers(f_time, "f_time"),
                  None if d.get("source") is None else str(d["source"]))


def from_json(text: str) -> Report:
    """A :class:`Report` read back from :func:`to_json`."""
    return from_dict(json.loads(text))


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right;font-size:.9em}
th{background:#f3f3f3} td.l{text-align:left}
.ok{background:#e6f4ea}.fail,.error,.timeout{background:#fce8e6}.convention,.unsupported{background:#fef7e0}
.summary td{text-align:left} h2{font-size:1.1em;margin-top:1.5em} code{background:#f6f6f6;padding:0 .2em}
.notes{font-size:.85em;color:#444}
figure{margin:1em 0} figure img{max-width:100%;height:auto}
</style></head><body>
<h1>{{ title }}</h1>
{% if summary %}<table class="summary"><tr><th>cases</th><td>{{ summary.total }}</td></tr>
<tr><th>agree</th><td>{{ summary.ok }}</td></tr><tr><th>disagree or failed</th><td>{{ summary.bad }}</td></tr>
{% for k, v in summary.extra %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}</table>{% endif %}
{% for plot in plots %}<figure><img alt="{{ plot.alt }}" src="data:image/png;base64,{{ plot.data }}"></figure>{% endfor %}
{% for item in items %}
<h2 id="{{ item.anchor }}">{{ item.heading }}</h2>
{% if item.source %}<p><code>{{ item.source }}</code></p>{% endif %}
{% if item.rows %}<table><tr>{% for h in headers %}<th>{{ h }}</th>{% endfor %}</tr>
{% for r in item.rows %}<tr class="{{ r.verdict }}">{% for c in r.cells %}<td{% if loop.index <= 4 %} class="l"{% endif %}>{{ c }}</td>{% endfor %}</tr>{% endfor %}
</table>{% endif %}
<ul class="notes">{% for n in item.notes %}<li>{{ n }}</li>{% endfor %}</ul>
{% endfor %}
</body></html>
"""


def to_html(reports: Sequence[Report], title: str = "diffkit cross-check", summary: dict[str, Any] | None = None,
            extra_items: Sequence[dict[str, Any]] = (), plots: Sequence[dict[str, str]] = ()) -> str:
    """One self-contained HTML page for one or more reports (no external files or scripts).

    ``extra_items`` are further sections ``{"heading", "notes"}`` (a suite's
    timeouts and errors); ``plots`` are ``{"alt", "data"}`` base64 PNGs.
    """
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    items = []
    for k, rep in enumerate(reports):
        items.append({"anchor": f"case{k}", "heading": rep.title, "source": rep.source or "",
                      "rows": [{"verdict": r.verdict, "cells": _cells(r)} for r in rep.rows],
                      "notes": _footer(rep)})
    for k, item in enumerate(extra_items):
        items.append({"anchor": f"extra{k}", "heading": item["heading"], "source": item.get("source", ""),
                      "rows": [], "notes": item.get("notes", [])})
    return env.from_string(_HTML).render(title=title, headers=HEADERS, items=items, summary=summary,
                                         plots=list(plots))


# --------------------------------------------------------------------------
# Suite reports
# --------------------------------------------------------------------------


def suite_summary_lines(summary: dict[str, Any]) -> list[str]:
    counts = summary["counts"]
    parts = [f"{counts.get(k, 0)} {k}" for k in ("ok", "fail", "error", "timeout") if counts.get(k)]
    lines = [f"suite {summary['suite']}: {summary['total']} cases: " + ", ".join(parts),
             f"{summary['with_convention']} cases agree through a convention at a kink"]
    if summary.get("resumed"):
        lines.append(f"{summary['resumed']} cases taken from the results file (resume)")
    if summary.get("rerun"):
        lines.append(f"{summary['rerun']} cases run again: their stored records were made for a different case "
                     "or diffkit version (fingerprint)")
    timings = summary.get("backend_times") or {}
    if timings:
        lines.append("median over cases, setup / call: " + ", ".join(
            f"{b} {_time_fmt(t['setup'])} / {_time_fmt(t['call'])}" for b, t in timings.items()))
    if summary.get("mean_case_seconds") is not None:
        lines.append(f"wall time {_g(summary['elapsed'], '.1f')} s; mean time per case (in its process) "
                     f"{_g(summary['mean_case_seconds'], '.3f')} s")
    return lines


def suite_to_json(result: Any) -> str:
    """The whole suite run: ``{"schema": "diffkit.suite/1", "summary", "cases": [records]}``."""
    return json.dumps(_jsonable({"schema": SUITE_SCHEMA, "summary": result.summary(),
                                 "cases": result.records}), indent=1)


def _case_line(rec: dict[str, Any]) -> str:
    bad = [r for r in rec["rows"] if r.get("verdict") not in ("ok", "convention", "unsupported", "expected")]
    conv = [r["backend"] for r in rec["rows"] if r.get("verdict") == "convention"]
    expected = [f"{r['backend']} {r.get('cause')}" for r in rec["rows"] if r.get("verdict") == "expected"]
    detail = "; ".join(f"{r['backend']}: {r.get('cause') or r.get('verdict')}" for r in bad)
    if rec.get("error"):
        detail = rec["error"]
    if conv and not detail:
        detail = "convention at a kink: " + ", ".join(conv)
    if expected and not detail:
        detail = "expected: " + ", ".join(expected)
    return detail


def suite_to_markdown(result: Any) -> str:
    """A summary, a table of every case, then the full report of each case that did not agree."""
    out = ["# diffkit suite report", ""] + [f"- {_md_escape(s)}" for s in suite_summary_lines(result.summary())]
    out += ["", "| case | op | verdict | details | seconds |", "|---|---|---|---|---|"]
    for rec in result.records:
        op = (rec.get("case") or {}).get("op", "")
        out.append(f"| {_md_escape(rec['id'])} | {_md_escape(op)} | {_md_escape(rec['verdict'])} | "
                   f"{_md_escape(_case_line(rec))} | {_g(rec.get('elapsed', 0), '.2f')} |")
    failing = [rec for rec in result.records if rec["verdict"] == "fail" and rec.get("report")]
    if failing:
        out += ["", "## Disagreements", ""]
        out += [to_markdown(from_dict(rec["report"])) for rec in failing]
    return "\n".join(out) + "\n"


def suite_to_html(result: Any, plots: Sequence[dict[str, str]] = ()) -> str:
    """One self-contained page: summary, then every case's table (escaped)."""
    summary = result.summary()
    reports = [from_dict(rec["report"]) for rec in result.records if rec.get("report")]
    extra = [{"heading": f"{rec['id']}: {rec['verdict']}", "notes": [rec.get("error", "")]}
             for rec in result.records if not rec.get("report")]
    counts = summary["counts"]
    return to_html(reports, title=f"diffkit suite {summary['suite']}",
                   summary={"total": summary["total"], "ok": counts.get("ok", 0),
                            "bad": summary["total"] - counts.get("ok", 0),
                            "extra": [("agree through a convention", summary["with_convention"]),
                                      ("wall time (s)", _g(summary['elapsed'], '.1f'))]},
                   extra_items=extra, plots=plots)
