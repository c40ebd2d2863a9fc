"""Speed of the symbolic backend: setup (trace + derivative + compile) and per-call time.

Run:  python bench/bench_symbolic.py

1. Gradient of f(x) = sum(sin(x_i) x_i^2), n = 200: setup time (target <= 1 s,
   aim 0.3 s), per-call time against the reverse AD backend (target <= 3x).
2. The logistic map's derivative at n = 10, evaluated at 100,000 points: the
   compiled DAG-aware derivative against forward and reverse AD (target <= 5x),
   and against SymPy's naive derivative lambdified with and without cse.
"""

from __future__ import annotations

import os
import sys

_ENV = {"MALLOC_TRIM_THRESHOLD_": "1000000000", "MALLOC_MMAP_THRESHOLD_": "1000000000",
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
if any(os.environ.get(k) != v for k, v in _ENV.items()):
    os.environ.update(_ENV)
    os.execv(sys.executable, [sys.executable] + sys.argv)

import time  # noqa: E402

import numpy as np  # noqa: E402
import sympy  # noqa: E402

import diffkit as dk  # noqa: E402
from diffkit.backends.symbolic import compile_derivative  # noqa: E402
from diffkit.swell import logistic  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from bench_ad import timeit  # noqa: E402


def sum_sin_sq(x):
    return np.sum(np.sin(x) * x**2)


def main() -> None:
    x = np.random.default_rng(0).normal(size=200)
    setups = []
    for _ in range(5):  # each a fresh trace, derivative and compile
        comp = compile_derivative(sum_sin_sq, [x], "grad", (0,))
        setups.append(comp)
    med = sorted(setups, key=lambda c: c.setup_time)[2]
    gs = dk.grad(sum_sin_sq, backend="symbolic")
    gr = dk.grad(sum_sin_sq, backend="reverse")
    (ts, _), (tr, _) = timeit([lambda: gs(x), lambda: gr(x)], budget=1.0)
    print("gradient of sum(sin(x) x^2), n = 200")
    print(f"  setup {med.setup_time:.3f} s (trace {med.trace_time:.3f}, derivative "
          f"{med.derivative_time:.3f}, compile {med.compile_time:.3f})   target <= 1 s, aim 0.3 s")
    print(f"  per call: symbolic {ts * 1e6:.1f} us, reverse {tr * 1e6:.1f} us, ratio {ts / tr:.2f}   "
          "target <= 3")

    pts = np.random.default_rng(1).uniform(0.0, 1.0, 100_000)
    ones = np.ones_like(pts)
    t0 = time.perf_counter()
    dag = compile_derivative(lambda v: logistic(v, 10), [0.3], "grad", (0,))
    dag_setup = time.perf_counter() - t0
    xs = sympy.Symbol("x", real=True)
    naive = sympy.diff(logistic(xs, 10), xs)
    t0 = time.perf_counter()
    naive_cse = sympy.lambdify([xs], naive, "numpy", cse=True)
    cse_setup = time.perf_counter() - t0
    naive_plain = sympy.lambdify([xs], naive, "numpy")
    rev_fn = dk.vjp(lambda v: logistic(v, 10), pts)[1]
    cases = [
        ("symbolic DAG-aware, compiled", lambda: dag.evaluate(pts)),
        ("forward AD (jvp)", lambda: dk.jvp(lambda v: logistic(v, 10), (pts,), (ones,), backend="forward")),
        ("reverse AD (vjp)", lambda: dk.vjp(lambda v: logistic(v, 10), pts)[1](ones)),
        ("reverse AD (vjp_fn only)", lambda: rev_fn(ones)),
        ("SymPy naive diff, lambdify + cse", lambda: naive_cse(pts)),
        ("SymPy naive diff, lambdify", lambda: naive_plain(pts)),
    ]
    times = timeit([c[1] for c in cases], budget=3.0)
    print("logistic map n = 10, derivative at 100,000 points")
    print(f"  setup: DAG-aware {dag_setup:.3f} s, naive lambdify + cse {cse_setup:.3f} s")
    best_ad = min(times[1][0], times[2][0])
    for (name, _), (t, iqr) in zip(cases, times):
        print(f"  {name:36s} {t * 1e3:9.2f} ms  (iqr {100 * iqr / t:4.1f} %)  / best AD {t / best_ad:6.2f}")
    print("  target: symbolic within 5x of the AD backends")


if __name__ == "__main__":
    main()
