"""diffkit bench: the run dict, its targets, tables, the docs page, and the command."""

from __future__ import annotations

import json
import sys
import types

from typer.testing import CliRunner

from diffkit.bench import report, runner
from diffkit.cli import app


def fake_run() -> dict:
    ad = [
        {"section": "cheap gradient", "case": "rosenbrock n=1e5", "tool": "diffkit reverse", "ratio": 2.5,
         "spread": 0.02, "seconds": 1e-3},
        {"section": "cheap gradient", "case": "rosenbrock n=1e5", "tool": "jax", "ratio": 0.6, "spread": 0.3,
         "seconds": 1e-4},
        {"section": "cheap gradient", "case": "rosenbrock n=1e5", "tool": "diffkit forward", "ratio": None,
         "note": "skipped: too many inputs"},
        {"section": "jacobian", "case": "(1000, 1) forward", "tool": "diffkit forward", "ratio": 3.4},
        {"section": "scaling", "case": "rosenbrock n=1e2", "tool": "diffkit reverse", "n": 100, "seconds": 1e-4},
    ]
    numeric = [{"section": "numeric", "method": "diffkit (default)", "version": "0.1.0", "median_digits": 15.9,
                "worst_digits": 11.5, "median_evals": 3, "bound_rate": 1.0}]
    run = {"schema": report.SCHEMA, "quick": True, "sections": {"ad": ad, "numeric": numeric}, "errors": {},
           "seconds": 12.0, "machine": {"date": "2026-11-23 18:00 UTC", "cpu": "AMD EPYC", "cores": 2,
                                        "environment": {"OPENBLAS_NUM_THREADS": "1"}, "tools": {"jax": "0.10"}}}
    run["targets"] = report.targets(run)
    return run


def test_targets_are_read_off_the_rows():
    t = {x["name"]: x for x in fake_run()["targets"]}
    assert t["reverse grad / f, Rosenbrock n = 1e5"]["measured"] == 2.5
    assert t["reverse grad / f, Rosenbrock n = 1e5"]["met"] is False       # 2.5 > 2.0
    assert t["Jacobian (1000, 1) / f, forward"]["met"] is True             # 3.4 <= 5
    assert t["reverse grad / f, MLP 64-128-10"]["met"] is None             # not in the run
    assert t["numeric: median digits"]["met"] is True and t["numeric: worst digits"]["met"] is False


def test_tables_footnote_what_was_not_measured():
    (title, head, body), *_ = report.tables(fake_run())
    assert title.startswith("Cheap-gradient") and head == ["case", "diffkit reverse", "jax", "diffkit forward"]
    assert body[0] == ["rosenbrock n=1e5", "2.5", "0.6 ±30%", "n/a [1]"]
    assert body[1] == ["[1] diffkit forward: skipped: too many inputs"]


def test_markdown_page_has_the_machine_every_table_and_the_targets():
    md = report.to_markdown(fake_run(), figure="img/generated/bench_scaling.png")
    assert md.startswith("# Benchmarks") and "AMD EPYC (2 cores" in md and "(`--quick`)" in md
    assert "| rosenbrock n=1e5 | 2.5 | 0.6 ±30% | n/a [1] |" in md
    assert "![gradient time against n, log-log](img/generated/bench_scaling.png)" in md
    assert "| reverse grad / f, Rosenbrock n = 1e5 | <= 2 | 2.5 | NO |" in md


def test_a_failing_section_is_recorded_and_the_run_goes_on(monkeypatch):
    broken = types.ModuleType("diffkit_test_broken_section")

    def run(quick, progress=None, peers=True):
        raise RuntimeError("boom")

    broken.run = run
    monkeypatch.setitem(sys.modules, broken.__name__, broken)
    monkeypatch.setitem(runner.SECTIONS, "broken", broken.__name__)
    out = runner.run(quick=True, sections=["broken", "numeric"], peers=False)
    assert "RuntimeError: boom" in out["errors"]["broken"]
    row = next(r for r in out["sections"]["numeric"] if r["method"] == "diffkit (default)")
    assert row["median_digits"] >= 15 and out["machine"]["cores"] and out["schema"] == report.SCHEMA


def test_cli_bench_writes_json_and_markdown(tmp_path):
    js, md = tmp_path / "run.json", tmp_path / "benchmarks.md"
    md.write_text("# an older run\n\n" + report.KEPT + "\n\n## Start-up\n\nhand-written\n")
    result = CliRunner().invoke(app, ["bench", "--quick", "--section", "numeric", "--no-peers",
                                      "--json", str(js), "--markdown", str(md)])
    assert result.exit_code == 0, result.output
    run = json.loads(js.read_text())
    assert run["schema"] == "diffkit.bench/1" and set(run["sections"]) == {"numeric"}
    assert [r["method"] for r in run["sections"]["numeric"]] == ["diffkit (default)", "plain central"]
    assert "numeric: median digits" in md.read_text() and "Numeric accuracy" in result.output
    page = md.read_text()  # the generated part replaced, the hand-written section kept
    assert "an older run" not in page and page.endswith(report.KEPT + "\n\n## Start-up\n\nhand-written\n")
    bad = CliRunner().invoke(app, ["bench", "--section", "nope"])
    assert bad.exit_code == 2
