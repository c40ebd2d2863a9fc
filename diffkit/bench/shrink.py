"""How often does a failing property shrink to the minimal expression?

A property that fails whenever the drawn function calls one primitive (``log``,
``exp``, ...) is handed to Hypothesis's ``find`` with a different random seed
each time; the run counts the seeds whose shrunk function is the minimal one:
that primitive alone on ``x``, inside its domain transform (``log(1 + x**2)``,
``exp(tanh(x))``). Needs Hypothesis (the ``test`` extra).

Example:
    >>> rows = run(seeds=2, targets={"sqrt": "sqrt(1 + x**2)"})
    >>> rows[0]["target"], rows[0]["minimal"], rows[0]["seeds"]
    ('sqrt', 2, 2)
"""

from __future__ import annotations

import random
import re
from collections import Counter
from typing import Any, Callable, Mapping

GOAL = 0.99
"""The fraction of seeds that must reach the minimal expression."""

TARGETS: dict[str, str] = {
    "log": "log(1 + x**2)",
    "sqrt": "sqrt(1 + x**2)",
    "exp": "exp(tanh(x))",
    "sin": "sin(x)",
    "cos": "cos(x)",
    "arctan": "arctan(x)",
}
"""Primitive -> the minimal function calling it (over variables x and y). Primitives that
domain transforms use (``tanh`` inside ``exp(tanh(x))``) are left out: a function calling
them has two minimal forms."""


def run(seeds: int = 100, targets: Mapping[str, str] | None = None,
        progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """One row per target: seeds run, how many reached the minimal expression, the others' results."""
    from hypothesis import HealthCheck, find, settings

    from ..strategies import functions

    budget = settings(max_examples=2000, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    rows = []
    for name, minimal in (targets or TARGETS).items():
        call = re.compile(rf"\b{name}\(")
        found: Counter[str] = Counter()
        for seed in range(seeds):
            f = find(functions(variables=("x", "y")), lambda f: call.search(f.source) is not None,
                     settings=budget, random=random.Random(seed))
            found[f.source] += 1
        if progress:
            progress(f"{name}: {found[minimal]}/{seeds}")
        rows.append({"target": name, "expected": minimal, "seeds": seeds, "minimal": found[minimal],
                     "others": {k: v for k, v in found.items() if k != minimal}})
    return rows


def summary(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """(seeds that reached the minimal expression, seeds run), over every target."""
    return sum(r["minimal"] for r in rows), sum(r["seeds"] for r in rows)


def format_report(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'target':8s} {'minimal expression':22s} {'reached':>9s}  other results"]
    for r in rows:
        others = ", ".join(f"{k} ({v})" for k, v in sorted(r["others"].items(), key=lambda kv: -kv[1])[:2])
        lines.append(f"{r['target']:8s} {r['expected']:22s} {r['minimal']:>4d}/{r['seeds']:<4d}  {others or '-'}")
    hit, total = summary(rows)
    lines.append(f"all: {hit}/{total} = {hit / max(total, 1):.1%} of the runs shrink to the minimal expression "
                 f"(goal {GOAL:.0%})")
    return "\n".join(lines)
