"""The numeric-accuracy and symbolic sections of ``diffkit bench`` (diffkit.bench.accuracy, .symbolic)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diffkit.bench import accuracy, symbolic

ROOT = Path(__file__).resolve().parents[1]

NUMERIC_KEYS = {"section", "method", "version", "median_digits", "worst_digits", "median_evals", "bound_rate",
                "second_median_digits", "second_worst_digits", "second_median_evals", "seconds_per_case"}
SYMBOLIC_KEYS = {"section", "case", "n", "setup_seconds", "call_seconds", "reverse_call_seconds", "ratio",
                 "ops_dag", "ops_naive", "ops_cse", "target"}


# ---------------------------------------------------------------- digits


def test_digits_exact_gets_the_cap_and_perturbed_the_right_digits():
    assert accuracy.digits(2.5, 2.5) == accuracy.DIGITS_CAP == 16.0
    assert accuracy.digits(2.5 * (1 + 1e-9), 2.5) == pytest.approx(9.0, abs=1e-6)
    assert accuracy.digits(-3.0 * (1 - 1e-4), -3.0) == pytest.approx(4.0, abs=1e-9)
    assert accuracy.digits(1e-7, 0.0) == pytest.approx(7.0)          # absolute error where the truth is 0
    assert accuracy.digits(2.0 * (1 + 1e-20), 2.0) == 16.0           # never above the cap
    assert accuracy.digits(float("nan"), 1.0) == accuracy.digits(float("inf"), 1.0) == 0.0
    assert accuracy.digits(-1.0, 1.0) == pytest.approx(-math.log10(2))  # worse than no digits: negative


def test_truth_is_the_derivative_to_50_digits():
    f = {c[0]: c for c in accuracy.CASES}["sin"][1]
    assert accuracy.truth(f, 1.3, 1) == math.cos(1.3)
    assert accuracy.truth(f, 1.3, 2) == -math.sin(1.3)


def test_evaluate_scores_an_exact_and_a_perturbed_method():
    cases = accuracy.select_cases(["exp", "log", "sqrt"])
    truths = {(name, n): accuracy.truth(f, x, n) for name, f, x in cases for n in (1, 2)}
    by_x = {x: name for name, _, x in cases}

    def exact(fn, x, n):
        return accuracy.Estimate(truths[(by_x[x], n)], 0.0, 1)

    def perturbed(fn, x, n):
        t = truths[(by_x[x], n)]
        return accuracy.Estimate(t * (1 + 1e-6), abs(t) * 1e-12, 5 * n)   # estimate too small: never bounds

    row = accuracy.evaluate("exact", exact, cases, dict(truths), per_case=True)
    assert row["median_digits"] == row["worst_digits"] == 16.0
    assert row["second_median_digits"] == row["second_worst_digits"] == 16.0
    assert row["bound_rate"] == 1.0 and row["median_evals"] == 1.0
    assert [c["case"] for c in row["cases"]] == ["exp", "log", "sqrt"]
    row = accuracy.evaluate("perturbed", perturbed, cases, dict(truths))
    assert row["median_digits"] == pytest.approx(6.0, abs=1e-6)
    assert row["worst_digits"] == pytest.approx(6.0, abs=1e-6)
    assert row["bound_rate"] == 0.0
    assert (row["median_evals"], row["second_median_evals"]) == (5.0, 10.0)
    assert "cases" not in row


def test_select_cases():
    assert len(accuracy.select_cases()) == len(accuracy.CASES) == 65
    assert [c[0] for c in accuracy.select_cases(limit=2)] == ["exp", "sin"]
    with pytest.raises(ValueError, match="nope"):
        accuracy.select_cases(["nope"])


# ---------------------------------------------------------------- numeric rows


def test_numeric_rows_of_a_tiny_run():
    messages = []
    rows = accuracy.run(quick=True, progress=messages.append, limit=3)
    json.loads(json.dumps(rows, allow_nan=False))
    labels = [r["method"] for r in rows]
    assert labels[:2] == ["diffkit (default)", "plain central"]
    assert set(labels) <= {m[0] for m in accuracy.METHODS}
    for r in rows:
        assert NUMERIC_KEYS <= set(r)
        assert r["section"] == "numeric" and r["n_cases"] == 3 and r["seconds_per_case"] > 0
    dk_row, central = rows[0], rows[1]
    assert dk_row["version"] and central["version"] is None and central["bound_rate"] is None
    assert [c["case"] for c in dk_row["cases"]] == ["exp", "sin", "cos"]
    assert dk_row["median_digits"] >= 15 and dk_row["median_evals"] <= 4 and dk_row["ok"] is True
    assert any("diffkit" in m for m in messages)
    assert [r["method"] for r in accuracy.run(quick=True, peers=False, limit=1)] == ["diffkit (default)",
                                                                                    "plain central"]


# ---------------------------------------------------------------- symbolic


def test_logistic_op_counts_are_swells():
    from diffkit.swell import logistic, swell_table

    counts = [symbolic.op_counts(lambda x, n=n: logistic(x, n), [0.3]) for n in range(1, 5)]
    assert [c["ops_naive"] for c in counts] == [0, 2, 21, 82]
    table = swell_table(4, timeout=60, steps=("naive", "cse", "dag"))
    assert [c["ops_naive"] for c in counts] == [r["naive_ops"] for r in table]
    assert [c["ops_cse"] for c in counts] == [r["cse_ops"] for r in table]
    assert [c["ops_dag"] for c in counts] == [r["dag_cse_ops"] for r in table]


def test_sum_sin_op_counts_grow_linearly():
    # sin(x_i) x_i^2 -> cos(x_i) x_i^2 + 2 x_i sin(x_i): 7 operations per component, no sharing to find
    for n in (3, 6):
        assert symbolic.op_counts(symbolic.sum_sin_sq, [np.ones(n)]) == {"ops_dag": 7 * n, "ops_naive": 7 * n,
                                                                          "ops_cse": 7 * n}


def test_symbolic_rows_of_a_tiny_run():
    rows = symbolic.run(quick=True, n=8, logistic_n=4, points=500,
                        scaling={"sum sin(x) x^2": (4,), "logistic map": (3,)})
    json.loads(json.dumps(rows, allow_nan=False))
    assert [(r["section"], r["case"], r["n"]) for r in rows] == [
        ("symbolic", "sum sin(x) x^2", 8), ("symbolic", "logistic map", 4),
        ("symbolic-scaling", "sum sin(x) x^2", 4), ("symbolic-scaling", "logistic map", 3)]
    for r in rows:
        assert SYMBOLIC_KEYS <= set(r)
        assert r["setup_seconds"] > 0 and r["call_seconds"] > 0 and r["reverse_call_seconds"] > 0
        assert r["ratio"] == pytest.approx(r["call_seconds"] / r["reverse_call_seconds"])
        assert (r["target"] is None) == (r["section"] == "symbolic-scaling")
    assert rows[1]["ops_naive"] == 82 and rows[3]["ops_naive"] == 21
    assert rows[0]["ops_dag"] == 7 * 8
    names = [v["method"] for v in rows[1]["variants"]]
    assert "SymPy naive diff, lambdify + cse" in names and "SymPy naive diff, lambdify" not in names  # quick


# ---------------------------------------------------------------- the scripts and the import


def _script(*args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, *args], check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_bench_numeric_script_runs(tmp_path):
    out = _script("bench/bench_numeric.py", "--quick", "--limit", "3", "--cases", "--json", str(tmp_path / "r.json"))
    assert "3 smooth test functions, truth: mpmath.diff at 50 digits" in out
    assert "diffkit (default)" in out and "plain central" in out and "time/case" in out
    assert "diffkit per case" in out and "  exp " in out
    assert json.loads((tmp_path / "r.json").read_text())[0]["method"] == "diffkit (default)"


def test_bench_symbolic_script_runs():
    out = _script("bench/bench_symbolic.py", "--quick", "--n", "10", "--logistic-n", "4", "--points", "500")
    assert "gradient of sum(sin(x) x^2), n = 10" in out and "ratio" in out
    assert "logistic map n = 4, derivative at 500 points" in out
    assert "symbolic DAG-aware, compiled" in out and "(left out by --quick)" in out
    assert "operations: DAG-aware 17, naive 82, naive + cse 27" in out


def test_import_diffkit_imports_no_bench_and_no_peer():
    code = ("import sys, diffkit; bad = [m for m in sys.modules if m.startswith(('diffkit.bench', 'numdifftools', "
            "'scipy.differentiate', 'jax', 'torch', 'autograd'))]; print(bad); sys.exit(bool(bad))")
    assert _script("-c", code).strip() == "[]"
