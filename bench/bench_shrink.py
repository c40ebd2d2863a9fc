"""Do failing properties over diffkit.strategies.functions shrink to the minimal expression?

The measurement is ``diffkit.bench.shrink``: for each target primitive, a
property that fails when the function calls it is shrunk by Hypothesis under
``--seeds`` different random seeds (default 100); the script prints how many
reach the minimal expression (goal 99%) and what the others ended at.

Run: ``python bench/bench_shrink.py`` (a few minutes); ``--seeds 10`` for a
quick look.
"""

from __future__ import annotations

import argparse
import sys

from diffkit.bench import shrink


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seeds", type=int, default=100, help="random seeds per target (default 100)")
    args = ap.parse_args(argv)
    rows = shrink.run(seeds=args.seeds, progress=lambda m: print(m, file=sys.stderr))
    print(shrink.format_report(rows))
    hit, total = shrink.summary(rows)
    return 0 if hit >= shrink.GOAL * total else 1


if __name__ == "__main__":
    sys.exit(main())
