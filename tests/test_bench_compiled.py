"""diffkit bench: the compiled backend's column, and every figure measured twice (default
allocator in this process, tuned allocator in a child process). Small, quick forms."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from diffkit.bench import ad, peers, report
from diffkit.bench.timing import TUNED_MALLOC, allocator, environment_ok, tuned_environ
from diffkit.errors import Unavailable


def hand_rosenbrock_grad(x):
    d = x[1:] - x[:-1] ** 2
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * d - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * d
    return g


def test_the_compiled_tool_differentiates_the_bench_functions():
    tool = peers.get_tool("diffkit compiled")
    assert tool.available and tool.gradient and tool.modes == ("auto",) and "compile" in tool.note
    x = np.random.default_rng(1).normal(size=50)
    case = peers.Case("rosen", ad.rosenbrock, (x,))
    np.testing.assert_allclose(tool.grad(case)(), hand_rosenbrock_grad(x), rtol=1e-12, atol=1e-12)
    # R -> R^m, forward mode inside: d/ds sin(s g) s = cos(s g) g s + sin(s g)
    grid = np.linspace(0.0, 1.0, 7)
    tall = peers.Case("tall", ad.tall, (0.7, grid))
    want = np.cos(0.7 * grid) * grid * 0.7 + np.sin(0.7 * grid)
    np.testing.assert_allclose(tool.jacobian(tall, "auto")(), want, rtol=1e-13, atol=1e-15)
    # R^n -> R^n: d tanh(A u) / du = diag(1 - tanh^2) A
    rng = np.random.default_rng(2)
    u, a = rng.normal(size=5), rng.normal(size=(5, 5))
    sq = peers.Case("square", ad.square, (u, a))
    t = np.tanh(a @ u)
    np.testing.assert_allclose(tool.jacobian(sq, "auto")(), (1 - t * t)[:, None] * a, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="no 'reverse' Jacobian"):
        tool.jacobian(sq, "reverse")


def test_a_function_the_compiled_backend_hands_to_reverse_is_not_timed_under_its_name():
    # a custom rule: the compiled backend hands the function to the reverse backend (and warns)
    import diffkit as dk

    @dk.custom_jvp
    def cube(x):
        return x ** 3

    @cube.defjvp
    def cube_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return x ** 3, 3.0 * x ** 2 * t

    case = peers.Case("custom", lambda xp, x: xp.sum(cube(x)), (np.array([1.0, 2.0]),))
    np.testing.assert_allclose(peers.get_tool("diffkit reverse").grad(case)(), [3.0, 12.0])
    call = peers.get_tool("diffkit compiled").grad(case)
    with pytest.raises(Unavailable, match="differentiated by the reverse backend"):
        call()
    rows = ad._measure(ad._Measurement(["cheap gradient"], case, "x f",
                                       [ad._Entry(peers.get_tool("diffkit compiled"), "reverse", "grad")]),
                       budget=0.001, max_call=1.0)
    assert rows[0]["seconds"] is None and "reverse backend" in rows[0]["note"]


def test_run_has_the_compiled_column_its_setup_and_both_allocators():
    rows = ad.run(quick=True, tools=["diffkit reverse", "diffkit compiled"], sections=["scalar chain", "jacobian"],
                  budget=0.001)
    by = {(r["case"], r["tool"]): r for r in rows}
    chain = by["scalar chain 1000 ops", "diffkit compiled"]
    assert chain["mode"] == "reverse" and chain["target"] == 0.15 and chain["unit"] == "us/op"
    assert chain["setup_seconds"] > 0 and chain["seconds"] > 0
    assert chain["ratio"] == pytest.approx(chain["seconds"] * 1e6 / 1000)
    assert chain["tuned_ratio"] == pytest.approx(chain["tuned_seconds"] * 1e6 / 1000)
    for shape, target in (("(1, 1000)", 2.5), ("(1000, 1)", 2.5), ("(100, 100)", 5.0)):
        r = by[f"{shape} auto", "diffkit compiled"]
        assert r["mode"] == "auto" and r["target"] == target
        assert r["ratio"] == pytest.approx(r["seconds"] / r["f_seconds"])
        assert r["tuned_ratio"] == pytest.approx(r["tuned_seconds"] / r["tuned_f_seconds"])
    for r in rows:
        assert tuple(r) == ad.ROW_KEYS and r["tuned_seconds"] > 0 and r["tuned_spread"] >= 0
    text = ad.format_table(rows)
    assert "default allocator, then tuned" in text and " tuned " in text.splitlines()[1]
    line = [ln for ln in text.splitlines() if ln.startswith("scalar chain") and "compiled" in ln][0]
    assert f"{chain['tuned_ratio']:.2f}" in line
    nothing = ad.run(quick=True, tools=["diffkit compiled"], sections=["scalar chain"], budget=0.001, tuned=False)
    assert nothing[0]["tuned_seconds"] is None and nothing[0]["seconds"] > 0


def test_the_second_measurement_runs_in_a_child_with_the_tuned_allocator(monkeypatch):
    seen = {}
    real = subprocess.Popen

    def spy(args, **kw):
        seen["env"], seen["args"] = kw["env"], args
        return real(args, **kw)

    monkeypatch.setattr(ad.subprocess, "Popen", spy)
    monkeypatch.setattr(ad, "SCALING_SIZES_QUICK", (100,))
    said = []
    rows = ad.run(quick=True, tools=["diffkit compiled"], sections=["scaling"], budget=0.001, progress=said.append)
    assert allocator(seen["env"]) == "tuned" and environment_ok(seen["env"])
    assert seen["args"][1:] == ["-m", "diffkit.bench.ad"]
    assert said == ["ad 1/1: scaling: rosenbrock n=1e2", "ad 1/1: scaling: rosenbrock n=1e2 (tuned allocator)"]
    assert [r["case"] for r in rows] == ["rosenbrock n=1e2"] and rows[0]["tuned_seconds"] > 0  # same sizes


def test_a_failing_child_is_said_on_the_rows(monkeypatch):
    monkeypatch.setattr(ad, "tuned_environ", lambda: {**tuned_environ(), "PYTHONPATH": "/nonexistent"})
    monkeypatch.setattr(ad.sys, "executable", "/bin/false")
    rows = ad.run(quick=True, tools=["diffkit compiled"], sections=["scalar chain"], budget=0.001)
    assert rows[0]["seconds"] > 0 and rows[0]["tuned_seconds"] is None
    assert "the tuned-allocator process" in rows[0]["note"]  # failed, or could not read its spec


def test_the_docs_page_shows_default_then_tuned_and_the_compiled_targets():
    rows = [{"section": "cheap gradient", "case": "rosenbrock n=1e5", "tool": "diffkit compiled", "ratio": 1.4,
             "tuned_ratio": 1.2, "spread": 0.02},
            {"section": "cheap gradient", "case": "rosenbrock n=1e5", "tool": "diffkit reverse", "ratio": 2.5,
             "tuned_ratio": 1.9, "spread": 0.02}]
    run = {"sections": {"ad": rows}, "machine": {"environment": {}}}
    run["targets"] = report.targets(run)
    (title, head, body), *_ = report.tables(run)
    assert title.endswith("(default allocator / tuned allocator)")
    assert head == ["case", "diffkit compiled", "diffkit reverse"] and body[0] == ["rosenbrock n=1e5", "1.4 / 1.2",
                                                                                   "2.5 / 1.9"]
    t = {x["name"]: x for x in run["targets"]}
    assert t["compiled grad / f, Rosenbrock n = 1e5"]["measured"] == 1.4  # judged on the default process
    assert t["compiled grad / f, Rosenbrock n = 1e5"]["met"] is True
    md = report.to_markdown(run)
    assert "| rosenbrock n=1e5 | 1.4 / 1.2 | 2.5 / 1.9 |" in md and "`default / tuned`" in md
    json.dumps(run)


def test_environment_helpers():
    assert allocator({}) == "default" and allocator(TUNED_MALLOC) == "tuned"
    env = tuned_environ({"MALLOC_TRIM_THRESHOLD_": "5", "X": "1"})
    assert env["X"] == "1" and allocator(env) == "tuned"
    assert environment_ok(env, malloc="any") and not environment_ok(env, malloc="default")


def test_the_setup_table_shows_trace_and_compile_apart():
    rows = [{"section": "cheap gradient", "case": "mlp 64-128-10", "tool": "diffkit compiled", "ratio": 1.4,
             "setup_seconds": 0.03},
            {"section": "scaling", "case": "rosenbrock n=1e2", "tool": "diffkit compiled", "seconds": 1e-5,
             "setup_seconds": 9.0},
            {"section": "jacobian", "case": "(1, 1000) auto", "tool": "diffkit compiled", "ratio": 6.0,
             "setup_seconds": 0.002}]
    titles = {t: (h, b) for t, h, b in report.tables({"sections": {"ad": rows}})}
    (head, body), = [v for t, v in titles.items() if t.startswith("Setup (seconds)")]
    assert head == ["case", "diffkit compiled"]
    assert body == [["mlp 64-128-10", "0.03"], ["(1, 1000) auto", "0.002"]]  # scaling rows repeat the others
