"""Speed of the AD backends, as ratios to the plain NumPy function.

Run:  python bench/bench_ad.py [--quick]

Prints, for each case of the foundation issue's targets, the median time of
the function and of its derivative and their ratio. Everything is compared in
one process, with glibc's malloc told to keep freed memory (otherwise large
temporaries go back to the OS and the benchmark measures page faults), BLAS
limited to one thread, a warm-up call, and medians over repeats with the
spread (interquartile range) printed.
"""

from __future__ import annotations

import os
import sys

# Must be set before NumPy loads; re-exec so glibc reads the malloc settings at start.
_ENV = {"MALLOC_TRIM_THRESHOLD_": "1000000000", "MALLOC_MMAP_THRESHOLD_": "1000000000",
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
if any(os.environ.get(k) != v for k, v in _ENV.items()):
    os.environ.update(_ENV)
    os.execv(sys.executable, [sys.executable] + sys.argv)

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

import diffkit as dk  # noqa: E402


def timeit(fns: list[Callable[[], Any]], budget: float = 1.0,
           min_repeats: int = 7) -> list[tuple[float, float]]:
    """Median and interquartile range of each function's time.

    The functions are called in turn, round after round, so that a slow
    moment of this shared machine hits all of them alike; rounds go on for
    ``budget`` seconds (at least ``min_repeats``).
    """
    for fn in fns:
        fn()  # warm-up
    times: list[list[float]] = [[] for _ in fns]
    start = time.perf_counter()
    while len(times[0]) < min_repeats or (time.perf_counter() - start < budget and len(times[0]) < 2000):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    res = []
    for ts in times:
        q1, med, q3 = np.percentile(ts, [25, 50, 75])
        res.append((float(med), float(q3 - q1)))
    return res


def rosenbrock(x: Any) -> Any:
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def mlp_loss(w1: Any, b1: Any, w2: Any, b2: Any, x: Any, y: Any) -> Any:
    """64-128-10 MLP, tanh hidden layer, softmax cross-entropy, batch 256."""
    h = np.tanh(x @ w1 + b1)
    z = h @ w2 + b2
    z = z - np.max(z, axis=1, keepdims=True)
    logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    return -np.sum(logp * y) / x.shape[0]


def scalar_chain(x: Any) -> Any:
    """1,000 operations on a Python float (250 rounds of 4)."""
    for _ in range(250):
        x = np.sin(x) * 0.999 + x * 0.5
    return x


def cases(quick: bool) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    out = []
    x = rng.normal(size=100_000)
    out.append(dict(name="rosenbrock n=1e5: reverse grad / f", target=3.0, aim=2.0,
                    f=lambda: rosenbrock(x), d=lambda g=dk.grad(rosenbrock): g(x)))
    w1, b1 = rng.normal(size=(64, 128)) * 0.1, np.zeros(128)
    w2, b2 = rng.normal(size=(128, 10)) * 0.1, np.zeros(10)
    xb = rng.normal(size=(256, 64))
    yb = np.eye(10)[rng.integers(0, 10, 256)]
    gm = dk.grad(mlp_loss, argnums=(0, 1, 2, 3))
    out.append(dict(name="MLP 64-128-10, batch 256: reverse grad / f", target=3.0, aim=1.5,
                    f=lambda: mlp_loss(w1, b1, w2, b2, xb, yb),
                    d=lambda: gm(w1, b1, w2, b2, xb, yb)))
    gc = dk.grad(scalar_chain)
    out.append(dict(name="scalar chain, 1,000 ops: reverse grad, us per op", target=5.0, aim=2.0,
                    per_op=1000, f=None, d=lambda: gc(0.3)))
    fc = dk.grad(scalar_chain, backend="forward")
    out.append(dict(name="scalar chain, 1,000 ops: forward grad, us per op", target=None, aim=None,
                    per_op=1000, f=None, d=lambda: fc(0.3)))
    xw = rng.normal(size=1000)

    def wide(v: Any) -> Any:
        return np.sum(np.sin(v) * v)

    jw = dk.jacobian(wide, backend="reverse")
    out.append(dict(name="jacobian R^1000 -> R, reverse / f", target=20.0, aim=5.0,
                    f=lambda: wide(xw), d=lambda: jw(xw)))
    grid = np.linspace(0.0, 1.0, 1000)

    def tall(s: Any) -> Any:
        return np.sin(s * grid) * s

    jt = dk.jacobian(tall, backend="forward")
    out.append(dict(name="jacobian R -> R^1000, forward / f", target=20.0, aim=5.0,
                    f=lambda: tall(0.7), d=lambda: jt(0.7)))
    a = rng.normal(size=(100, 100)) / 10
    v = rng.normal(size=100)

    def square(u: Any) -> Any:
        return np.tanh(a @ u)

    for mode in ("forward", "reverse"):
        js = dk.jacobian(square, backend=mode)
        out.append(dict(name=f"jacobian 100x100 tanh(A @ x), {mode} / f", target=60.0, aim=10.0,
                        f=lambda: square(v), d=lambda js=js: js(v)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter time budget per measurement")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    budget = 0.3 if args.quick else 1.0
    rows = []
    print(f"{'case':58s} {'f (ms)':>9s} {'deriv (ms)':>11s} {'ratio':>8s} {'iqr %':>6s} {'target':>7s} {'aim':>5s}")
    for c in cases(args.quick):
        if c.get("per_op"):
            ((td, sd),) = timeit([c["d"]], budget)
            ratio = td / c["per_op"] * 1e6
            tf = float("nan")
        else:
            (tf, _), (td, sd) = timeit([c["f"], c["d"]], budget)
            ratio = td / tf
        spread = 100 * sd / td
        ok = "" if c["target"] is None else ("ok" if ratio <= c["target"] else "MISSED")
        print(f"{c['name']:58s} {tf * 1e3:9.3f} {td * 1e3:11.3f} {ratio:8.2f} {spread:6.1f} "
              f"{c['target'] or '-':>7} {c['aim'] or '-':>5} {ok}")
        rows.append(dict(case=c["name"], f_ms=tf * 1e3, d_ms=td * 1e3, ratio=ratio, iqr_pct=spread,
                         target=c["target"], aim=c["aim"]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
