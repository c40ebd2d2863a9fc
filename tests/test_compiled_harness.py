"""The compiled backend in the harness: a row of every cross-check, its compile time as setup."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import diffkit as dk
from diffkit.backends import compiled as C
from diffkit.harness.cases import Case
from diffkit.harness.report import suite_summary_lines
from diffkit.harness.runner import backend_times, run_suite


def _hand(x, y):
    # d/dx, d/dy of sin(x) exp(y) + x^2 y, by hand
    return [math.cos(x) * math.exp(y) + 2 * x * y, math.sin(x) * math.exp(y) + x * x]


def test_compiled_is_a_row_of_crosscheck_with_setup_and_call_times():
    rep = dk.crosscheck("sin(x)*exp(y) + x**2*y", args=(1.0, 2.0), op="grad", argnums=(0, 1), time_budget=0.02)
    rows = {r.backend: r for r in rep.rows}
    assert "compiled" in rows and rep.ok
    row = rows["compiled"]
    assert row.verdict == "ok"
    np.testing.assert_allclose(row.value, _hand(1.0, 2.0), rtol=1e-14)
    assert row.setup_time is not None and row.setup_time >= 0.0
    assert row.call_time is not None and 0.0 < row.call_time and row.repeats >= 3


def test_every_report_format_shows_the_compiled_row_and_its_setup():
    f = lambda x: np.sum(np.tanh(x) * x)  # noqa: E731
    x = np.array([0.3, -1.2, 2.0])
    rep = dk.crosscheck(f, args=(x,), op="grad", backends=["reverse", "compiled"], time_budget=0.01)
    row = [r for r in rep.rows if r.backend == "compiled"][0]
    t = np.tanh(x)
    np.testing.assert_allclose(row.value, t + x * (1 - t * t), rtol=1e-13)
    text = str(rep)
    assert "compiled" in text and "setup (first call minus the median call): reverse" in text
    setup_line = [ln for ln in text.splitlines() if ln.startswith("setup (first call")][0]
    assert "compiled" in setup_line
    md = rep.to_markdown()
    assert "| compiled |" in md and "| setup |" in md
    html = rep.to_html()
    assert "<td class=\"l\">compiled</td>" in html and "<th>setup</th>" in html
    data = json.loads(rep.to_json())
    got = [r for r in data["rows"] if r["backend"] == "compiled"][0]
    assert got["setup_time"] == pytest.approx(row.setup_time) and got["call_time"] == pytest.approx(row.call_time)


def test_an_expression_string_is_traced_once(monkeypatch):
    # the harness differentiates expression strings: the compiled backend caches per
    # function object, weakly where it can; a parsed expression (equal to any other of the
    # same text, so no weak key) is kept among the last few such functions, strongly
    calls = []
    orig = C.trace_program

    def counting(*a, **k):
        calls.append(1)
        return orig(*a, **k)

    monkeypatch.setattr(C, "trace_program", counting)
    g = dk.grad("sin(x)*exp(y) + x**2*y", argnums=(0, 1), backend="compiled")
    for _ in range(4):
        got = g(1.0, 2.0)
    np.testing.assert_allclose(got, _hand(1.0, 2.0), rtol=1e-14)
    assert len(calls) == 1
    got = g(0.5, -1.0)  # another point: the same trace
    np.testing.assert_allclose(got, _hand(0.5, -1.0), rtol=1e-14)
    assert len(calls) == 1


def test_suite_summary_gives_each_backends_median_setup_and_call():
    cases = [Case("cube", "x**3", (2.0,), "derivative"), Case("sinexp", "sin(x)*exp(x)", (0.5,), "derivative")]
    res = run_suite(cases, timeout=60)
    assert res.ok
    for rec in res.records:
        row = [r for r in rec["rows"] if r["backend"] == "compiled"][0]
        assert row["verdict"] == "ok"
        if rec["id"] == "cube":
            assert row["value"] == pytest.approx([12.0], rel=1e-15)  # 3 x^2 at 2
        else:
            assert row["value"] == pytest.approx([math.exp(0.5) * (math.sin(0.5) + math.cos(0.5))], rel=1e-14)
    times = res.summary()["backend_times"]
    assert set(times) == set(dk.backends())
    assert times["compiled"]["cases"] == 2 and times["compiled"]["call"] > 0
    line = [ln for ln in suite_summary_lines(res.summary()) if ln.startswith("median over cases")][0]
    assert "compiled" in line and " / " in line


def test_backend_times_skips_rows_without_times():
    recs = [{"rows": [{"backend": "numeric", "setup_time": None, "call_time": None},
                      {"backend": "compiled", "setup_time": 2.0, "call_time": 1.0}]},
            {"rows": []}, {"error": "no rows"}]
    assert backend_times(recs) == {"compiled": {"setup": 2.0, "call": 1.0, "cases": 1}}


def test_parsed_expressions_are_no_weak_keys():
    # a parsed expression equals every other of the same text: as a key of a weak dictionary
    # (the operators' wrappers, the backends' caches) a second, equal one would find the
    # first's entry, whose weak reference dies with the first (a flaky 'NoneType' call)
    import weakref

    a, b = (dk.Function.parse("x + y", variables=("x", "y")).fn for _ in range(2))
    assert a == b and a is not b
    with pytest.raises(TypeError):
        weakref.ref(a)
