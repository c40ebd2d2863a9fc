"""diffkit.plots: what each plot draws is the data it was given (Agg, no pyplot)."""

from __future__ import annotations

import base64
import math
import subprocess
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import diffkit as dk  # noqa: E402
from diffkit import plots  # noqa: E402


def _line(ax, gid):
    found = [line for line in ax.lines if line.get_gid() == gid]
    assert len(found) == 1, [line.get_gid() for line in ax.lines]
    return found[0]


def _png(fig) -> bytes:
    data = base64.b64decode(plots.png_base64(fig))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return data


# --------------------------------------------------------------------------- step sweep


def test_step_sweep_lines_are_the_sweep_errors_and_mark_the_best_steps():
    sweep = dk.step_sweep(np.sin, 1.0)
    fig = plots.step_sweep(sweep, 1.0, name="sin")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    for method in ("forward", "central", "complex"):
        line = _line(ax, method)
        np.testing.assert_array_equal(line.get_xdata(), sweep.steps)
        np.testing.assert_array_equal(line.get_ydata(), getattr(sweep, method))
        h, e = sweep.best(method)
        star = _line(ax, f"best-{method}")
        assert star.get_xdata()[0] == h
        if e > 0:
            assert star.get_ydata()[0] == e
    assert "sin" in ax.get_title() and "x = 1" in ax.get_title()
    # the complex step reaches round-off, the forward difference does not
    assert sweep.best("complex")[1] < sweep.best("forward")[1]
    _png(fig)


def test_step_sweep_from_a_function_and_a_refused_complex_step():
    fig = plots.step_sweep("abs(x)*x", 1.0)
    ax = fig.axes[0]
    assert "abs(x)*x" in ax.get_title()
    assert np.all(np.isnan(_line(ax, "complex").get_ydata()))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("complex-analytic" in t for t in labels), labels
    # central differences of a quadratic are exact: the zeros are drawn on the floor, not lost
    central = dk.step_sweep("abs(x)*x", 1.0).central
    assert len(_line(ax, "zero-central").get_xdata()) == int(np.sum(central == 0)) > 0
    with pytest.raises(TypeError, match="needs the point x"):
        plots.step_sweep(np.sin)


# --------------------------------------------------------------------------- swell


SWELL_ROWS = [
    {"n": 1, "function_status": "ok", "function_ops": 0, "naive_status": "ok", "naive_ops": 0,
     "expanded_status": "ok", "expanded_ops": 0, "cse_status": "ok", "cse_ops": 0, "dag_status": "ok",
     "dag_cse_ops": 0, "ad_status": "ok", "ad_time": 0.001},
    {"n": 2, "function_status": "ok", "function_ops": 3, "naive_status": "ok", "naive_ops": 2,
     "expanded_status": "ok", "expanded_ops": 2, "cse_status": "ok", "cse_ops": 2, "dag_status": "ok",
     "dag_cse_ops": 2, "ad_status": "ok", "ad_time": 0.001},
    {"n": 3, "function_status": "ok", "function_ops": 8, "naive_status": "ok", "naive_ops": 21,
     "expanded_status": "timeout", "cse_status": "ok", "cse_ops": 12, "dag_status": "ok", "dag_cse_ops": 9,
     "ad_status": "ok", "ad_time": 0.002},
    {"n": 4, "function_status": "ok", "function_ops": 18, "naive_status": "ok", "naive_ops": 82,
     "expanded_status": "timeout", "cse_status": "error", "cse_error": "MemoryError", "dag_status": "ok",
     "dag_cse_ops": 17, "ad_status": "ok", "ad_time": 0.002},
]


def test_swell_lines_have_the_rows_counts_and_skip_timeouts():
    fig = plots.swell(SWELL_ROWS)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert [line.get_gid() for line in ax.lines] == ["function_ops", "naive_ops", "expanded_ops", "cse_ops",
                                                     "dag_cse_ops"]
    for key in ("function_ops", "naive_ops", "dag_cse_ops"):
        line = _line(ax, key)
        assert list(line.get_xdata()) == [1, 2, 3, 4]
        assert list(line.get_ydata()) == [r[key] for r in SWELL_ROWS]
    assert list(_line(ax, "expanded_ops").get_xdata()) == [1, 2]   # n = 3, 4 timed out
    assert list(_line(ax, "cse_ops").get_xdata()) == [1, 2, 3]      # n = 4 failed
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("expanded" in t and "timeout at n = 3-4" in t for t in labels), labels
    assert any("cse" in t and "error at n = 4" in t for t in labels), labels
    # the JSON of `diffkit swell --format json` works too, and times have an AD line
    fig = plots.swell({"x0": 0.3, "rows": SWELL_ROWS}, quantity="time")
    assert list(_line(fig.axes[0], "ad_time").get_ydata()) == [r["ad_time"] for r in SWELL_ROWS]
    with pytest.raises(ValueError, match="quantity"):
        plots.swell(SWELL_ROWS, quantity="nodes")


def test_swell_of_a_real_table():
    from diffkit.swell import swell_table

    rows = swell_table(3, timeout=30, steps=("function", "naive", "dag"))
    ax = plots.swell(rows).axes[0]
    assert list(_line(ax, "naive_ops").get_ydata()) == [0, 2, 21]
    assert [line.get_gid() for line in ax.lines] == ["function_ops", "naive_ops", "dag_cse_ops"]


# --------------------------------------------------------------------------- bench


def test_bench_bars_have_the_ratios_and_targets():
    rows = [{"name": "reverse", "ratio": 3.5, "target": 4.0},
            {"name": "numeric", "ratio": 40.0, "target": 4.0},
            {"name": "symbolic", "ratio": 2.0, "target": None},
            {"name": "forward", "ratio": 1.5}]
    fig = plots.bench(rows)
    ax = fig.axes[0]
    bars = {p.get_gid(): p for p in ax.patches}
    assert list(bars) == [f"bar:{r['name']}" for r in rows]
    for r in rows:
        p = bars[f"bar:{r['name']}"]
        assert p.get_x() + p.get_width() == pytest.approx(r["ratio"])
    # under the target green, over it red, no target blue
    rgb = matplotlib.colors.to_rgb
    assert bars["bar:reverse"].get_facecolor()[:3] == pytest.approx(rgb(plots.VERDICT_COLORS["ok"]))
    assert bars["bar:numeric"].get_facecolor()[:3] == pytest.approx(rgb(plots.VERDICT_COLORS["fail"]))
    assert bars["bar:symbolic"].get_facecolor()[:3] == pytest.approx(rgb("C0"))
    targets = [c for c in ax.collections if str(c.get_gid()).startswith("target:")]
    assert [c.get_gid() for c in targets] == ["target:reverse", "target:numeric"]
    for c in targets:
        (x0, _), (x1, _) = c.get_segments()[0]
        assert x0 == x1 == 4.0
    assert [t.get_text() for t in ax.get_yticklabels()] == ["reverse", "numeric", "symbolic", "forward"]
    assert ax.get_xscale() == "linear"
    # ratios spanning decades go on a log axis; a missing ratio is "n/a", not a bar
    fig = plots.bench([{"name": "a", "ratio": 2.0}, {"name": "b", "ratio": 2000.0},
                       {"name": "c", "ratio": float("nan")}])
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and len(ax.patches) == 2
    assert ax.patches[1].get_x() + ax.patches[1].get_width() == pytest.approx(2000.0)
    assert any(t.get_text().strip() == "n/a" for t in ax.texts)
    with pytest.raises(ValueError, match="name"):
        plots.bench([{"ratio": 1.0}])


# --------------------------------------------------------------------------- sigmoid


def test_sigmoid_derivative_is_sigma_times_one_minus_sigma():
    fig = plots.sigmoid()
    ax = fig.axes[0]
    s_line, d_line = _line(ax, "sigmoid"), _line(ax, "derivative")
    x = np.asarray(d_line.get_xdata())
    s = np.array([1.0 / (1.0 + math.exp(-v)) for v in x])      # independently of diffkit
    np.testing.assert_allclose(s_line.get_ydata(), s, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(d_line.get_ydata(), s * (1 - s), rtol=1e-12, atol=1e-16)
    i = int(np.argmax(d_line.get_ydata()))
    assert x[i] == 0.0 and d_line.get_ydata()[i] == 0.25
    assert any("0.25" in t.get_text() and "x = 0" in t.get_text() for t in ax.texts)


# --------------------------------------------------------------------------- report


def test_report_plot_has_one_entry_per_backend():
    rep = dk.crosscheck("abs(x)*sin(x) + x**3", args=(0.7,), op="derivative", rtol={"numeric": 1e-15},
                        time_budget=0.0)
    assert rep.row("numeric").verdict == "fail"
    fig = rep.plot()
    ax = fig.axes[0]
    backends = [r.backend for r in rep.rows]
    assert [t.get_text() for t in ax.get_yticklabels()] == backends
    assert ax.get_xscale() == "log"
    # every backend has its error (a bar, or the "exact" circle) and its tolerance
    gids = {a.get_gid() for a in list(ax.patches) + list(ax.lines)}
    for b in backends:
        assert f"error:{b}" in gids and f"tolerance:{b}" in gids
    num = rep.row("numeric")
    bar = [p for p in ax.patches if p.get_gid() == "error:numeric"][0]
    assert bar.get_x() + bar.get_width() == pytest.approx(num.abs_error)
    assert bar.get_facecolor()[:3] == pytest.approx(matplotlib.colors.to_rgb(plots.VERDICT_COLORS["fail"]))
    tol = _line(ax, "tolerance:numeric").get_xdata()[0]
    assert tol < num.abs_error and num.abs_error / tol == pytest.approx(num.tol_ratio)
    # drawing into a given Axes returns that Axes' figure
    Figure = plots.require_matplotlib()
    mine = Figure()
    target = mine.add_subplot()
    assert plots.report(rep, ax=target) is mine and target.get_yticklabels()[0].get_text() == backends[0]


# --------------------------------------------------------------------------- suite


def _fake_records():
    return [
        {"id": "a", "verdict": "ok", "elapsed": 0.2,
         "rows": [{"backend": "symbolic", "verdict": "ok", "tol_ratio": 0.0},
                  {"backend": "numeric", "verdict": "ok", "tol_ratio": 0.03},
                  {"backend": "reverse", "verdict": "ok", "tol_ratio": 0.002}]},
        {"id": "b", "verdict": "fail", "elapsed": 0.5,
         "rows": [{"backend": "symbolic", "verdict": "ok", "tol_ratio": 0.1},
                  {"backend": "numeric", "verdict": "fail", "tol_ratio": "inf"},
                  {"backend": "reverse", "verdict": "fail", "tol_ratio": 30.0}]},
        {"id": "c", "verdict": "timeout", "elapsed": 60.0, "rows": []},
    ]


def test_suite_plot_ratios_and_times():
    fig = plots.suite(_fake_records())
    ratio_ax, time_ax = fig.axes[:2]
    assert ratio_ax.get_yscale() == "log"
    floor, top = ratio_ax.get_ylim()
    numeric = _line(ratio_ax, "ratio:numeric").get_ydata()
    assert numeric[0] == 0.03 and numeric[1] > 30.0          # inf drawn at the ceiling
    assert list(_line(ratio_ax, "ratio:reverse").get_ydata()) == [0.002, 30.0]
    assert _line(ratio_ax, "ratio:symbolic").get_ydata()[0] < 0.002   # exact: on the floor
    assert any(line.get_ydata()[0] == 1.0 for line in ratio_ax.lines if line.get_label().startswith("tolerance"))
    times = {p.get_gid(): p.get_y() + p.get_height() for p in time_ax.patches}
    assert times == pytest.approx({"time:a": 0.2, "time:b": 0.5, "time:c": 60.0})
    assert [t.get_text() for t in time_ax.get_xticklabels()] == ["a", "b", "c"]
    # one panel at a time, into a given Axes
    Figure = plots.require_matplotlib()
    mine = Figure()
    assert plots.suite(_fake_records(), ax=mine.add_subplot(), kind="time") is mine
    with pytest.raises(TypeError, match="pair of Axes"):
        plots.suite(_fake_records(), ax=mine.axes[0])
    [plot] = plots.suite_plots(_fake_records())
    assert set(plot) == {"alt", "data"} and base64.b64decode(plot["data"])[:4] == b"\x89PNG"


def test_suite_html_report_embeds_the_plot(tmp_path):
    from typer.testing import CliRunner

    from diffkit.cli import app

    out = tmp_path / "x.html"
    result = CliRunner().invoke(app, ["suite", "seeds", "--jobs", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert '<img alt="suite seeds: error / tolerance' in html
    assert html.count('<img alt="') == 1 and 'src="data:image/png;base64,' in html
    start = html.index("base64,") + len("base64,")
    assert base64.b64decode(html[start:html.index('"', start)])[:4] == b"\x89PNG"


def test_swell_cli_writes_the_plot(tmp_path):
    from typer.testing import CliRunner

    from diffkit.cli import app

    png = tmp_path / "swell.png"
    result = CliRunner().invoke(app, ["swell", "--n", "3", "--format", "json", "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = CliRunner().invoke(app, ["swell", "--n", "2", "--plot", str(tmp_path / "swell.txt")])
    assert result.exit_code == 2 and not (tmp_path / "swell.txt").exists()


# --------------------------------------------------------------------------- without matplotlib


def test_a_clear_import_error_without_matplotlib(monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    for draw in (plots.sigmoid, lambda: plots.bench([{"name": "f", "ratio": 1.0}]),
                 lambda: plots.swell(SWELL_ROWS), lambda: plots.suite(_fake_records())):
        with pytest.raises(ImportError) as err:
            draw()
        assert str(err.value) == "diffkit's plots need matplotlib: pip install 'diffkit[plot]'"


def test_suite_html_without_matplotlib_has_no_plots(monkeypatch):
    from diffkit.cli import _suite_plots

    assert _suite_plots(_fake_records())    # with matplotlib: one plot
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert _suite_plots(_fake_records()) == []


def test_importing_diffkit_plots_imports_no_matplotlib():
    code = ("import sys, diffkit, diffkit.plots, diffkit.harness; "
            "sys.exit(1 if 'matplotlib' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
