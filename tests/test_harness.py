"""The harness: cross-check reports, causes of disagreement, report formats, suites and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from typer.testing import CliRunner

import diffkit as dk
from diffkit.cli import app
from diffkit.harness.report import from_json
from diffkit.harness.runner import read_results, run_suite
from diffkit.harness.suites import Case, load_toml

runner = CliRunner()


def test_agreeing_backends_report():
    rep = dk.crosscheck("sin(x)*exp(y) + x**2*y", args=(1.0, 2.0), op="grad", argnums=(0, 1))
    assert rep.ok and rep.reference.kind.startswith("symbolic")
    assert {r.backend for r in rep.rows} == set(dk.backends())
    want = [np.cos(1.0) * np.exp(2.0) + 4.0, np.sin(1.0) * np.exp(2.0) + 1.0]  # by hand
    np.testing.assert_allclose(rep.reference.value, want, rtol=1e-15)
    for r in rep.rows:
        assert r.verdict == "ok" and r.call_time > 0 and r.repeats >= 3
        np.testing.assert_allclose(r.value, want, rtol=1e-12)
    assert rep.row("numeric").nfev > 0 and rep.row("numeric").error_estimate < 1e-12
    assert "all backends agree" in str(rep)


def _wrong_rule():
    @dk.custom_vjp
    def f(x):
        return np.sin(x)

    f.defvjp(lambda x: (np.sin(x), x), lambda x, g: (1.001 * g * np.cos(x),))  # off by 0.1 %
    return f


def test_a_wrong_custom_rule_is_named_a_likely_bug():
    rep = dk.crosscheck(_wrong_rule(), args=(0.7,), op="grad")
    assert not rep.ok
    assert rep.row("symbolic").verdict == rep.row("numeric").verdict == "ok"  # they use the function
    for b in ("forward", "reverse"):
        row = rep.row(b)
        assert (row.verdict, row.cause) == ("fail", "likely bug")
        assert f"'{b}' differs from the reference at [0] (df/dx)" in row.message


def test_assert_backends_agree_message():
    with pytest.raises(dk.BackendMismatch) as info:
        dk.assert_backends_agree(_wrong_rule(), (0.7,), op="grad")
    msg = str(info.value)
    assert isinstance(info.value, AssertionError)
    assert "'reverse' differs" in msg and "likely bug" in msg and "0.7648421872844885" in msg
    dk.assert_backends_agree(lambda x, y: x * np.exp(y), (0.5, -1.0), op="hessian", argnums=(0, 1))


def test_truncation_and_round_off_are_told_apart():
    f = lambda x: np.exp(x) * np.sin(x)  # noqa: E731
    rep = dk.crosscheck(f, (0.7,), "grad", backends=[dk.Numeric(method="forward", step=1e-3),
                                                     dk.Numeric(method="central", step=1e-12), "reverse"])
    big, tiny, rev = rep.rows
    assert (big.verdict, big.cause) == ("fail", "truncation")  # error shrinks with the step
    assert (tiny.verdict, tiny.cause) == ("fail", "round-off")  # error grows as the step shrinks
    assert rev.verdict == "ok"


def test_convention_at_a_kink():
    # relu written with maximum: SymPy (and diffkit) say 1/2 at 0; a backend saying 1 is a convention
    @dk.custom_jvp
    def relu(x):
        return np.maximum(x, 0.0)

    relu.defjvp(lambda p, t: (relu(p[0]), np.where(p[0] >= 0, 1.0, 0.0) * t[0]))  # JAX-like relu'(0) = 1
    rep = dk.crosscheck(relu, (0.0,), "derivative")
    assert rep.kinks and "maximum" in rep.kinks[0]
    assert rep.row("forward").verdict == "convention" and rep.row("forward").cause == "convention"
    assert rep.row("symbolic").verdict == "ok"
    assert rep.ok  # a difference explained as a convention is agreement
    # the same function near the kink is not a convention: a real disagreement would be a bug
    assert dk.crosscheck(relu, (1e-3,), "derivative").ok


def test_nan_in_the_function_cause():
    # the classic where-NaN: the unselected sqrt branch is NaN at x < 0, and reverse mode
    # multiplies its zero cotangent by the NaN partial; the reference (a Piecewise) is 0
    rep = dk.crosscheck(lambda x: np.where(x > 0, np.sqrt(x), 0.0), (-1.0,), "derivative")
    row = rep.row("reverse")
    assert (row.verdict, row.cause) == ("fail", "nan/inf in the function")
    assert "numpy.sqrt gives nan" in row.message
    assert rep.row("forward").verdict == rep.row("symbolic").verdict == "ok"


def test_reference_without_sympy_form_is_mpmath_differences():
    def f(v):  # eigh has no SymPy counterpart
        return np.sum(np.linalg.eigh(v)[0] ** 2)

    a = np.array([[2.0, 0.5], [0.5, 1.0]])
    rep = dk.crosscheck(f, (a,), "grad")
    assert rep.reference.kind.startswith("mpmath differences") and "no symbolic reference" in rep.reference.note
    assert float(np.max(rep.reference.error)) < 1e-20
    assert rep.row("symbolic").verdict == "unsupported"
    # sum of squared eigenvalues = a00^2 + 2 a10^2 + a11^2 as NumPy reads A (its lower triangle):
    # gradient (2 a00, 0, 4 a10, 2 a11); the AD rules take A as symmetric: 2A
    np.testing.assert_allclose(rep.reference.value, [4.0, 0.0, 2.0, 2.0], rtol=1e-13)
    assert rep.row("numeric").verdict == "ok"
    for b in ("forward", "reverse"):
        row = rep.row(b)
        assert (row.verdict, row.cause) == ("convention", "input structure"), row.message
        np.testing.assert_allclose(row.value, (2 * a).ravel(), rtol=1e-13)
    assert rep.ok


@pytest.mark.parametrize("op, kw", [("jacobian", {}), ("hessian", {}), ("derivative", {"order": 3}),
                                    ("jvp", {}), ("vjp", {})])
def test_every_op(op, kw):
    f = (lambda x: np.sin(x) * x) if op == "derivative" else (lambda v: np.stack([v[0] * v[1], np.exp(v[1])]))
    if op == "hessian":
        f = lambda v: v[0] ** 2 * np.exp(v[1])  # noqa: E731
    args = (0.4,) if op == "derivative" else (np.array([0.3, -0.8]),)
    rep = dk.crosscheck(f, args, op, time_budget=0.0, **kw)
    assert rep.ok, str(rep)


def test_json_round_trip_and_schema():
    rep = dk.crosscheck(lambda x, y: x * y**2, (2.0, 3.0), "grad", argnums=(0, 1), time_budget=0.0)
    data = json.loads(rep.to_json())
    assert data["schema"] == "diffkit.crosscheck/1" and data["ok"] is True
    assert {"backend", "verdict", "value", "abs_error", "rel_error", "tol_ratio", "setup_time", "call_time",
            "nfev", "error_estimate", "cause"} <= set(data["rows"][0])
    back = from_json(rep.to_json())
    assert back.ok == rep.ok and back.labels == rep.labels
    assert [r.value for r in back.rows] == [r.value for r in rep.rows]
    np.testing.assert_array_equal(back.reference.value, rep.reference.value)
    with pytest.raises(ValueError, match="schema"):
        from_json(json.dumps({"schema": "other"}))


def test_html_escapes_user_text():
    rep = dk.crosscheck("x**2", (1.0,), "derivative", name="<script>alert(1)</script>", time_budget=0.0)
    html = rep.to_html()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.startswith("<!doctype html>") and "<link" not in html and "<script" not in html
    md = rep.to_markdown()
    assert md.startswith("### derivative of &lt;script&gt;alert(1)&lt;/script&gt;") and "<script" not in md


# ---------------------------------------------------------------------------
# Suites: isolation, timeouts, streaming, resume, dask
# ---------------------------------------------------------------------------


@pytest.fixture()
def slowmod(tmp_path, monkeypatch):
    (tmp_path / "slowmod.py").write_text(textwrap.dedent("""
        import time
        import numpy as np

        def hang(x):
            time.sleep(600)
            return x

        def slow_square(x):
            time.sleep(0.03)  # per call: a case takes about a second
            return x * x

        def crash(x):
            import os
            os._exit(3)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return tmp_path


def test_suite_survives_hang_error_and_crash(slowmod, tmp_path):
    cases = [Case("good", "x**3", (2.0,), "derivative"),
             Case("hangs", "slowmod:hang", (1.0,), "derivative"),
             Case("crashes", "slowmod:crash", (1.0,), "derivative"),
             Case("unknown-module", "nosuchmodule:f", (1.0,), "derivative"),
             Case("good-too", "sin(x)", (0.5,), "grad")]
    results = tmp_path / "run.jsonl"
    res = run_suite(cases, jobs=2, timeout=3.0, results=str(results))
    verdicts = {r["id"]: r["verdict"] for r in res.records}
    assert verdicts == {"good": "ok", "hangs": "timeout", "crashes": "error", "unknown-module": "error",
                        "good-too": "ok"}
    assert [r["id"] for r in res.records] == [c.id for c in cases]  # case order, each once
    assert set(read_results(str(results))) == set(verdicts)
    assert not res.ok


def test_toml_suite_and_cli(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(textwrap.dedent("""
        [[case]]
        id = "rosenbrock"
        f = "100*(y - x**2)**2 + (1 - x)**2"
        at = { x = 1.2, y = 0.8 }
        ops = ["grad", "hessian"]

        [[case]]
        id = "abs-at-kink"
        f = "abs(x)"
        args = [0.0]
        op = "derivative"
    """))
    cases = load_toml(str(path))
    assert [c.id for c in cases] == ["rosenbrock/grad", "rosenbrock/hessian", "abs-at-kink"]
    result = runner.invoke(app, ["suite", str(path), "--list"])
    assert result.output.split() == ["rosenbrock/grad", "rosenbrock/hessian", "abs-at-kink"]
    for ext in ("json", "md", "html"):
        out = tmp_path / f"report.{ext}"
        result = runner.invoke(app, ["suite", str(path), "--jobs", "1", "--out", str(out)])
        assert result.exit_code == 0, result.output
        text = out.read_text()
        assert "rosenbrock/hessian" in text
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["schema"] == "diffkit.suite/1" and data["summary"]["counts"] == {"ok": 3}


@pytest.mark.parametrize("content, needle", [
    ('[[case]]\nid = "a"\nf = "x"\nargs = [1.0]\n[[case]]\nid = "a"\nf = "x"\nargs = [1.0]\n', "duplicate"),
    ('[[case]]\nf = "x"\nargs = [1.0]\ncolour = 1\n', "unknown keys"),
    ('[[case]]\nf = "x*y"\nat = { x = 1.0 }\n', "no value for"),
    ('[[case]]\nf = "x"\nargs = [1.0]\nop = "gradient"\n', "not one of"),
])
def test_bad_suite_files_exit_2(tmp_path, content, needle):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    result = runner.invoke(app, ["suite", str(path)])
    assert result.exit_code == 2
    assert needle in result.output.replace("\n", " ").replace("│", " ")


def test_failing_case_exits_1(tmp_path):
    path = tmp_path / "fails.toml"
    # the where-NaN case: reverse mode gives NaN where the derivative is 0
    path.write_text('[[case]]\nid = "where-nan"\nf = "where(x > 0, sqrt(x), 0)"\nargs = [-1.0]\nop = "derivative"\n')
    result = runner.invoke(app, ["suite", str(path), "--jobs", "1"])
    assert result.exit_code == 1, result.output
    assert "nan/inf" in result.output


@pytest.mark.slow  # tests/test_faults.py's SIGKILL test is the default run's kill-and-resume
def test_killed_suite_resumes_without_loss_or_duplicates(slowmod, tmp_path):
    path = tmp_path / "slow.toml"
    path.write_text("".join(f'[[case]]\nid = "c{i}"\nf = "slowmod:slow_square"\nargs = [{i + 1}.0]\n'
                            f'op = "derivative"\n\n' for i in range(8)))
    results = tmp_path / "run.jsonl"
    cmd = [sys.executable, "-m", "diffkit.cli", "suite", str(path), "--jobs", "1", "--results", str(results)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(slowmod)}, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and len(read_results(str(results))) < 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the suite and its case processes, mid-run
    proc.wait()
    done_before = read_results(str(results))
    assert 3 <= len(done_before) < 8
    result = subprocess.run(cmd + ["--resume"], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(slowmod)})
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    ids = [rec["id"] for rec in lines]
    assert sorted(ids) == sorted(f"c{i}" for i in range(8))  # every case exactly once
    assert "taken from the results file" in result.stdout


def test_dask_local_cluster_gives_the_same_rows(tmp_path):
    distributed = pytest.importorskip("distributed")
    cases = [Case("cube", "x**3", (2.0,), "derivative"), Case("prod", "x*y", (2.0, 3.0), "grad"),
             Case("kink", "abs(x)", (0.0,), "derivative")]
    local = run_suite(cases, jobs=1, timeout=60)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        remote = run_suite(cases, timeout=60, scheduler=client)

    def essence(res):
        return [(r["id"], r["verdict"], [(row["backend"], row["verdict"], row["value"]) for row in r["rows"]])
                for r in res.records]

    assert essence(local) == essence(remote)


def test_check_command_exit_codes():
    ok = runner.invoke(app, ["check", "x*y**2", "--at", "x=1", "y=3", "--format", "json"])
    assert ok.exit_code == 0
    assert json.loads(ok.output)["ok"] is True
    bad = runner.invoke(app, ["check", "where(x > 0, sqrt(x), 0)", "--at", "x=-1", "--op", "derivative"])
    assert bad.exit_code == 1 and "nan/inf in the function" in bad.output
    assert runner.invoke(app, ["check", "x", "--at", "x=1", "--op", "nope"]).exit_code == 2




def test_code_a_backend_cannot_trace_is_unsupported_there_not_a_bug():
    # math.erf inside a custom_jvp: the AD backends use the rule, SymPy cannot trace math.erf
    import math

    @dk.custom_jvp
    def erf(x):
        return math.erf(x)

    @erf.defjvp
    def erf_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return math.erf(x), 2.0 / math.sqrt(math.pi) * math.exp(-x * x) * t

    report = dk.crosscheck(erf, (0.5,), "derivative", time_budget=0)
    verdicts = {r.backend: r.verdict for r in report.rows}
    assert verdicts == {"symbolic": "unsupported", "numeric": "ok", "forward": "ok", "reverse": "ok",
                        "compiled": "ok"}  # compiled: the reverse backend takes a custom rule
    assert "TracingError" in next(r.message for r in report.rows if r.backend == "symbolic")
    assert report.ok
