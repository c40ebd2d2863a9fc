"""The command line (typer's test runner)."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from diffkit.cli import app

runner = CliRunner()


def test_check_prints_every_backend():
    result = runner.invoke(app, ["check", "sin(x)*exp(y) + x**2*y", "--at", "x=1", "y=2"])
    assert result.exit_code == 0, result.output
    for backend in ("symbolic", "numeric", "forward", "reverse"):
        assert backend in result.output
    assert "7.992324048" in result.output and "all backends agree" in result.output


def test_check_json_and_ops():
    result = runner.invoke(app, ["check", "x**3", "--at", "x=2", "--op", "derivative", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [r["value"] for r in data["rows"]] == [[12.0]] * len(data["rows"])
    assert {r["backend"] for r in data["rows"]} == {"symbolic", "numeric", "forward", "reverse", "compiled"}
    assert data["ok"] is True and data["reference"]["value"] == [12.0]
    result = runner.invoke(app, ["check", "x*y**2", "--at", "x=1", "y=3", "--op", "hessian", "--format", "json"])
    data = json.loads(result.output)
    assert data["rows"][0]["value"] == [0.0, 6.0, 6.0, 2.0]  # [[0, 2y], [2y, 2x]]


def test_check_vector_argument():
    result = runner.invoke(app, ["check", "x*y", "--at", "x=1,2", "y=3", "--op", "jacobian", "--format",
                                 "json"])
    assert result.exit_code == 0, result.output
    # d(x*y)/dx = y I, d(x*y)/dy = x, flattened in argument order
    assert json.loads(result.output)["reference"]["value"] == [3.0, 0.0, 0.0, 3.0, 1.0, 2.0]


def test_bad_usage_exits_2_with_a_message():
    for args, needle in [(["check", "x.real", "--at", "x=1"], "attribute access"),
                         (["check", "x+y", "--at", "x=1"], "no value for y"),
                         (["check", "x", "--at", "x=abc"], "not a number"),
                         (["check", "x", "--at", "z=1", "x=1"], "unknown variable"),
                         (["check", "x", "--at", "x=1", "--op", "nope"], "choose one of")]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert needle in result.output.replace("\n", " ").replace("│", " ").replace("  ", " "), result.output


def test_backends_command():
    result = runner.invoke(app, ["backends"])
    assert result.exit_code == 0 and "reverse" in result.output


def test_import_diffkit_pulls_in_no_optional_dependency():
    code = ("import sys, diffkit; bad = [m for m in ('typer', 'rich', 'matplotlib', 'dask', 'hypothesis') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_progress_on_a_terminal_only():
    # a spinner with the elapsed time on stderr while `check` works, when stderr is a terminal
    # (FORCE_COLOR makes rich treat it as one); nothing at all otherwise
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "diffkit.cli", "check", "sin(x)", "--at", "x=1"]
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                           env={k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")})
    assert plain.returncode == 0 and plain.stderr == "" and "verdict: all backends agree" in plain.stdout
    shown = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "FORCE_COLOR": "1"})
    assert shown.returncode == 0 and "cross-checking grad of sin(x) (limit 60 s)" in shown.stderr
    assert "cross-checking" not in shown.stdout
