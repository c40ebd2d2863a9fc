"""The compiled backend's targets, measured: ratios to the function (or to a hand-written
NumPy gradient, or to PyTorch), medians of interleaved rounds in one process.

Run ``python bench/bench_compiled.py``: it measures in this process (glibc's default
allocator settings, as users run) and then again in a child process with tuned
allocator settings (``MALLOC_TRIM_THRESHOLD_``/``MALLOC_MMAP_THRESHOLD_``), and prints
both columns. ``--here`` measures in this process only.
"""

from __future__ import annotations

import functools
import os
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np

import diffkit as dk
from diffkit.bench.ad import mlp_case, rosenbrock, scalar_chain, jacobian_cases

TUNED = {"MALLOC_TRIM_THRESHOLD_": "1000000000", "MALLOC_MMAP_THRESHOLD_": "1000000000"}


def hand_rosenbrock_grad(x: np.ndarray) -> np.ndarray:
    """The gradient of rosenbrock written by hand in NumPy."""
    d = x[1:] - x[:-1] ** 2
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * d - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * d
    return g


def median_times(fns: dict[str, object], rounds: int = 25, inner: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, rounds interleaved."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for f in fns.values():
        f()  # warm: compile, caches
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner):
                f()
            times[k].append((time.perf_counter() - t0) / inner)
    return {k: statistics.median(v) for k, v in times.items()}


def measure() -> dict[str, float]:
    out: dict[str, float] = {}
    # Rosenbrock n = 1e5: compiled gradient against hand-written NumPy and PyTorch
    x = np.random.default_rng(0).normal(size=100_000)
    f = functools.partial(rosenbrock, np)
    g = dk.grad(f, backend="compiled")
    fns = {"f": lambda: f(x), "hand": lambda: hand_rosenbrock_grad(x), "compiled": lambda: g(x),
           "reverse": lambda: dk.grad(f)(x)}
    t = median_times(fns, rounds=31)
    torch_time = _torch_rosenbrock()  # in a process of its own: importing torch changes the allocator
    out["rosenbrock 1e5: compiled / hand gradient"] = t["compiled"] / t["hand"]
    out["rosenbrock 1e5: compiled / f"] = t["compiled"] / t["f"]
    out["rosenbrock 1e5: reverse / hand gradient"] = t["reverse"] / t["hand"]
    if torch_time is not None:
        out["rosenbrock 1e5: compiled / PyTorch"] = t["compiled"] / torch_time
    # MLP 64-128-10, batch 256
    case = mlp_case()
    fm = functools.partial(case.fn, np)
    gm = dk.grad(fm, argnums=case.argnums, backend="compiled")
    t = median_times({"f": lambda: fm(*case.args), "compiled": lambda: gm(*case.args)}, rounds=31)
    out["mlp: compiled / f"] = t["compiled"] / t["f"]
    # scalar chain: µs per operation after compilation, and the compilation
    fc = functools.partial(scalar_chain, np)
    t0 = time.perf_counter()
    gc_ = dk.grad(fc, backend="compiled")
    gc_(0.3)
    out["scalar chain: compile (ms)"] = (time.perf_counter() - t0) * 1e3
    t = median_times({"compiled": lambda: gc_(0.3)}, rounds=31, inner=5)
    out["scalar chain: µs / op"] = t["compiled"] * 1e6 / 1000
    # Jacobians
    for case in jacobian_cases():
        fj = functools.partial(case.fn, np)
        j = dk.jacobian(fj, argnums=case.argnums, backend="compiled")
        args = case.args
        t = median_times({"f": functools.partial(fj, *args), "compiled": functools.partial(j, *args)}, rounds=21)
        out[f"jacobian {case.name}: compiled / f"] = t["compiled"] / t["f"]
    return out


TORCH = """
import statistics, time, numpy as np, torch
torch.set_num_threads(1)
x = torch.tensor(np.random.default_rng(0).normal(size=100_000), requires_grad=True)
def grad():
    x.grad = None
    y = torch.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    y.backward()
    return x.grad
grad()
ts = []
for _ in range(31):
    t0 = time.perf_counter(); grad(); ts.append(time.perf_counter() - t0)
print(statistics.median(ts))
"""


def _torch_rosenbrock() -> float | None:
    """PyTorch's Rosenbrock gradient (n = 1e5, one thread), median seconds, in a child
    process with this process's allocator settings; None without PyTorch."""
    try:
        done = subprocess.run([sys.executable, "-c", TORCH], capture_output=True, text=True, check=True)
    except subprocess.CalledProcessError:
        return None
    return float(done.stdout.strip())


def main() -> None:
    warnings.simplefilter("ignore")
    if "--here" in sys.argv:
        for k, v in measure().items():
            print(f"{k}\t{v:.4g}")
        return
    here = measure()
    env = {**os.environ, **TUNED}
    child = subprocess.run([sys.executable, __file__, "--here"], env=env, capture_output=True, text=True,
                           check=True).stdout
    tuned = dict(line.split("\t") for line in child.strip().splitlines())
    width = max(len(k) for k in here)
    print(f"{'measure':<{width}}  {'default process':>16}  {'tuned allocator':>16}")
    for k, v in here.items():
        print(f"{k:<{width}}  {v:>16.3g}  {float(tuned.get(k, 'nan')):>16.3g}")


if __name__ == "__main__":
    main()
