"""Do the numeric backend's error estimates bound its true errors?

The measurements are ``diffkit.bench.estimates``; this script prints them:
the number of cases (function, point, derivative order), the fraction whose
error estimate is at least the true error against 50-digit mpmath truth (goal
>= 99.5%), how many results said they cannot bound their error, median digits
and evaluations per derivative order, and the worst cases.

Run: ``python bench/bench_estimates.py`` (about 1,300 cases, a few minutes on
2 cores); ``--quick`` runs about 60 of them; ``--processes N`` sets the worker
processes; ``--json FILE`` writes every case's row.
"""

from __future__ import annotations

import argparse
import json
import sys

from diffkit.bench import estimates


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="about 60 cases instead of all")
    ap.add_argument("--processes", type=int, default=None, help="worker processes (default: 2, 1 with --quick)")
    ap.add_argument("--worst", type=int, default=12, help="how many of the worst cases to list")
    ap.add_argument("--json", metavar="FILE", help="write the summary and every case's row as JSON")
    args = ap.parse_args(argv)
    summary = estimates.run(quick=args.quick, processes=args.processes,
                            progress=lambda m: print(m, file=sys.stderr))
    print(estimates.format_report(summary, worst=args.worst))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=1, default=str)
    return 0 if estimates.meets_goal(summary) else 1


if __name__ == "__main__":
    sys.exit(main())
