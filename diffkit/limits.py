"""Time limits for calls that can run long, and the depth limit of SymPy's recursion.

SymPy's work cannot be interrupted safely from inside the process: a signal
raised in the middle of an assumption query leaves that query's answer cached
as "unknown" on a shared, cached symbol, and a long integer power or a C-level
loop does not see the signal at all. So :func:`run_limited` runs the call in a
child process (``fork``: the child starts with everything already imported and
with the caller's function, which need not be picklable) and kills it at the
limit; the caller's process never runs the limited work, so it is left exactly
as it was. The result comes back pickled (SymPy expressions, reports and
arrays all pickle); an exception raised by the call comes back as itself.

Where ``fork`` is not available (Windows) or not allowed (inside a daemonic
process, such as a suite runner's case), the call runs in a background thread
instead: the caller gets its :class:`~diffkit.errors.TimeLimitError` at the
limit, but the abandoned computation goes on in that thread until it ends.

Example:
    >>> import time
    >>> from diffkit.limits import run_limited
    >>> run_limited(sum, [1, 2, 3], timeout=10, what="a sum")
    6
    >>> try:
    ...     run_limited(time.sleep, 5, timeout=0.2, what="a nap")
    ... except TimeoutError as e:
    ...     print(e)
    a nap: no result within the time limit of 0.2 s; raise it with timeout=SECONDS (None: no limit)
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import pickle
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from .errors import (
    DiffkitError,
    InvalidArgument,
    InvalidType,
    SizeLimitError,
    TimeLimitError,
)

__all__ = ["API_HINT", "CLI_HINT", "check_timeout", "recursion_as_size_limit", "run_limited"]

API_HINT = "raise it with timeout=SECONDS (None: no limit)"
"""How to raise the limit, for calls of the Python API."""

CLI_HINT = "raise it with --timeout SECONDS"
"""How to raise the limit, on the command line."""


def check_timeout(timeout: Any, name: str = "timeout") -> float | None:
    """``timeout`` as seconds: ``None`` (no limit) or a positive, finite number.

    Raises:
        InvalidType: not a number.
        InvalidArgument: zero, negative, NaN or infinite.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        try:
            import numpy as np

            ok = isinstance(timeout, (np.integer, np.floating))
        except ImportError:  # pragma: no cover - NumPy is a dependency
            ok = False
        if not ok:
            raise InvalidType(f"{name}= is a number of seconds or None, not {type(timeout).__name__}")
    value = float(timeout)
    if not (math.isfinite(value) and value > 0):
        raise InvalidArgument(f"{name}= must be a positive, finite number of seconds (or None for no limit), "
                              f"got {timeout!r}")
    return value


def run_limited(fn: Callable[..., Any], /, *args: Any, timeout: float | None, what: str,
                hint: str = API_HINT, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, stopped after ``timeout`` seconds (``None``: no limit, run here).

    Args:
        fn: the call; with ``fork`` it need not be picklable, its result must be.
        timeout: seconds, or ``None`` to call ``fn`` directly in this process.
        what: the call's name in the error message (``"diff of exp(x)"``).
        hint: how to raise the limit, appended to the message.

    Returns:
        What ``fn`` returns.

    Raises:
        TimeLimitError: no result within ``timeout`` seconds; the child process
            is killed (within a few milliseconds of the limit).
        DiffkitError: the child process died without an answer (killed by the
            system, out of memory, a crash in C code).
        Exception: whatever ``fn`` raises, re-raised here.
    """
    limit = check_timeout(timeout)
    if limit is None:
        return fn(*args, **kwargs)
    if "fork" in mp.get_all_start_methods() and not mp.current_process().daemon:
        return _in_child(fn, args, kwargs, limit, what, hint)
    return _in_thread(fn, args, kwargs, limit, what, hint)


def _message(what: str, limit: float, hint: str) -> str:
    return f"{what}: no result within the time limit of {limit:g} s; {hint}"


def _in_child(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], limit: float, what: str,
              hint: str) -> Any:
    from multiprocessing.connection import wait

    ctx = mp.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    for stream in (sys.stdout, sys.stderr):  # the child must not print the parent's buffered output again
        with contextlib.suppress(Exception):
            stream.flush()
    proc = ctx.Process(target=_child, args=(fn, args, kwargs, sender), name=f"diffkit: {what[:60]}")
    deadline = time.monotonic() + limit
    proc.start()
    sender.close()
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeLimitError(_message(what, limit, hint), limit)
            ready = wait([receiver, proc.sentinel], timeout=remaining)
            if receiver in ready:
                try:
                    status, payload = receiver.recv()
                except EOFError:
                    status, payload = "died", None
                except Exception as e:  # noqa: BLE001 - a result pickle cannot rebuild here
                    status, payload = "error", (DiffkitError(f"{what}: the result could not be read back from "
                                                             f"the child process ({type(e).__name__}: {e})"), "")
                break
            if proc.sentinel in ready and not receiver.poll(0):
                status, payload = "died", None
                break
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        receiver.close()
    if status == "ok":
        return payload
    if status == "died":
        raise DiffkitError(f"{what}: the child process running it died without a result (exit code "
                           f"{proc.exitcode}: killed by the system, out of memory, or a crash in C code)")
    error, text = payload
    if text and hasattr(error, "add_note"):
        error.add_note(f"(raised in the child process that ran {what}; its traceback:)\n{text}")
    raise error


def _child(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], conn: Any) -> None:
    _die_with_parent()
    try:
        reply: tuple[str, Any] = ("ok", fn(*args, **kwargs))
    except BaseException as e:  # noqa: BLE001 - every exception goes back to the caller
        text = "".join(traceback.format_exception(type(e), e, e.__traceback__))[-4000:]
        reply = ("error", (_portable(e), text))
    try:
        conn.send(reply)
    except Exception as e:  # noqa: BLE001 - an unpicklable result (or one too deep to pickle)
        err: BaseException = DiffkitError(f"the result could not be sent back from the child process "
                                          f"({type(e).__name__}: {str(e)[:200]})")
        if isinstance(e, RecursionError):
            err = SizeLimitError(f"the result is nested too deeply to be sent back from the child process "
                                 f"(RecursionError while pickling it; Python's recursion limit is "
                                 f"{sys.getrecursionlimit()})")
        conn.send(("error", (err, "")))
    finally:
        conn.close()


def _portable(e: BaseException) -> BaseException:
    """``e`` if it survives pickling, else a DiffkitError with its type and message."""
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:  # noqa: BLE001 - an exception class pickle cannot rebuild
        return DiffkitError(f"{type(e).__name__}: {e}")


def _die_with_parent() -> None:
    """Linux: the child is killed when the process that started it dies (no orphans left running)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def _in_thread(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], limit: float, what: str,
               hint: str) -> Any:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["ok"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            box["error"] = e

    thread = threading.Thread(target=target, name=f"diffkit: {what[:60]}", daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        raise TimeLimitError(_message(what, limit, hint) + " (this platform cannot stop the computation: it "
                             "goes on in a background thread)", limit)
    if "error" in box:
        raise box["error"]
    return box["ok"]


@contextlib.contextmanager
def recursion_as_size_limit(what: str, depth: int | None = None) -> Iterator[None]:
    """Turn a ``RecursionError`` (SymPy's printers, ``diff`` and assumption queries recurse
    once per level of nesting) into a :class:`~diffkit.errors.SizeLimitError` that names the depth."""
    try:
        yield
    except RecursionError:
        nested = f"nested {depth} levels deep" if depth else "nested"
        raise SizeLimitError(
            f"{what}: the expression is {nested}, too deep for SymPy's recursive algorithms (Python's "
            f"recursion limit is {sys.getrecursionlimit()}); nest less deeply, or use an AD backend "
            "(backend='reverse'), which does not recurse; raising sys.setrecursionlimit may crash the "
            "interpreter") from None
