"""How long does the README's test command take?

Runs ``python -m pytest -n auto`` (the README's command; ``--workers N`` sets
``-n``) from the repository root and prints the wall time against the target
of 120 s on 2 cores, with the counts pytest reports. ``--slow`` times
``-m slow`` (the full forms of the heavy checks) instead.

Run from the repository root: ``python bench/bench_test_time.py [--workers N] [--slow]``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = 120.0
"""Seconds the default run may take on 2 cores."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--workers", default="auto", help="pytest-xdist workers (-n), default auto")
    ap.add_argument("--slow", action="store_true", help="time -m slow, the full forms, instead")
    args = ap.parse_args(argv)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(args.workers)]
    if args.slow:
        cmd += ["-m", "slow"]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    summary = next((line for line in reversed(done.stdout.splitlines()) if re.search(r"\d+ (passed|failed)", line)),
                   "no summary")
    print(f"command: {' '.join(['python'] + cmd[1:])}")
    print(f"cores:   {os.cpu_count()}")
    print(f"result:  {summary.strip('= ')}")
    line = f"time:    {seconds:.0f} s"
    if not args.slow:
        line += f" (target {TARGET:.0f} s on 2 cores: {seconds / TARGET:.2f} of it)"
    print(line)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
