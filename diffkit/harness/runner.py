"""Run a suite: every case isolated and time-limited, results streamed, resumable.

Each case runs in a child process: a hang becomes a ``timeout`` record, an
exception an ``error`` record and a crash of the interpreter an ``error``
record too, and the suite goes on. Records are appended to a JSONL file and
flushed as cases finish; ``resume=True`` reads that file, skips the ids already
there and runs the rest, so a suite killed at any moment and resumed ends with
every case exactly once. ``jobs`` runs cases in parallel processes;
``scheduler`` sends them to a dask.distributed cluster instead.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from ..errors import InvalidArgument, Unavailable
from .cases import Case
from .crosscheck import crosscheck
from .report import _jsonable, to_dict


def run_case(case: dict[str, Any], time_budget: float = 0.0) -> dict[str, Any]:
    """One case, in this process: a JSON-ready record ``{"id", "verdict", "rows", "report", ...}``."""
    c = Case(**{**case, "args": tuple(case["args"]), "tags": tuple(case.get("tags", ()))})
    expect = dict(c.expect or {})
    t0 = time.perf_counter()
    try:
        F = c.function()
        rep = crosscheck(F, c.point(), c.op, argnums=c.argnums_or_all(), order=c.order, rtol=c.rtol, atol=c.atol,
                         time_budget=time_budget, name=c.id)
        for row in rep.rows:  # a known disagreement with the cause the case names is agreement
            if row.verdict == "fail" and expect.get(row.backend) == row.cause:
                row.verdict = "expected"
        d = to_dict(rep)
        verdict = "ok" if all(r.verdict in ("ok", "convention", "unsupported", "expected") for r in rep.rows) \
            else "fail"
        return {"id": c.id, "verdict": verdict, "rows": d["rows"], "report": d, "elapsed": time.perf_counter() - t0,
                "case": case}
    except Exception as e:
        return {"id": c.id, "verdict": "error", "error": f"{type(e).__name__}: {e}", "rows": [],
                "elapsed": time.perf_counter() - t0, "case": case}


def _child(case: dict[str, Any], budget: float, conn: Any) -> None:
    try:
        conn.send(run_case(case, budget))
    finally:
        conn.close()


class _Running:
    """A case running in a child process."""

    def __init__(self, case: dict[str, Any], budget: float, ctx: Any):
        self.case = case
        self.parent, child = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_child, args=(case, budget, child), daemon=True)
        self.start = time.perf_counter()
        self.proc.start()
        child.close()

    def poll(self, timeout: float) -> dict[str, Any] | None:
        """The record when done; a timeout record past ``timeout`` seconds; else None."""
        if self.parent.poll(0):
            try:
                rec = self.parent.recv()
            except EOFError:
                rec = self._crashed()
            self._end()
            return rec
        if not self.proc.is_alive() and not self.parent.poll(0):
            rec = self._crashed()
            self._end()
            return rec
        if time.perf_counter() - self.start > timeout:
            self._end()
            return {"id": self.case["id"], "verdict": "timeout", "rows": [], "elapsed": timeout,
                    "error": f"no result within {timeout:g} s", "case": self.case}
        return None

    def _crashed(self) -> dict[str, Any]:
        self.proc.join(1)
        return {"id": self.case["id"], "verdict": "error", "rows": [],
                "error": f"the case's process died (exit code {self.proc.exitcode})",
                "elapsed": time.perf_counter() - self.start, "case": self.case}

    def _end(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.parent.close()


def run_isolated(case: dict[str, Any], timeout: float, budget: float = 0.0) -> dict[str, Any]:
    """One case in a child process under ``timeout`` (what a dask worker runs)."""
    try:
        ctx = _context()
        running = _Running(case, budget, ctx)
    except AssertionError:  # a daemonic process (a dask nanny's worker) may not fork children
        return _run_subprocess(case, timeout, budget)
    while True:
        rec = running.poll(timeout)
        if rec is not None:
            return rec
        time.sleep(0.002)


def _run_subprocess(case: dict[str, Any], timeout: float, budget: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        out = subprocess.run([sys.executable, "-m", "diffkit.harness.runner", str(budget)],
                             input=json.dumps(case), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"id": case["id"], "verdict": "timeout", "rows": [], "elapsed": timeout,
                "error": f"no result within {timeout:g} s", "case": case}
    if out.returncode != 0 or not out.stdout.strip():
        return {"id": case["id"], "verdict": "error", "rows": [], "elapsed": time.perf_counter() - t0,
                "error": f"the case's process failed (exit code {out.returncode}): {out.stderr[-500:]}",
                "case": case}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _context() -> Any:
    # fork: the child starts with diffkit, NumPy and SymPy already imported
    return mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")


@dataclass
class SuiteResult:
    """All records of a suite run, in case order."""

    name: str
    records: list[dict[str, Any]]
    elapsed: float = 0.0
    skipped: int = 0                 # cases found done in the results file (resume)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(r["verdict"] == "ok" for r in self.records)

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for r in self.records:
            counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
        conventions = sum(1 for r in self.records if any(row.get("verdict") == "convention" for row in r["rows"]))
        overhead = [r["elapsed"] for r in self.records if r["verdict"] in ("ok", "fail")]
        return {"suite": self.name, "total": len(self.records), "counts": counts,
                "with_convention": conventions, "elapsed": self.elapsed, "resumed": self.skipped,
                "mean_case_seconds": (sum(overhead) / len(overhead)) if overhead else None}


def _end_last_line(path: str) -> None:
    """Cut a last line that a kill left without its newline, so new records start clean."""
    if not os.path.exists(path):
        return
    with open(path, "rb+") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


def read_results(path: str) -> dict[str, dict[str, Any]]:
    """Records by id from a JSONL results file (a line cut off by a kill is ignored)."""
    done: dict[str, dict[str, Any]] = {}
    if not os.path.exists(path):
        return done
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line of a killed run
            if isinstance(rec, dict) and "id" in rec:
                done[rec["id"]] = rec
    return done


def run_suite(cases: Sequence[Case], name: str = "suite", jobs: int = 1, timeout: float = 60.0,
              results: str | None = None, resume: bool = False, scheduler: str | None = None,
              time_budget: float = 0.0, progress: Callable[[dict[str, Any]], None] | None = None) -> SuiteResult:
    """Run every case (see the module docstring); returns the records in case order.

    Example:
        >>> from diffkit.harness.suites import Case
        >>> res = run_suite([Case("cube", "x**3", (2.0,), "derivative")], timeout=60)
        >>> res.records[0]["verdict"]
        'ok'
    """
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise InvalidArgument(f"run_suite: case ids must be unique; repeated: {', '.join(map(repr, dup))}")
    t0 = time.perf_counter()
    done = read_results(results) if (results and resume) else {}
    if results and not resume and os.path.exists(results):
        open(results, "w").close()  # a fresh run starts a fresh file
    todo = [c.to_dict() for c in cases if c.id not in done]
    new: dict[str, dict[str, Any]] = {}
    if results and resume:
        _end_last_line(results)
    out = open(results, "a", encoding="utf-8") if results else None

    def record(rec: dict[str, Any]) -> None:
        new[rec["id"]] = rec
        if out is not None:
            out.write(json.dumps(_jsonable(rec)) + "\n")
            out.flush()
            os.fsync(out.fileno())
        if progress:
            progress(rec)

    try:
        stream = (_run_dask(todo, scheduler, timeout, time_budget) if scheduler
                  else _run_local(todo, jobs, timeout, time_budget))
        for rec in stream:
            record(rec)
    finally:
        if out is not None:
            out.close()
    records = [done.get(i) or new[i] for i in ids if i in done or i in new]
    return SuiteResult(name, records, time.perf_counter() - t0, skipped=len([i for i in ids if i in done]))


def _run_local(todo: list[dict[str, Any]], jobs: int, timeout: float, budget: float) -> Iterable[dict[str, Any]]:
    ctx = _context()
    pending = list(todo)
    running: list[_Running] = []
    while pending or running:
        while pending and len(running) < max(1, jobs):
            running.append(_Running(pending.pop(0), budget, ctx))
        finished = False
        for r in list(running):
            rec = r.poll(timeout)
            if rec is not None:
                running.remove(r)
                finished = True
                yield rec
        if not finished:
            time.sleep(0.002)


def _run_dask(todo: list[dict[str, Any]], address: str, timeout: float, budget: float) -> Iterable[dict[str, Any]]:
    try:
        from distributed import Client, as_completed
    except ImportError as e:  # pragma: no cover - the extra is missing
        raise Unavailable("run_suite(scheduler=...) / --scheduler needs dask.distributed: "
                          "pip install 'diffkit[dask]'") from e
    client = address if not isinstance(address, str) else Client(address)
    try:
        futures = [client.submit(run_isolated, case, timeout, budget, key=f"diffkit-{case['id']}", pure=False)
                   for case in todo]
        for fut in as_completed(futures):
            yield fut.result()
    finally:
        if isinstance(address, str):
            client.close()


def main() -> None:  # pragma: no cover - the subprocess entry point of run_isolated
    budget = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    case = json.loads(sys.stdin.read())
    print(json.dumps(_jsonable(run_case(case, budget))))


if __name__ == "__main__":  # pragma: no cover
    main()
