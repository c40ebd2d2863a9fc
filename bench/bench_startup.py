"""Start-up time: ``import diffkit`` and ``diffkit --help`` in fresh processes.

Each command runs ``--runs`` times (7 by default) in a new interpreter; the
table gives the median and the fastest run against the targets (0.15 s and
0.3 s) and the median's ratio to its target. ``python -c pass`` and ``import
numpy`` are measured alike, as the floor no lazy import can go below. Then
``python -X importtime`` lists the imports that cost most, and one process
reports which heavy dependencies ``import diffkit`` loaded (there should be
none).

The processes import the diffkit of this checkout (the repository root goes
first on ``PYTHONPATH``) and read their bytecode from a temporary
``PYTHONPYCACHEPREFIX`` that a first, untimed run fills: an installed package
has its ``.pyc`` files, and compiling the sources is no part of start-up.

Run from the repository root: ``python bench/bench_startup.py [--runs N]
[--top N] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent

HEAVY = ("sympy", "mpmath", "matplotlib", "dask", "typer", "rich", "hypothesis")
"""Modules ``import diffkit`` must not import."""

COMMANDS: list[tuple[str, list[str], float | None]] = [
    ("python -c pass", ["-c", "pass"], None),
    ("import numpy", ["-c", "import numpy"], None),
    ("import diffkit", ["-c", "import diffkit"], 0.15),
    ("diffkit --help", ["-m", "diffkit.cli", "--help"], 0.3),
]
"""(label, interpreter arguments, target in seconds or None for a reference line)."""


def environment(cache: str) -> dict[str, str]:
    """The child processes' environment: this checkout first, bytecode cached in ``cache``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["PYTHONPYCACHEPREFIX"] = cache
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["COLUMNS"] = "100"
    return env


def run_once(args: list[str], env: dict[str, str]) -> float:
    """Wall-clock seconds of one fresh interpreter running ``args``."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - t0


def measure(runs: int, env: dict[str, str]) -> list[dict[str, Any]]:
    """One row per command; the commands alternate, so the machine's noise hits each alike."""
    for _, args, _ in COMMANDS:  # untimed: fills the bytecode cache
        run_once(args, env)
    times: dict[str, list[float]] = {label: [] for label, _, _ in COMMANDS}
    for _ in range(runs):
        for label, args, _ in COMMANDS:
            times[label].append(run_once(args, env))
    rows = []
    for label, _, target in COMMANDS:
        med = statistics.median(times[label])
        rows.append({"what": label, "median_s": med, "min_s": min(times[label]), "runs": runs,
                     "target_s": target, "ratio": None if target is None else med / target})
    return rows


def importtime(env: dict[str, str], top: int) -> list[tuple[str, float, float]]:
    """The ``top`` imports of ``import diffkit`` with the largest cumulative time:
    (module, self ms, cumulative ms)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import diffkit"], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=True)
    entries = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line or "self [us]" in line:
            continue
        self_us, cum_us, name = line[len("import time:"):].split("|")
        entries.append((name.rstrip(), int(self_us) / 1000, int(cum_us) / 1000))
    return sorted(entries, key=lambda e: -e[2])[:top]


def heavy_imports(env: dict[str, str]) -> list[str]:
    """The modules of :data:`HEAVY` that ``import diffkit`` loaded."""
    code = f"import sys, diffkit; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'':<16}{'median s':>10}{'min s':>8}{'target s':>10}{'median/target':>15}")
    for r in rows:
        target = "" if r["target_s"] is None else f"{r['target_s']:.2f}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        print(f"{r['what']:<16}{r['median_s']:>10.3f}{r['min_s']:>8.3f}{target:>10}{ratio:>15}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per command (default 7)")
    parser.add_argument("--top", type=int, default=12, help="imports listed from -X importtime (default 12)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="diffkit-startup-") as cache:
        env = environment(cache)
        rows = measure(max(1, args.runs), env)
        print(f"Python {sys.version.split()[0]}, {args.runs} fresh processes per command")
        print_table(rows)
        heavy = heavy_imports(env)
        print(f"\nheavy modules after `import diffkit`: {', '.join(heavy) if heavy else 'none'}")
        top = importtime(env, args.top)
        print(f"\n`python -X importtime -c 'import diffkit'`, the {len(top)} largest (cumulative ms):")
        for name, self_ms, cum_ms in top:
            print(f"  {cum_ms:8.1f}  (self {self_ms:6.1f})  {name}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"rows": rows, "heavy": heavy, "importtime": top}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
