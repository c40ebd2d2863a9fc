"""Speed of the AD backends, as ratios to the plain NumPy function.

Run:  python bench/bench_ad.py [--quick] [--json FILE] [--all] [--peers]

A thin wrapper over :mod:`diffkit.bench.ad`: it runs the benchmark with
diffkit's forward and reverse backends and prints the figures that have a
target (``--all``: every row; ``--peers``: autograd, JAX and PyTorch too,
side by side, as ``diffkit bench`` does). The method is that of
:mod:`diffkit.bench.timing`: glibc's malloc told to keep freed memory
(otherwise large temporaries go back to the OS and the benchmark measures page
faults), BLAS and XLA limited to one thread (the script re-executes itself with
that environment), a warm-up call, the function and its derivatives timed in
alternating rounds, each in its steady state, and medians with the spread
(interquartile range / median) printed.
"""

from __future__ import annotations

import argparse
import json
from typing import Sequence

from diffkit.bench.timing import ensure_environment

DIFFKIT_TOOLS = ["diffkit reverse", "diffkit forward"]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter time budget per measurement")
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--all", action="store_true", help="print every row, not only those with a target")
    ap.add_argument("--peers", action="store_true", help="also time autograd, JAX and PyTorch (implies --all)")
    args = ap.parse_args(argv)
    ensure_environment()

    from diffkit.bench import ad

    if args.peers:
        rows = ad.run(quick=args.quick)
    else:
        rows = ad.run(quick=args.quick, tools=DIFFKIT_TOOLS,
                      sections=["cheap gradient", "scalar chain", "jacobian"])
    shown = rows if args.all or args.peers else [r for r in rows if r["target"] is not None]
    print(ad.format_table(shown))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
