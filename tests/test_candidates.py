"""External derivatives judged like backends: candidates in crosscheck, check_gradient, the fixture."""

from __future__ import annotations

import numpy as np
import pytest

import diffkit as dk
from diffkit.errors import BackendMismatch, InvalidArgument, InvalidType
from diffkit.testing import check_gradient


def f(x, y):
    return np.sin(x) * np.exp(y) + x ** 2 * y


def good(x, y):  # by hand
    return np.cos(x) * np.exp(y) + 2 * x * y, np.sin(x) * np.exp(y) + x ** 2


def test_a_candidate_gets_a_row_with_verdict_and_cause():
    bad = lambda x, y: (good(x, y)[0], good(x, y)[1] * (1 + 1e-6))  # noqa: E731
    rep = dk.crosscheck(f, (1.0, 2.0), "grad", argnums=(0, 1), candidates={"mine": good, "off": bad},
                        time_budget=0)
    assert [r.backend for r in rep.rows][-2:] == ["mine", "off"]
    assert rep.row("mine").verdict == "ok"
    off = rep.row("off")
    assert (off.verdict, off.cause, off.worst_index) == ("fail", "likely bug", 1)
    assert off.rel_error == pytest.approx(1e-6, rel=1e-3)
    assert not rep.ok


def test_candidates_for_jacobian_and_hessian():
    A = np.array([[1.0, 2.0], [3.0, -1.0]])
    rep = dk.crosscheck(lambda v: np.tanh(A @ v), (np.array([0.3, -0.2]),), "jacobian", backends=[],
                        candidates={"hand": lambda v: (1 - np.tanh(A @ v) ** 2)[:, None] * A}, time_budget=0)
    assert rep.row("hand").verdict == "ok"
    rep = dk.crosscheck(lambda x, y: x ** 3 * y, (2.0, 3.0), "hessian", argnums=(0, 1), backends=[],
                        candidates={"hand": lambda x, y: ((6 * x * y, 3 * x ** 2), (3 * x ** 2, 0.0))},
                        time_budget=0)
    assert rep.row("hand").verdict == "ok"


def test_check_gradient_passes_and_fails_with_the_element():
    reports = check_gradient(f, good, [(1.0, 2.0), (-0.5, 0.3)], argnums=(0, 1))
    assert len(reports) == 2
    with pytest.raises(BackendMismatch) as e:
        check_gradient(f, lambda x, y: (good(x, y)[0], np.sin(x) * np.exp(y)), [(1.0, 2.0)], argnums=(0, 1))
    msg = str(e.value)
    assert "at (1, 2)" in msg and "df/dy" in msg and "likely bug" in msg


def test_bad_candidates_are_clear_errors():
    with pytest.raises(InvalidType, match="not callable"):
        dk.crosscheck(f, (1.0, 2.0), "grad", candidates={"mine": 3})
    with pytest.raises(InvalidArgument, match="candidate names"):
        dk.crosscheck(f, (1.0, 2.0), "grad", candidates={"": good})
    with pytest.raises(InvalidArgument, match="must be callable"):
        check_gradient(f, None, [(1.0, 2.0)])


def test_a_candidate_that_raises_is_an_error_row():
    def broken(x, y):
        raise RuntimeError("adjoint solver diverged")

    rep = dk.crosscheck(f, (1.0, 2.0), "grad", backends=[], candidates={"adjoint": broken}, time_budget=0)
    row = rep.row("adjoint")
    assert row.verdict == "error" and "adjoint solver diverged" in row.message


def test_the_fixture(check_gradient):
    check_gradient(lambda x: x ** 3, lambda x: 3 * x ** 2, [1.5, -2.0], op="derivative")


def test_a_candidate_cannot_take_a_backends_name():
    with pytest.raises(InvalidArgument, match="has a backend's name"):
        dk.crosscheck(f, (1.0, 2.0), "grad", candidates={"reverse": good})


# --------------------------------------------------------------------------
# The command line: diffkit check --candidate module:function
# --------------------------------------------------------------------------

GRADS = '''
import numpy as np

def good(x, y):
    return np.cos(x) * y ** 2, 2 * np.sin(x) * y

def slip(x, y):
    return np.cos(x) * y ** 2, np.sin(x) * y      # d/dy misses the 2
'''


def _check_cli(tmp_path, monkeypatch, *candidates):
    from typer.testing import CliRunner

    from diffkit.cli import app

    (tmp_path / "mygrads.py").write_text(GRADS)
    monkeypatch.chdir(tmp_path)  # the current folder is on the import path, without PYTHONPATH
    args = ["check", "sin(x)*y**2", "--at", "x=0.5", "y=2"]
    for c in candidates:
        args += ["--candidate", c]
    return CliRunner().invoke(app, args)


def test_cli_candidate_that_agrees(tmp_path, monkeypatch):
    result = _check_cli(tmp_path, monkeypatch, "mygrads:good")
    assert result.exit_code == 0, result.output
    assert "good" in result.output and "all backends agree" in result.output


def test_cli_candidate_with_a_slip_is_caught(tmp_path, monkeypatch):
    result = _check_cli(tmp_path, monkeypatch, "mine=mygrads:slip", "mygrads:good")
    assert result.exit_code == 1, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 3}
    assert "FAIL" in rows["mine"] and "likely bug" in rows["mine"]
    assert "ok" in rows["good"] and "FAIL" not in rows["good"]
    # the element that differs, both values: d/dy = 2 sin(0.5) 2 = 1.9177 against the slip's 0.9589
    assert "0.95885" in result.output and "1.9177" in result.output


@pytest.mark.parametrize("ref, message", [
    ("mygrads:nowhere", "cannot import it"),
    ("nosuchmodule:f", "cannot import it"),
    ("sin(x)", "expected [NAME=]module:function"),
    ("numeric=mygrads:good", "is taken"),
    ("mygrads:np", "not a function"),
])
def test_cli_candidate_mistakes_are_usage_errors(tmp_path, monkeypatch, ref, message):
    result = _check_cli(tmp_path, monkeypatch, ref)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.replace("│", " ").split()) and "Traceback" not in result.output
