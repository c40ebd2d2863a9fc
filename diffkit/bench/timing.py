"""Timing in one process: the environment, and medians over alternating rounds.

A benchmark compares functions *side by side*: each is warmed up, then all are
called in turn, round after round, so that a slow moment of a shared machine
hits every one of them alike, and the median and quartiles of each are kept.

Two settings matter before the process starts (:data:`ENV`): BLAS, OpenMP and
XLA must use one thread (:data:`THREAD_ENV`, always), and glibc's malloc may be
told to keep freed memory (:data:`TUNED_MALLOC`: ``MALLOC_TRIM_THRESHOLD_``,
``MALLOC_MMAP_THRESHOLD_``; otherwise large temporaries go back to the OS and a
benchmark of large arrays measures page faults). The benchmark measures first as
users run, with glibc's default allocator, then again in a child process with the
tuned one (:func:`tuned_environ`), and shows both. glibc and OpenBLAS read these
when they start, so a script sets them and re-executes itself
(:func:`ensure_environment`); :func:`environment_ok` says whether they are in
place. PyTorch's own thread pool is set to one thread when it is loaded
(:mod:`diffkit.bench.peers`).

Example:
    >>> import time
    >>> fast, slow = timeit([lambda: None, lambda: time.sleep(0.001)], budget=0.02)
    >>> fast.median < slow.median and slow.n == fast.n >= 7
    True
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

__all__ = ["ENV", "THREAD_ENV", "TUNED_MALLOC", "Stat", "allocator", "environment_ok", "ensure_environment",
           "timeit", "tuned_environ"]

#: The environment every benchmark runs in (read by glibc, OpenBLAS/MKL/OpenMP and XLA at start).
ENV: dict[str, str] = {
    "MALLOC_TRIM_THRESHOLD_": "1000000000",
    "MALLOC_MMAP_THRESHOLD_": "1000000000",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    # XLA (JAX's compiler): one thread for Eigen's kernels on the CPU.
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false",
}


#: glibc's malloc told to keep freed memory (the second, "tuned allocator" measurement).
TUNED_MALLOC: dict[str, str] = {k: ENV[k] for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")}

#: One thread for BLAS, OpenMP and XLA: every measurement, default allocator or tuned.
THREAD_ENV: dict[str, str] = {k: v for k, v in ENV.items() if k not in TUNED_MALLOC}


def allocator(environ: Any = None) -> str:
    """``"tuned"`` when glibc's malloc thresholds of :data:`TUNED_MALLOC` are set (in
    ``os.environ`` by default), ``"default"`` when neither is set, else ``"custom"``.

    Example:
        >>> allocator({}), allocator(TUNED_MALLOC), allocator({"MALLOC_TRIM_THRESHOLD_": "1"})
        ('default', 'tuned', 'custom')
    """
    environ = os.environ if environ is None else environ
    if all(environ.get(k) == v for k, v in TUNED_MALLOC.items()):
        return "tuned"
    return "default" if not any(k in environ for k in TUNED_MALLOC) else "custom"


def environment_ok(environ: Any = None, malloc: str = "tuned") -> bool:
    """Whether the variables of :data:`THREAD_ENV` have their values (in ``os.environ`` by
    default) and the allocator is ``malloc`` (:func:`allocator`: ``"tuned"``, every
    variable of :data:`ENV`; ``"default"``, no malloc threshold set; ``"any"``).

    The malloc and thread settings only work if they were there when the process
    started, so ``True`` means they were set in this process's environment, not
    merely now.

    Example:
        >>> environment_ok(ENV), environment_ok(THREAD_ENV), environment_ok(THREAD_ENV, malloc="default")
        (True, False, True)
    """
    environ = os.environ if environ is None else environ
    threads = all(environ.get(k) == v for k, v in THREAD_ENV.items())
    return threads and (malloc == "any" or allocator(environ) == malloc)


def tuned_environ(environ: Any = None) -> dict[str, str]:
    """A copy of ``environ`` (``os.environ``) with :data:`ENV` set: a child process's
    environment for the tuned-allocator measurement.

    Example:
        >>> e = tuned_environ({"HOME": "/h"})
        >>> e["HOME"], allocator(e), environment_ok(e)
        ('/h', 'tuned', True)
    """
    return {**(os.environ if environ is None else environ), **ENV}


def ensure_environment(argv: Sequence[str] | None = None,
                       malloc: str = "default") -> None:  # pragma: no cover - replaces the process
    """Re-execute this Python process with :data:`THREAD_ENV` set and glibc's allocator
    ``malloc`` (``"default"``: the malloc thresholds removed, as users run; ``"tuned"``:
    :data:`TUNED_MALLOC` set), unless it already is so.

    Call it first thing in a script (``argv`` defaults to ``sys.argv``); it
    never returns if it re-executes.
    """
    if environment_ok(malloc=malloc):
        return
    os.environ.update(THREAD_ENV)
    for k in TUNED_MALLOC:
        os.environ.pop(k, None)
    if malloc == "tuned":
        os.environ.update(TUNED_MALLOC)
    args = list(sys.argv if argv is None else argv)
    os.execv(sys.executable, [sys.executable] + args)


@dataclass(frozen=True)
class Stat:
    """The time of one call of one function, in seconds: median, quartiles, samples.

    Each of the ``n`` samples is the mean of ``number`` consecutive calls.
    """

    median: float
    q1: float
    q3: float
    n: int
    number: int = 1

    @property
    def iqr(self) -> float:
        """Interquartile range ``q3 - q1``, in seconds."""
        return self.q3 - self.q1

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median (0.05 = 5 %)."""
        return self.iqr / self.median if self.median > 0 else float("nan")


def _quantile(sorted_ts: list[float], q: float) -> float:
    """Linear interpolation between order statistics (NumPy's default ``percentile``)."""
    pos = q * (len(sorted_ts) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_ts) - 1)
    return sorted_ts[lo] + (sorted_ts[hi] - sorted_ts[lo]) * (pos - lo)


def timeit(fns: Sequence[Callable[[], Any]], budget: float = 0.5, min_repeats: int = 7,
           max_repeats: int = 2000, min_sample: float = 2e-3, rewarm: float = 0.01) -> list[Stat]:
    """Median and quartiles of each function's time per call, measured side by side.

    Each function is called once to warm up and once more to see how long it
    takes. Then all are sampled in turn, round after round, so that a slow
    moment of the machine hits all of them alike; rounds go on until
    ``budget`` seconds have passed since the first one, at least
    ``min_repeats`` and at most ``max_repeats`` of them.

    Every function is timed in its steady state, not just after its
    neighbours in the round have evicted its data and code from the caches:
    a function faster than ``rewarm`` seconds is called once, untimed, before
    each sample, and one faster than ``min_sample`` is timed over a block of
    consecutive calls lasting about ``min_sample`` (their mean is the sample).
    ``min_sample=0, rewarm=0`` times every call on its own, right after its
    neighbour.

    Example:
        >>> (s,) = timeit([lambda: sum(range(100))], budget=0.01)
        >>> s.q1 <= s.median <= s.q3 and s.n >= 7 and s.number > 1
        True
    """
    fns = list(fns)
    if not fns:
        return []
    clock = time.perf_counter
    plan: list[tuple[int, bool]] = []  # (calls per sample, untimed call before each sample)
    for fn in fns:
        fn()  # warm-up
        t0 = clock()
        fn()
        once = clock() - t0
        k = max(1, min(10_000, int(min_sample / once))) if once > 0 else 10_000
        plan.append((k, once < rewarm))
    times: list[list[float]] = [[] for _ in fns]
    start = clock()
    rounds = 0
    while rounds < min_repeats or (rounds < max_repeats and clock() - start < budget):
        for fn, (k, warm), ts in zip(fns, plan, times):
            if warm:
                fn()
            if k == 1:
                t0 = clock()
                fn()
                ts.append(clock() - t0)
            else:
                t0 = clock()
                for _ in range(k):
                    fn()
                ts.append((clock() - t0) / k)
        rounds += 1
    out = []
    for ts, (k, _) in zip(times, plan):
        ts.sort()
        out.append(Stat(median=_quantile(ts, 0.5), q1=_quantile(ts, 0.25), q3=_quantile(ts, 0.75), n=len(ts),
                        number=k))
    return out
