"""A suite run's results file: JSON lines, locked while a run writes it, read back with care.

One line per finished case (a record ``{"id", "verdict", "rows", "report",
"elapsed", "case", "fingerprint", ...}``), appended with one ``write`` and an
``fsync`` as the case finishes, so a run killed at any moment leaves at worst a
last line cut short. :class:`ResultsFile` holds a lock (``<file>.lock``, an
``flock`` the kernel drops when the process dies: a stale lock file locks
nothing) so that two runs never write one file; it never truncates a file of
results (a new run refuses a non-empty file unless it resumes it).
:func:`read_results` skips, with a warning naming the line, every line that is
not a well-formed record: cut off, not UTF-8, not JSON, or JSON of the wrong
shape. This module imports only the report module of the harness.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Callable

from ..errors import InvalidArgument
from .report import ROW_NUMBERS, _jsonable, from_dict

VERDICTS = ("ok", "fail", "error", "timeout")
"""The verdicts of a suite record."""

_INHERITED: set[int] = set()
"""File descriptors a case process must not keep: the lock and the results file (closed after fork)."""

Warn = Callable[[str], None]


def close_inherited() -> None:
    """In a forked case process: close the runner's lock and results file (the runner keeps its lock)."""
    for fd in list(_INHERITED):
        try:
            os.close(fd)
        except OSError:
            pass
    _INHERITED.clear()


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) or v in ("nan", "inf", "-inf")


def check_record(rec: Any) -> str | None:
    """What is wrong with a stored record (``None``: it is one every reader and renderer takes).

    Example:
        >>> check_record({"id": ["apple"], "verdict": "ok", "rows": []})
        "'id' is not a non-empty string"
        >>> check_record({"id": "apple", "verdict": "ok", "rows": [], "elapsed": 0.1}) is None
        True
    """
    if not isinstance(rec, dict):
        return f"a JSON {type(rec).__name__}, not an object"
    if not isinstance(rec.get("id"), str) or not rec["id"]:
        return "'id' is not a non-empty string"
    if rec.get("verdict") not in VERDICTS:
        return f"'verdict' is not one of {', '.join(VERDICTS)}"
    rows = rec.get("rows")
    if not isinstance(rows, list):
        return "'rows' is not an array"
    for k, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("backend"), str) \
                or not isinstance(row.get("verdict"), str):
            return f"row {k} is not an object with a string 'backend' and 'verdict'"
        for key in ROW_NUMBERS:
            v = row.get(key)
            if v is not None and not _is_number(v):
                return f"row {k}: {key!r} is not a number"
        value = row.get("value")
        if value is not None and not (isinstance(value, list) and all(_is_number(v) for v in value)):
            return f"row {k}: 'value' is not an array of numbers"
        for key in ("cause", "message", "method"):
            if row.get(key) is not None and not isinstance(row[key], str):
                return f"row {k}: {key!r} is not a string"
    if "elapsed" in rec and not (_is_number(rec["elapsed"]) and rec["elapsed"] not in ("nan", "inf", "-inf")
                                 and math.isfinite(rec["elapsed"])):
        return "'elapsed' is not a finite number"
    for key in ("error", "fingerprint"):
        if rec.get(key) is not None and not isinstance(rec[key], str):
            return f"{key!r} is not a string"
    case = rec.get("case")
    if case is not None and (not isinstance(case, dict) or not isinstance(case.get("op", ""), str)):
        return "'case' is not an object with a string 'op'"
    if rec.get("report") is not None:
        try:
            from_dict(rec["report"])
        except Exception as e:  # a report of the wrong shape: KeyError, TypeError, ...
            return f"its 'report' cannot be read ({type(e).__name__}: {str(e)[:100]})"
    return None


def _lines(path: str) -> list[bytes]:
    if os.path.isdir(path):
        raise InvalidArgument(f"results file {path}: is a directory")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise InvalidArgument(f"results file {path}: cannot be read ({e.strerror or e})") from None
    return data.split(b"\n")


def read_results(path: str, warn: Warn | None = None) -> dict[str, dict[str, Any]]:
    """Records by id from a JSONL results file (the last record of an id wins).

    A line that is not a well-formed record is skipped, and ``warn`` (by
    default :func:`warnings.warn`) is told its line number and why: a last line
    cut off by a kill, bad UTF-8, not JSON, or JSON of the wrong shape. A
    missing file has no records; a directory or an unreadable file is an
    :class:`~diffkit.errors.InvalidArgument`.
    """
    if warn is None:
        import warnings

        def warn(message: str) -> None:
            warnings.warn(message, stacklevel=3)

    done: dict[str, dict[str, Any]] = {}
    lines = _lines(path)
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        last = n == len(lines)  # no newline after it: a write cut short
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            warn(f"{path} line {n}: not UTF-8 text (byte {e.start}); skipped")
            continue
        try:
            rec = json.loads(text)
        except (ValueError, RecursionError):
            why = "cut off (a run was killed while writing it)" if last else "not JSON"
            warn(f"{path} line {n}: {why}; skipped")
            continue
        problem = check_record(rec)
        if problem is not None:
            warn(f"{path} line {n}: not a diffkit result record ({problem}); skipped")
            continue
        done[rec["id"]] = rec
    return done


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _json_default(v: Any) -> Any:
    import numpy as np

    if isinstance(v, np.generic):
        return _jsonable(v.item())
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    return repr(v)


def dumps(rec: dict[str, Any]) -> str:
    """One record as a line of standard JSON (NaN and inf as strings, numpy values as plain numbers)."""
    return json.dumps(_jsonable(rec), allow_nan=False, default=_json_default)  # ASCII: any text survives


class ResultsFile:
    """The results file of one run: locked, read back (``resume``), appended to, never truncated.

    Args:
        path: the JSONL file.
        resume: continue the file's run: its records are read back. Without
            it, a file that already holds something is refused.
        warn: told about each line that is skipped.

    Raises:
        InvalidArgument: the path is a directory or cannot be written, another
            run holds the file, or it holds results and ``resume`` is false.
    """

    def __init__(self, path: str, resume: bool = False, warn: Warn | None = None):
        self.path = os.fspath(path)
        self.resume = resume
        self.warn = warn
        self.lock_path = self.path + ".lock"
        self._lock_fd: int | None = None
        self._fd: int | None = None

    # -- the lock ----------------------------------------------------------------------------------

    def _acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self._acquire_exclusive()
        for _ in range(20):
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise InvalidArgument(f"results file {self.path}: cannot create its lock file {self.lock_path} "
                                      f"({e.strerror or e})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = self._holder(fd)
                os.close(fd)
                raise InvalidArgument(f"results file {self.path} is being written by another run{holder}; "
                                      f"wait for it to end, or give another file") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except OSError:
                same = False
            if not same:  # the holder removed the lock file as we opened it: take the new one
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._lock_fd = fd
            _INHERITED.add(fd)
            return None
        raise InvalidArgument(f"results file {self.path}: could not take its lock {self.lock_path}")

    def _acquire_exclusive(self) -> None:  # pragma: no cover - platforms without flock
        for _ in range(2):
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    pid = int(open(self.lock_path).read().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if _pid_alive(pid):
                    raise InvalidArgument(f"results file {self.path} is being written by another run (pid {pid}); "
                                          "wait for it to end, or give another file") from None
                os.unlink(self.lock_path)  # stale: its run is gone
                continue
            os.write(fd, f"{os.getpid()}\n".encode())
            self._lock_fd = fd
            return None
        raise InvalidArgument(f"results file {self.path}: could not take its lock {self.lock_path}")

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            pid = int(os.pread(fd, 32, 0).decode().strip() or 0)
        except (OSError, ValueError, UnicodeDecodeError):
            return ""
        return f" (pid {pid})" if pid else ""

    def _release(self) -> None:
        if self._lock_fd is None:
            return
        try:
            os.unlink(self.lock_path)  # while still holding it (a waiting run checks the inode)
        except OSError:
            pass
        _INHERITED.discard(self._lock_fd)
        os.close(self._lock_fd)
        self._lock_fd = None

    # -- the file ----------------------------------------------------------------------------------

    def open(self) -> dict[str, dict[str, Any]]:
        """Take the lock and open the file; the stored records by id when resuming (else empty)."""
        if os.path.isdir(self.path):
            raise InvalidArgument(f"results file {self.path}: is a directory")
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise InvalidArgument(f"results file {self.path}: its folder {folder} does not exist")
        self._acquire()
        try:
            size = os.path.getsize(self.path) if os.path.exists(self.path) else 0
            if size and not self.resume:
                raise InvalidArgument(f"results file {self.path} already holds results ({size} bytes): add "
                                      "--resume to continue that run, or give a new file (diffkit never "
                                      "overwrites results)")
            done = read_results(self.path, self.warn) if self.resume else {}
            if self.resume and size:
                self._end_last_line()
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as e:
                raise InvalidArgument(f"results file {self.path}: cannot be written ({e.strerror or e})") from None
            _INHERITED.add(self._fd)
            return done
        except BaseException:
            self._release()
            raise

    def _end_last_line(self) -> None:
        """A last line without its newline: a whole record gets its newline; a cut-off one is removed."""
        with open(self.path, "rb+") as fh:
            data = fh.read()
            if not data or data.endswith(b"\n"):
                return
            start = data.rfind(b"\n") + 1
            try:
                whole = check_record(json.loads(data[start:].decode("utf-8"))) is None
            except (ValueError, RecursionError):
                whole = False
            if whole:
                fh.write(b"\n")
            else:
                fh.truncate(start)  # the warning about this line was given by read_results

    def append(self, rec: dict[str, Any]) -> None:
        """One record, as one line written at once and flushed to the disk."""
        if self._fd is None:
            raise InvalidArgument(f"results file {self.path} is not open")
        data = (dumps(rec) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)

    def close(self) -> None:
        """Close the file and drop the lock."""
        if self._fd is not None:
            _INHERITED.discard(self._fd)
            os.close(self._fd)
            self._fd = None
        self._release()

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


