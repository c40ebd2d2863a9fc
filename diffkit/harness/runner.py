"""Run a suite: every case isolated and time-limited, results streamed, resumable.

Each case runs in a child process of its own process group: a hang becomes a
``timeout`` record, an exception an ``error`` record and a crash of the
interpreter an ``error`` record too, and the suite goes on. A case's
``module:function`` is imported there and only there, with the suite file's
folder and the current folder first on its import path; its stdin is
``/dev/null`` and its stdout goes to stderr, so nothing it prints reaches the
report or the channel its result comes back on (a pipe of its own). A case
process dies with its runner: on Linux the kernel kills it when the runner
dies (``PR_SET_PDEATHSIG``), elsewhere it polls its parent; SIGTERM, SIGHUP
or Ctrl-C of the runner kill every case's process group before it exits.

Records are appended to a JSONL file (:class:`~diffkit.harness.results.ResultsFile`:
locked, never truncated) and flushed as cases finish, each with the
:func:`~diffkit.harness.cases.fingerprint` of its case; ``resume=True`` reads
that file, keeps the records whose fingerprint is their case's, runs the
rest (and the cases whose stored record was made for something else), so a
suite killed at any moment and resumed ends with every case exactly once.
``jobs`` runs cases in parallel processes; ``scheduler`` sends them to a
dask.distributed cluster instead.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..errors import InvalidArgument, InvalidType, Unavailable
from .cases import BUILTIN, Case, fingerprint, import_dirs, is_callable_ref
from .crosscheck import crosscheck
from .report import _jsonable, to_dict
from .results import ResultsFile, close_inherited, dumps, read_results

__all__ = ["SuiteResult", "read_results", "run_case", "run_isolated", "run_suite"]

_CASE_FIELDS = set(Case.__dataclass_fields__)


def _error(case: Any, message: str, elapsed: float = 0.0, verdict: str = "error") -> dict[str, Any]:
    cid = case.get("id") if isinstance(case, dict) else None
    return {"id": cid if isinstance(cid, str) and cid else "?", "verdict": verdict, "rows": [],
            "error": message, "elapsed": elapsed, "case": case if isinstance(case, dict) else {}}


def run_case(case: dict[str, Any], time_budget: float = 0.0, allow_import: bool = True) -> dict[str, Any]:
    """One case, in this process: a JSON-ready record ``{"id", "verdict", "rows", "report", ...}``.

    Never raises: whatever goes wrong (a case dict of the wrong shape, an
    import refused or failing, an exception of the cross-check) is an
    ``error`` record. ``allow_import=False`` refuses a ``module:function``
    of a suite file (the built-in suites' own functions are always allowed).
    """
    t0 = time.perf_counter()
    try:
        if not isinstance(case, dict) or set(case) - _CASE_FIELDS:
            raise InvalidArgument(f"not a suite case: {str(case)[:100]}")
        c = Case(**{**case, "args": tuple(case.get("args") or ()), "tags": tuple(case.get("tags") or ())})
        expect = dict(c.expect or {})
        F = c.function(allow_import=allow_import or c.origin == BUILTIN)
        c = c.bound(F)
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
        return _error(case, f"{type(e).__name__}: {str(e)[:2000]}", time.perf_counter() - t0)


# --------------------------------------------------------------------------
# The case's process
# --------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """Make this process die when ``parent`` does: the kernel's parent-death signal, else a watchdog thread."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) == 0  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:  # the runner died before the signal was armed
        os._exit(1)
    if not armed:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            try:
                os.killpg(0, signal.SIGKILL)
            finally:
                os._exit(1)

        threading.Thread(target=watch, daemon=True).start()


def _group_reaper() -> None:
    """Fork a small watcher that kills this case's process group once the case process is gone.

    The case process dies with the runner (:func:`_die_with_parent`); what it
    started itself (a subprocess of the user's function) would not, and the
    watcher ends it. It polls, holds nothing, and dies with the group.
    """
    case = os.getpid()
    if not hasattr(os, "fork") or os.getpgrp() != case:
        return
    try:
        pid = os.fork()
    except OSError:
        return
    if pid == 0:  # the watcher
        try:
            try:
                os.closerange(3, 4096)
            except OSError:
                pass
            while os.getppid() == case:
                time.sleep(0.2)
            os.killpg(0, signal.SIGKILL)
        finally:
            os._exit(0)


def _prepare_child(case: dict[str, Any], parent: int) -> None:
    """A case's process: its own process group, dies with the runner, quiet, the suite's folder importable."""
    try:
        os.setpgid(0, 0)
    except OSError:
        pass  # already a group (or session) leader
    _die_with_parent(parent)
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):  # not the runner's handler: it kills cases
        if sig is not None:
            signal.signal(sig, signal.SIG_DFL)
    _LIVE.clear()
    close_inherited()
    _group_reaper()
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        sys.stdout.flush()
        os.dup2(2, 1)  # the case's prints go to stderr, never to the report or the result channel
    except (OSError, ValueError, AttributeError):
        pass
    if isinstance(case, dict) and is_callable_ref(case.get("f")):
        origin = case.get("origin") if isinstance(case.get("origin"), str) else ""
        for d in reversed(import_dirs(origin)):
            if d in sys.path:
                sys.path.remove(d)
            sys.path.insert(0, d)


def _child(case: dict[str, Any], budget: float, conn: Any, parent: int, allow_import: bool) -> None:
    try:
        _prepare_child(case, parent)
        try:
            rec = run_case(case, budget, allow_import)
        except BaseException as e:  # SystemExit or KeyboardInterrupt from the case's code
            rec = _error(case, f"{type(e).__name__}: {str(e)[:2000]}")
        conn.send(rec)
    finally:
        conn.close()


def _kill_group(pid: int | None) -> None:
    """SIGKILL a case's process group (the case and what it started), and the case itself."""
    if not pid:
        return
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass


_LIVE: set[Any] = set()
"""The case processes of the runs in this process (killed by the SIGTERM handler)."""


class _Running:
    """A case running in a child process."""

    def __init__(self, case: dict[str, Any], budget: float, ctx: Any, allow_import: bool):
        self.case = case
        self.parent, child = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_child, args=(case, budget, child, os.getpid(), allow_import), daemon=True)
        self.start = time.perf_counter()
        self.ended = False
        self.proc.start()
        _LIVE.add(self)
        try:
            os.setpgid(self.proc.pid, self.proc.pid)  # also from here: no window before the child does it
        except OSError:
            pass
        child.close()

    def poll(self, timeout: float) -> dict[str, Any] | None:
        """The record when done; a timeout record past ``timeout`` seconds; else None."""
        if self.parent.poll(0):
            try:
                rec = self.parent.recv()
            except (EOFError, OSError):
                rec = self._crashed()
            except Exception as e:  # a result that cannot be unpickled
                rec = _error(self.case, f"the case's result could not be read: {type(e).__name__}: {e}",
                             time.perf_counter() - self.start)
            self.kill()
            if not isinstance(rec, dict) or rec.get("id") != self.case.get("id"):
                rec = _error(self.case, "the case's process sent something that is not its record",
                             time.perf_counter() - self.start)
            return rec
        if not self.proc.is_alive() and not self.parent.poll(0):
            rec = self._crashed()
            self.kill()
            return rec
        if time.perf_counter() - self.start > timeout:
            self.kill()
            return _error(self.case, f"no result within {timeout:g} s", timeout, verdict="timeout")
        return None

    def _crashed(self) -> dict[str, Any]:
        self.proc.join(1)
        return _error(self.case, f"the case's process died (exit code {self.proc.exitcode})",
                      time.perf_counter() - self.start)

    def kill(self) -> None:
        """End the case's process group and reap the process (once: after the reaping its pid is free)."""
        if self.ended:
            return
        self.ended = True
        _kill_group(self.proc.pid)  # before join: the unreaped process keeps its pid (and group id) taken
        _LIVE.discard(self)
        self.proc.join(5)
        try:
            self.parent.close()
        except OSError:
            pass


def run_isolated(case: dict[str, Any], timeout: float, budget: float = 0.0,
                 allow_import: bool = True) -> dict[str, Any]:
    """One case in a child process under ``timeout`` (what a dask worker runs)."""
    try:
        running = _Running(case, budget, _context(), allow_import)
    except AssertionError:  # a daemonic process (a dask nanny's worker) may not fork children
        return _run_subprocess(case, timeout, budget, allow_import)
    try:
        while True:
            rec = running.poll(timeout)
            if rec is not None:
                return rec
            time.sleep(0.002)
    finally:
        running.kill()


def _run_subprocess(case: dict[str, Any], timeout: float, budget: float, allow_import: bool) -> dict[str, Any]:
    """The case in a fresh interpreter; its result comes back in a file of its own, never on stdout."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="diffkit-case-") as tmp:
        result = os.path.join(tmp, "result.json")
        with open(os.path.join(tmp, "stderr"), "w+b") as err:
            proc = subprocess.Popen([sys.executable, "-m", "diffkit.harness.runner", repr(float(budget)), result,
                                     str(os.getpid()), "1" if allow_import else "0"],
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=True)
            try:
                proc.communicate(json.dumps(_jsonable(case)).encode(), timeout=timeout)
            except BaseException as e:  # the time limit, or the worker being stopped
                _kill_group(proc.pid)  # not yet reaped: its group id is still its own
                proc.wait()
                if not isinstance(e, subprocess.TimeoutExpired):
                    raise
                return _error(case, f"no result within {timeout:g} s", timeout, verdict="timeout")
            err.seek(max(0, err.seek(0, os.SEEK_END) - 500))
            tail = err.read().decode("utf-8", "replace")
        try:
            with open(result, encoding="utf-8") as fh:
                rec = json.load(fh)
        except (OSError, ValueError):
            return _error(case, f"the case's process failed (exit code {proc.returncode}): {tail}",
                          time.perf_counter() - t0)
    if not isinstance(rec, dict) or rec.get("id") != case.get("id"):
        return _error(case, "the case's process wrote something that is not its record", time.perf_counter() - t0)
    return rec


def _context() -> Any:
    # fork: the child starts with diffkit, NumPy and SymPy already imported
    return mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")


# --------------------------------------------------------------------------
# A suite run
# --------------------------------------------------------------------------


@dataclass
class SuiteResult:
    """All records of a suite run, in case order."""

    name: str
    records: list[dict[str, Any]]
    elapsed: float = 0.0
    skipped: int = 0                 # cases found done in the results file (resume)
    counts: dict[str, int] = field(default_factory=dict)
    rerun: int = 0                   # stored records whose fingerprint was not their case's: run again
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r["verdict"] == "ok" for r in self.records)

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for r in self.records:
            counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
        conventions = sum(1 for r in self.records if any(row.get("verdict") == "convention" for row in r["rows"]))
        overhead = [r["elapsed"] for r in self.records if r["verdict"] in ("ok", "fail")
                    and isinstance(r.get("elapsed"), (int, float))]
        return {"suite": self.name, "total": len(self.records), "counts": counts,
                "with_convention": conventions, "elapsed": self.elapsed, "resumed": self.skipped,
                "rerun": self.rerun, "mean_case_seconds": (sum(overhead) / len(overhead)) if overhead else None,
                "backend_times": backend_times(self.records)}


def backend_times(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per backend, the median over cases of its setup time (the first call, tracing and
    compiling for the symbolic and compiled backends, minus the median call) and of its
    call time: ``{"compiled": {"setup": s, "call": s, "cases": n}}``, in row order.

    Example:
        >>> recs = [{"rows": [{"backend": "compiled", "setup_time": 0.25, "call_time": 0.5}]},
        ...         {"rows": [{"backend": "compiled", "setup_time": 0.75, "call_time": 1.5}]}]
        >>> backend_times(recs)
        {'compiled': {'setup': 0.5, 'call': 1.0, 'cases': 2}}
    """
    seen: dict[str, list[tuple[float, float]]] = {}
    for rec in records:
        for row in rec.get("rows") or ():
            s, c = row.get("setup_time"), row.get("call_time")
            if isinstance(s, (int, float)) and isinstance(c, (int, float)) and math.isfinite(s) and math.isfinite(c):
                seen.setdefault(row.get("backend", "?"), []).append((float(s), float(c)))
    return {b: {"setup": statistics.median(s for s, _ in v), "call": statistics.median(c for _, c in v),
                "cases": len(v)} for b, v in seen.items()}


def _check_options(cases: Any, jobs: Any, timeout: Any, time_budget: Any) -> None:
    if isinstance(cases, (str, bytes)) or not all(isinstance(c, Case) for c in cases):
        raise InvalidType("run_suite: cases is a list of diffkit.harness.cases.Case")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= 1024:
        raise InvalidArgument(f"run_suite: jobs = {jobs!r}: expected an integer from 1 to 1024")
    for name, v, low in (("timeout", timeout, 0.0), ("time_budget", time_budget, None)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or (v <= 0 if low is not None else v < 0):
            raise InvalidArgument(f"run_suite: {name} = {v!r}: expected a finite number "
                                  + ("> 0 (seconds)" if low is not None else ">= 0 (seconds)"))


def refused_imports(cases: Sequence[Case]) -> list[str]:
    """The ids of cases that name Python code of a suite file (what ``allow_import=False`` refuses)."""
    return [c.id for c in cases if is_callable_ref(c.f) and c.origin != BUILTIN]


class _Terminated(SystemExit):
    """SIGTERM or SIGHUP of the runner: its case processes are killed, then it exits."""


def _on_signal(signum: int, frame: Any) -> None:
    for running in list(_LIVE):
        if not running.ended:
            _kill_group(running.proc.pid)
    raise _Terminated(128 + signum)


def run_suite(cases: Sequence[Case], name: str = "suite", jobs: int = 1, timeout: float = 60.0,
              results: str | None = None, resume: bool = False, scheduler: Any = None,
              time_budget: float = 0.0, progress: Callable[[dict[str, Any]], None] | None = None,
              allow_import: bool = True, warn: Callable[[str], None] | None = None) -> SuiteResult:
    """Run every case (see the module docstring); returns the records in case order.

    Args:
        results: a JSONL file each record is appended to as its case ends. It
            must be new or empty unless ``resume``; it is locked for the run.
        resume: read ``results`` first and run only the cases without a record
            whose fingerprint is their own.
        allow_import: ``False`` refuses (before running anything) a suite whose
            cases name Python code of a suite file (``module:function``).
        warn: told about each skipped line of the results file and the cases run again.

    Raises:
        InvalidArgument: repeated ids, a bad option, a results file that is a
            directory, held by another run, or already full without ``resume``;
            ``module:function`` cases with ``allow_import=False``.

    Example:
        >>> from diffkit.harness.suites import Case
        >>> res = run_suite([Case("cube", "x**3", (2.0,), "derivative")], timeout=60)
        >>> res.records[0]["verdict"]
        'ok'
    """
    cases = list(cases) if not isinstance(cases, (str, bytes)) else cases
    _check_options(cases, jobs, timeout, time_budget)
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        from collections import Counter

        dup = sorted(i for i, n in Counter(ids).items() if n > 1)
        raise InvalidArgument(f"run_suite: case ids must be unique; repeated: {', '.join(map(repr, dup))}")
    if not allow_import:
        refused = refused_imports(cases)
        if refused:
            shown = ", ".join(map(repr, refused[:5])) + (f" and {len(refused) - 5} more" if len(refused) > 5 else "")
            raise InvalidArgument(f"imports are not allowed (--no-import), and {len(refused)} cases name Python "
                                  f"code (module:function): {shown}")
    if resume and not results:
        raise InvalidArgument("run_suite: resume needs a results file")
    warnings: list[str] = []

    def note(message: str) -> None:
        warnings.append(message)
        if warn is not None:
            warn(message)

    t0 = time.perf_counter()
    fingerprints = {c.id: fingerprint(c) for c in cases}
    store = ResultsFile(results, resume=resume, warn=note) if results else None
    stored = store.open() if store is not None else {}
    done = {i: rec for i, rec in stored.items() if i in fingerprints and rec.get("fingerprint") == fingerprints[i]}
    rerun = sum(1 for i in stored if i in fingerprints and i not in done)
    if rerun:
        note(f"{rerun} cases run again: their stored records were made for a different case or diffkit version "
             "(fingerprint)")
    todo = [c.to_dict() for c in cases if c.id not in done]
    new: dict[str, dict[str, Any]] = {}

    def record(rec: dict[str, Any]) -> None:
        rec = {**rec, "fingerprint": fingerprints.get(rec.get("id"), "")}
        new[rec["id"]] = rec
        if store is not None:
            store.append(rec)
        if progress:
            try:
                progress(rec)
            except Exception as e:  # a progress display must never cost a run its results
                note(f"progress display failed: {type(e).__name__}: {e}")

    in_main = threading.current_thread() is threading.main_thread()
    previous = {}
    if in_main:
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                previous[sig] = signal.signal(sig, _on_signal)
    stream: Iterator[dict[str, Any]] | None = None
    try:
        stream = iter(_run_dask(todo, scheduler, timeout, time_budget, allow_import) if scheduler is not None
                      else _run_local(todo, jobs, timeout, time_budget, allow_import))
        for rec in stream:
            record(rec)
    finally:
        if stream is not None and hasattr(stream, "close"):
            stream.close()  # kills what still runs
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if store is not None:
            store.close()
    records = [done.get(i) or new[i] for i in ids if i in done or i in new]
    return SuiteResult(name, records, time.perf_counter() - t0, skipped=len(done), rerun=rerun, warnings=warnings)


def _run_local(todo: list[dict[str, Any]], jobs: int, timeout: float, budget: float,
               allow_import: bool) -> Iterator[dict[str, Any]]:
    ctx = _context()
    pending = deque(todo)
    running: list[_Running] = []
    try:
        while pending or running:
            while pending and len(running) < max(1, jobs):
                running.append(_Running(pending.popleft(), budget, ctx, allow_import))
            finished = False
            for r in list(running):
                rec = r.poll(timeout)
                if rec is not None:
                    running.remove(r)
                    finished = True
                    yield rec
            if not finished:
                time.sleep(0.002)
    finally:
        for r in running:
            r.kill()


def _run_dask(todo: list[dict[str, Any]], address: Any, timeout: float, budget: float,
              allow_import: bool) -> Iterable[dict[str, Any]]:
    try:
        from distributed import Client, as_completed
    except ImportError as e:  # pragma: no cover - the extra is missing
        raise Unavailable("run_suite(scheduler=...) / --scheduler needs dask.distributed: "
                          "pip install 'diffkit[dask]'") from e
    client = address if not isinstance(address, str) else Client(address, timeout="30s")
    futures: dict[Any, dict[str, Any]] = {}
    try:
        for case in todo:
            fut = client.submit(run_isolated, case, timeout, budget, allow_import,
                                key=f"diffkit-{case['id']}-{os.getpid()}-{time.monotonic_ns()}", pure=False)
            futures[fut] = case
        for fut in as_completed(list(futures)):
            case = futures[fut]
            try:
                rec = fut.result()
            except Exception as e:  # a worker lost, a task that could not run: this case's error only
                rec = _error(case, f"the dask task failed: {type(e).__name__}: {str(e)[:500]}")
            if not isinstance(rec, dict) or rec.get("id") != case.get("id"):
                rec = _error(case, "the dask task returned something that is not the case's record")
            yield rec
    finally:
        try:
            client.cancel(list(futures))
        except Exception:
            pass
        if isinstance(address, str):
            client.close()


def main() -> None:  # pragma: no cover - the subprocess entry point of run_isolated
    budget = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    result = sys.argv[2] if len(sys.argv) > 2 else None
    parent = int(sys.argv[3]) if len(sys.argv) > 3 else os.getppid()
    allow_import = (sys.argv[4] != "0") if len(sys.argv) > 4 else True
    try:
        case = json.loads(sys.stdin.read())
    except ValueError as e:
        case, rec = {}, _error({}, f"the case could not be read: {e}")
    else:
        rec = None
    _prepare_child(case, parent)
    if rec is None:
        try:
            rec = run_case(case, budget, allow_import)
        except BaseException as e:
            rec = _error(case, f"{type(e).__name__}: {e}")
    text = dumps(rec)
    if result is None:
        os.write(2, text.encode() + b"\n")
        return
    with open(result + ".part", "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(result + ".part", result)


if __name__ == "__main__":  # pragma: no cover
    main()
