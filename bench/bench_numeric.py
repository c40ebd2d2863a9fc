"""Accuracy and cost of numeric derivatives on smooth test functions, against mpmath truth.

The measurements are ``diffkit.bench.accuracy`` (the ``numeric`` section of
``diffkit bench``); this script prints them. For every method, for first
derivatives:

* digits: ``-log10`` of the relative error, median and worst over the cases
  (capped at 16: an exact result counts as 16 digits);
* evaluations per derivative (points at which the function was evaluated), median;
* how often the method's error estimate bounds the true error;

and the median and worst digits of second derivatives, with their median cost,
and the time per case (median of at least 7 timed passes).

Methods: diffkit's numeric backend with default settings, plain central
differences (step ``eps**(1/3) * max(|x|, 1)``), and, when installed,
numdifftools and ``scipy.differentiate``.

Run: ``python bench/bench_numeric.py`` (``--cases`` lists the cases and the
per-case digits of diffkit; ``--quick`` times a subset; ``--limit N`` runs the first N
cases; ``--json FILE`` writes the rows).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from diffkit.bench import accuracy


def print_rows(rows: list[dict[str, Any]], per_case: bool = False) -> None:
    """The table of ``accuracy.run``'s rows (and diffkit's per-case digits)."""
    n_cases = rows[0]["n_cases"] if rows else len(accuracy.CASES)
    print(f"{n_cases} smooth test functions, truth: mpmath.diff at {accuracy.DPS} digits")
    print(f"{'method':<22}{'median':>8}{'worst':>8}{'evals':>8}{'bounds':>9}{'2nd median':>12}{'2nd worst':>11}"
          f"{'2nd evals':>11}{'time/case':>11}")
    by_label = {r["method"]: r for r in rows}
    for label, *_ in accuracy.METHODS:
        r = by_label.get(label)
        if r is None:
            print(f"{label:<22}  (not installed)")
            continue
        cov = "-" if r["bound_rate"] is None else f"{100 * r['bound_rate']:.0f}%"
        print(f"{label:<22}{r['median_digits']:8.1f}{r['worst_digits']:8.1f}{r['median_evals']:8.0f}{cov:>9}"
              f"{r['second_median_digits']:12.1f}{r['second_worst_digits']:11.1f}{r['second_median_evals']:11.0f}"
              f"{r['seconds_per_case'] * 1e3:9.1f}ms")
    if per_case:
        print("\ndiffkit per case: digits (1st, 2nd), evaluations, estimate bounds the error")
        for c in next((r.get("cases", []) for r in rows if "cases" in r), []):
            print(f"  {c['case']:<22}{c['digits']:6.1f}{c['second_digits']:6.1f}{c['evals']:6.0f}  "
                  f"{'yes' if c['bounded'] else 'NO'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--cases", action="store_true", help="print diffkit's digits per case")
    ap.add_argument("--quick", action="store_true", help="time a subset of the cases (accuracy: all of them)")
    ap.add_argument("--limit", type=int, metavar="N", help="only the first N cases")
    ap.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    args = ap.parse_args(argv)
    rows = accuracy.run(quick=args.quick, limit=args.limit)
    print_rows(rows, per_case=args.cases)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
