"""Draw the documentation site's figures from the code, so they always match it.

``python docs/figures.py [--out DIR] [--only NAME ...] [--list]`` writes every
figure into ``docs/img/generated/`` (git-ignored: nothing binary is committed).
The MkDocs hook ``docs/hooks.py`` runs it before each build. Each figure is a
function below, registered with ``@figure``; it gets the output folder and
returns the paths it wrote. The whole run takes about 15 s (the swell table
is measured for small n under a short time limit).

matplotlib, diffkit's plots and the graph renderer are imported inside the
functions, so importing this file (pytest's doctest collection does) is cheap.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "img" / "generated"
DPI = 110

FIGURES: dict[str, Callable[[Path], list[Path]]] = {}
"""Name -> function drawing that figure into a folder."""


def figure(fn: Callable[[Path], list[Path]]) -> Callable[[Path], list[Path]]:
    """Register a figure function under its name."""
    FIGURES[fn.__name__] = fn
    return fn


def _save(fig: Any, path: Path) -> Path:
    """Save a matplotlib Figure on white (readable in the dark palette too).

    diffkit's plots build Figures without pyplot, so there is nothing to close.
    """
    fig.savefig(path, dpi=DPI, facecolor="white",
                metadata={"Software": None} if path.suffix == ".png" else {"Date": None})
    return path


# --------------------------------------------------------------------------
# Computational graphs (dk.graph), for the tutorial
# --------------------------------------------------------------------------


def _sigmoid(x: Any) -> Any:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-x))


@figure
def graphs(out: Path) -> list[Path]:
    """The seed notes' graphs: apple, apple and orange, (x + y)^2, one neuron."""
    import diffkit as dk

    def apple(price, count, tax):
        return price * count * tax

    def fruit(apple, apples, orange, oranges, tax):
        return (apple * apples + orange * oranges) * tax

    def chain(x, y):
        t = x + y
        return t**2

    @dk.custom_jvp
    def sigmoid(z):  # one node in the picture, as in the notes: its rule is sigma (1 - sigma)
        return _sigmoid(z)

    @sigmoid.defjvp
    def sigmoid_jvp(primals, tangents):
        s = sigmoid(primals[0])
        return s, s * (1 - s) * tangents[0]

    def neuron(w1, w2):
        return (0.0 - sigmoid(w1 * 2.0 + w2 * 5.0)) ** 2

    return [
        dk.graph(apple, 100.0, 2.0, 1.1).save(out / "graph_apple.svg"),
        dk.graph(fruit, 100.0, 2.0, 150.0, 3.0, 1.1).save(out / "graph_fruit.svg"),
        dk.graph(chain, 1.0, 2.0).save(out / "graph_chain.svg"),
        dk.graph(neuron, 0.5, 0.1).save(out / "graph_neuron.svg"),
    ]


# --------------------------------------------------------------------------
# diffkit.plots
# --------------------------------------------------------------------------


@figure
def sigmoid(out: Path) -> list[Path]:
    """The sigmoid and its derivative (at most 1/4)."""
    from diffkit import plots

    return [_save(plots.sigmoid(), out / "sigmoid.png")]


@figure
def step_sweep(out: Path) -> list[Path]:
    """The V curves of Baydin et al. (2018), Fig. 3, at x = 0.2."""
    import diffkit as dk
    from diffkit import plots

    def f(x):
        return 64 * x * (1 - x) * (1 - 2 * x) ** 2 * (1 - 8 * x + 8 * x * x) ** 2

    return [_save(plots.step_sweep(dk.step_sweep(f, 0.2), 0.2, name="64x(1-x)(1-2x)²(1-8x+8x²)²"),
                  out / "step_sweep.png")]


@figure
def swell(out: Path) -> list[Path]:
    """Expression swell of the logistic map for n = 1..6 (each step limited to 3 s)."""
    from diffkit import plots
    from diffkit.swell import swell_table

    rows = swell_table(6, timeout=3.0)
    return [_save(plots.swell(rows), out / "swell.png")]


def bench_run(path: Path = ROOT / "docs" / "benchmarks.json") -> dict[str, Any]:
    """The saved ``diffkit bench`` run that docs/benchmarks.md was generated from.

    Example:
        >>> bench_run()["schema"]
        'diffkit.bench/1'
    """
    return json.loads(path.read_text(encoding="utf-8"))


@figure
def bench(out: Path) -> list[Path]:
    """The saved run's targets as bars, and gradient time against n (log-log) for every tool."""
    from diffkit import plots

    run = bench_run()
    rows = [{"name": t["name"], "ratio": t["measured"], "target": t["target"]}
            for t in run["targets"] if t["sense"] == "<=" and "setup" not in t["name"]]
    fig = plots.bench(rows, xlabel="measured (ratio, or µs per operation)", title="diffkit against its targets")
    fig.set_size_inches(8, 5)
    scaling = plots.scaling([r for r in run["sections"].get("ad", []) if r.get("section") == "scaling"],
                            title="Rosenbrock: gradient time against n")
    return [_save(fig, out / "bench.png"), _save(scaling, out / "bench_scaling.png")]


@figure
def report(out: Path) -> list[Path]:
    """The cross-check that catches a wrong custom rule (the README's example)."""
    import numpy as np

    import diffkit as dk
    from diffkit import plots

    @dk.custom_vjp
    def f(x):
        return np.sin(x)

    f.defvjp(lambda x: (np.sin(x), x), lambda x, g: (1.001 * g * np.cos(x),))  # a wrong rule
    bad = dk.crosscheck(f, args=(0.7,), op="grad", name="sin with a wrong VJP")
    return [_save(plots.report(bad), out / "report_bad.png")]


@figure
def suite(out: Path) -> list[Path]:
    """The ``seeds`` suite: its plot and its HTML report."""
    from diffkit import plots
    from diffkit.harness.report import suite_to_html
    from diffkit.harness.runner import run_suite
    from diffkit.harness.suites import suite as load_suite

    result = run_suite(load_suite("seeds"), name="seeds", jobs=2, timeout=60.0)
    html = out / "seeds-report.html"
    html.write_text(suite_to_html(result), encoding="utf-8")
    return [_save(plots.suite(result), out / "suite_seeds.png"), html]


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Draw the figures; print one line per figure with its time. Returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT, help="output folder (default docs/img/generated)")
    ap.add_argument("--only", nargs="*", choices=sorted(FIGURES), help="draw only these figures")
    ap.add_argument("--list", action="store_true", help="list the figures and exit")
    a = ap.parse_args(argv)
    if a.list:
        for name, fn in FIGURES.items():
            print(f"{name}: {(fn.__doc__ or '').strip()}")
        return 0
    a.out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    for name in a.only or FIGURES:
        t0 = time.perf_counter()
        paths = FIGURES[name](a.out)
        files = ", ".join(p.name for p in paths)
        print(f"figures: {name}: {files} ({time.perf_counter() - t0:.1f} s)", flush=True)
    print(f"figures: all written to {a.out} in {time.perf_counter() - t_all:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
