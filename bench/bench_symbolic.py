"""Speed of the symbolic backend: setup (trace + derivative + compile) and per-call time.

Run:  python bench/bench_symbolic.py [--quick] [--scaling] [--json FILE]
      (--n, --logistic-n, --points change the sizes)

The measurements are ``diffkit.bench.symbolic`` (the ``symbolic`` section of
``diffkit bench``); this script prints them.

1. Gradient of f(x) = sum(sin(x_i) x_i^2), n = 200: setup time (target <= 1 s,
   aim 0.3 s), per-call time against the reverse AD backend (target <= 3x).
2. The logistic map's derivative at n = 10, evaluated at 100,000 points: the
   compiled DAG-aware derivative against forward and reverse AD (target <= 5x),
   and against SymPy's naive derivative lambdified with and without cse
   (``--quick`` leaves out the latter, about a second a call).
3. With ``--scaling``: growth with n of both (setup, call / reverse, operations).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from diffkit.bench.timing import ensure_environment

if __name__ == "__main__":
    ensure_environment()  # malloc keeps freed memory, one BLAS thread: re-executes this script once

from diffkit.bench import symbolic  # noqa: E402


def print_rows(rows: list[dict[str, Any]]) -> None:
    """The report of ``symbolic.run``'s rows."""
    main = {r["case"]: r for r in rows if r["section"] == "symbolic"}
    s = main.get("sum sin(x) x^2")
    if s is not None:
        print(f"gradient of sum(sin(x) x^2), n = {s['n']}")
        print(f"  setup {s['setup_seconds']:.3f} s (trace {s['trace_seconds']:.3f}, derivative "
              f"{s['derivative_seconds']:.3f}, compile {s['compile_seconds']:.3f})   target <= 1 s, aim 0.3 s")
        print(f"  per call: symbolic {s['call_seconds'] * 1e6:.1f} us, reverse {s['reverse_call_seconds'] * 1e6:.1f} us, "
              f"ratio {s['ratio']:.2f}   target <= 3")
        print(f"  operations: DAG-aware {s['ops_dag']}, naive {s['ops_naive']}, naive + cse {s['ops_cse']}")
    lg = main.get("logistic map")
    if lg is not None:
        print(f"logistic map n = {lg['n']}, derivative at {lg['points']:,} points")
        print(f"  setup: DAG-aware {lg['setup_seconds']:.3f} s, naive lambdify + cse "
              f"{lg['naive_cse_setup_seconds']:.3f} s")
        variants = {v["method"]: v for v in lg["variants"]}
        ad = [variants[k]["call_seconds"] for k in ("forward AD (jvp)", "reverse AD (vjp)") if k in variants]
        best_ad = min(ad)
        order = ["symbolic DAG-aware, compiled", "forward AD (jvp)", "reverse AD (vjp)", "reverse AD (vjp_fn only)",
                 "SymPy naive diff, lambdify + cse", "SymPy naive diff, lambdify"]
        for name in order:
            v = variants.get(name)
            if v is None:
                print(f"  {name:36s}   (left out by --quick)")
                continue
            t = v["call_seconds"]
            print(f"  {name:36s} {t * 1e3:9.2f} ms  (iqr {100 * v['iqr_seconds'] / t:4.1f} %)  / best AD {t / best_ad:6.2f}")
        print("  target: symbolic within 5x of the AD backends")
        print(f"  operations: DAG-aware {lg['ops_dag']}, naive {lg['ops_naive']}, naive + cse {lg['ops_cse']}")
    scaling = [r for r in rows if r["section"] == "symbolic-scaling"]
    if scaling:
        print("growth with n")
        print(f"  {'case':16s}{'n':>5}{'setup s':>10}{'call us':>11}{'/ reverse':>11}{'ops DAG':>9}{'naive':>8}{'cse':>7}")
        for r in sorted(scaling + list(main.values()), key=lambda r: (r["case"], r["n"])):
            print(f"  {r['case']:16s}{r['n']:5d}{r['setup_seconds']:10.3f}{r['call_seconds'] * 1e6:11.1f}"
                  f"{r['ratio']:11.2f}{r['ops_dag']:9d}{r['ops_naive']:8d}{r['ops_cse']:7d}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer builds, shorter timing, no naive lambdify without cse")
    ap.add_argument("--scaling", action="store_true", help="also the growth with n")
    ap.add_argument("--n", type=int, default=200, help="size of the sum sin(x) x^2 case (default 200)")
    ap.add_argument("--logistic-n", type=int, default=10, help="n of the logistic map (default 10)")
    ap.add_argument("--points", type=int, default=100_000, help="points of the logistic map's derivative")
    ap.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    args = ap.parse_args(argv)
    rows = symbolic.run(quick=args.quick, scaling=None if args.scaling else {}, n=args.n,
                        logistic_n=args.logistic_n, points=args.points)
    print_rows(rows)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
