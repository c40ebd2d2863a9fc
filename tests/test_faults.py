"""Faults: the runner killed (SIGKILL, SIGTERM) at several moments, two runs on one file, corrupted files.

After each fault no case process (nor anything a case started) is left
running, and a ``--resume`` ends with every case recorded exactly once. The
processes of a run are found by a tag in their environment (each case
process inherits the runner's), read from ``/proc``. The small form runs by
default; more kill moments, repeated kills and a dask cluster of worker
processes run under ``-m slow``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from diffkit.harness.results import read_results
from diffkit.harness.runner import _run_subprocess, run_suite
from diffkit.harness.suites import load_toml

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

MODULE = """
    import os, subprocess, sys, time

    def slow_square(x):
        time.sleep(0.02)  # per call: a cross-check calls f a few dozen times
        return x * x

    def hang(x):
        subprocess.Popen(["sleep", "600"])   # a process of the case's own: it must die with the case
        time.sleep(600)
        return x

    def noisy(x):
        import atexit
        print("noise on stdout")
        atexit.register(lambda: print("more noise on stdout at exit"))
        return x * x
"""


def _tagged(tag: str) -> list[int]:
    """Live processes (not zombies) whose environment carries the tag."""
    found = []
    needle = f"DIFFKIT_FAULT_TAG={tag}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read()
            with open(f"/proc/{entry}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in env.split(b"\0") and state != b"Z":
            found.append(int(entry))
    return found


def _none_left(tag: str, within: float = 5.0) -> None:
    deadline = time.time() + within
    while time.time() < deadline:
        if not _tagged(tag):
            return
        time.sleep(0.1)
    left = _tagged(tag)
    details = [Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode() for p in left
               if os.path.exists(f"/proc/{p}")]
    pytest.fail(f"orphan case processes left: {left} {details}")


class Run:
    """``diffkit suite`` on a suite of the fault module, in a subprocess carrying a fresh tag."""

    def __init__(self, tmp_path: Path, cases: list[tuple[str, str]], timeout: float = 30.0):
        (tmp_path / "faultmod.py").write_text(textwrap.dedent(MODULE))
        self.suite = tmp_path / "faults.toml"
        self.suite.write_text("".join(f'[[case]]\nid = "{i}"\nf = "faultmod:{fn}"\nargs = [{k + 1}.0]\n'
                                      f'op = "derivative"\n\n' for k, (i, fn) in enumerate(cases)))
        self.ids = [i for i, _ in cases]
        self.results = tmp_path / "run.jsonl"
        self.timeout = timeout
        self.tag = uuid.uuid4().hex
        self.env = {**os.environ, "DIFFKIT_FAULT_TAG": self.tag}
        self.env.pop("PYTHONPATH", None)  # the suite's folder is found without it

    def cmd(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", "diffkit.cli", "suite", str(self.suite), "--jobs", "2", "--timeout",
                str(self.timeout), "--results", str(self.results), *extra]

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.cmd(*extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
                                cwd=str(self.suite.parent.parent))

    def invoke(self, *extra: str) -> Any:
        """The same command in this process (typer's CliRunner): no interpreter to start."""
        from typer.testing import CliRunner

        from diffkit.cli import app

        return CliRunner().invoke(app, self.cmd(*extra)[3:])

    def run(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.cmd(*extra), capture_output=True, text=True, env=self.env, timeout=300,
                              check=False, cwd=str(self.suite.parent.parent))

    def stored(self) -> dict[str, Any]:
        return read_results(str(self.results), warn=lambda message: None)

    def wait_for(self, proc: subprocess.Popen[bytes], records: int, within: float = 120.0) -> None:
        deadline = time.time() + within
        while time.time() < deadline and len(self.stored()) < records and proc.poll() is None:
            time.sleep(0.02)

    def lines(self) -> list[str]:
        """The ids of every line of the results file (each must be a record)."""
        return [json.loads(line)["id"] for line in self.results.read_text(encoding="utf-8").splitlines()
                if line.strip()]

    def assert_complete(self) -> None:
        ids = self.lines()
        assert sorted(ids) == sorted(self.ids), ids  # every case exactly once
        _none_left(self.tag)


def _kill_and_resume(tmp_path: Path, sig: int, after: int, cases: list[tuple[str, str]]) -> Run:
    run = Run(tmp_path, cases, timeout=3.0)
    proc = run.start()
    if after:
        run.wait_for(proc, after)
    else:
        time.sleep(0.3)  # still importing
    os.kill(proc.pid, sig)  # the runner only: its case processes must follow
    proc.communicate(timeout=60)
    if sig == signal.SIGTERM and after:
        assert proc.returncode == 128 + signal.SIGTERM
    _none_left(run.tag)
    assert len(run.stored()) >= after  # what was written before the kill stays (the last case may also finish)
    result = run.run("--resume")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    run.assert_complete()
    return run


SLOW = [(f"c{k}", "slow_square") for k in range(6)]


def test_sigkill_of_the_runner_leaves_no_orphans_and_resumes_exactly_once(tmp_path: Path) -> None:
    run = _kill_and_resume(tmp_path, signal.SIGKILL, 2, SLOW[:4] + [("hangs", "hang")])
    assert run.stored()["hangs"]["verdict"] == "timeout"


def test_sigterm_kills_the_case_process_groups(tmp_path: Path) -> None:
    run = Run(tmp_path, [("hang1", "hang"), ("hang2", "hang"), ("c0", "slow_square")], timeout=60.0)
    proc = run.start()
    deadline = time.time() + 60
    while time.time() < deadline and len(_tagged(run.tag)) < 5:  # runner, 2 cases, their watchers, sleeps
        time.sleep(0.05)
    assert len(_tagged(run.tag)) >= 5
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    _none_left(run.tag, within=2.0)
    assert not Path(str(run.results) + ".lock").exists()  # released on the way out


def test_two_runs_on_one_results_file(tmp_path: Path) -> None:
    run = Run(tmp_path, SLOW)
    first = run.start()
    run.wait_for(first, 1)
    second = run.invoke()
    assert second.exit_code == 2
    assert f"being written by another run (pid {first.pid})" in " ".join(second.output.split())
    resumed = run.invoke("--resume")  # a resume is refused just the same
    assert resumed.exit_code == 2 and "being written by another run" in " ".join(resumed.output.split())
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    run.assert_complete()


def test_resume_of_a_corrupted_file(tmp_path: Path) -> None:
    run = Run(tmp_path, SLOW[:3])
    good = {"id": "c0", "verdict": "ok", "rows": [], "elapsed": 0.1}  # no fingerprint: run again
    run.results.write_bytes(b'{"id": "apple"}\n\xff\xfe\n' + json.dumps(good).encode() + b'\n[1, 2]\n{"id": "c1", "ver')
    result = run.invoke("--resume")
    assert result.exit_code == 0, result.output
    err = " ".join(result.output.split())
    for n, why in [(1, "not a diffkit result record"), (2, "not UTF-8"), (4, "not a diffkit result record"),
                   (5, "cut off")]:
        assert f"{run.results} line {n}: {why}" in err, err
    assert "1 cases run again" in err
    records = run.stored()
    assert set(records) == {"c0", "c1", "c2"} and all(r["verdict"] == "ok" for r in records.values())
    again = run.invoke("--resume")
    assert again.exit_code == 0 and "3 cases taken from the results file" in again.stdout


def test_a_case_printing_to_stdout_cannot_corrupt_its_result(tmp_path: Path) -> None:
    (tmp_path / "faultmod.py").write_text(textwrap.dedent(MODULE))
    case = load_toml(str(_suite(tmp_path, "noisy")))[0]
    rec = _run_subprocess(case.to_dict(), 60.0, 0.0, True)  # a dask nanny's worker runs this path
    assert rec["verdict"] == "ok", rec
    forked = run_suite([case], timeout=60.0)
    assert forked.records[0]["verdict"] == "ok"


def _suite(tmp_path: Path, fn: str) -> Path:
    path = tmp_path / f"{fn}.toml"
    path.write_text(f'[[case]]\nid = "{fn}"\nf = "faultmod:{fn}"\nargs = [2.0]\nop = "derivative"\n')
    return path


# --------------------------------------------------------------------------
# The full battery
# --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
@pytest.mark.parametrize("after", [0, 1, 3, 5])
def test_kill_at_several_moments(tmp_path: Path, sig: int, after: int) -> None:
    _kill_and_resume(tmp_path, sig, after, SLOW)


@pytest.mark.slow
def test_killed_again_and_again_until_done(tmp_path: Path) -> None:
    run = Run(tmp_path, SLOW + [(f"d{k}", "slow_square") for k in range(6)], timeout=10.0)
    for attempt in range(20):
        proc = run.start("--resume") if attempt else run.start()
        before = len(run.stored())
        run.wait_for(proc, before + 2)
        if proc.poll() is not None:
            break
        os.kill(proc.pid, signal.SIGKILL if attempt % 2 == 0 else signal.SIGTERM)
        proc.communicate(timeout=60)
        _none_left(run.tag)
    result = run.run("--resume")
    assert result.returncode == 0, result.stderr
    run.assert_complete()


@pytest.mark.slow
def test_dask_worker_processes_with_noisy_cases(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    (tmp_path / "faultmod.py").write_text(textwrap.dedent(MODULE))
    cases = load_toml(str(_suite(tmp_path, "noisy"))) + load_toml(str(_suite(tmp_path, "slow_square")))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        res = run_suite(cases, timeout=60.0, scheduler=client, results=str(tmp_path / "r.jsonl"))
    assert [r["verdict"] for r in res.records] == ["ok", "ok"], res.records
    assert set(read_results(str(tmp_path / "r.jsonl"))) == {"noisy", "slow_square"}
