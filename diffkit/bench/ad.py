"""The AD benchmark: diffkit's backends against autograd, JAX and PyTorch, side by side.

Every case is one function ``fn(xp, *args)`` (:mod:`diffkit.bench.peers`) that
every tool differentiates; the plain NumPy function and every tool's
derivative are timed in the same alternating rounds (:func:`~diffkit.bench.timing.timeit`),
so a figure is a ratio to the same NumPy time, measured under the same noise.

Sections (rows' ``section``):

* ``cheap gradient`` -- gradient time / NumPy f time: Rosenbrock n = 1e3, 1e5,
  1e6 and an MLP 64-128-10 on a batch of 256 (softmax cross-entropy).
  Targets for diffkit reverse: Rosenbrock n = 1e5 <= 2.0, MLP <= 1.5.
* ``scalar chain`` -- per-operation overhead: a chain of 1,000 scalar
  operations, gradient time in microseconds per operation (target for diffkit
  reverse: <= 2.0). JAX's figure is its jit-compiled chain (one XLA
  computation: dispatch cost / 1,000); PyTorch works on 0-d tensors.
* ``jacobian`` -- Jacobians of shape (1, 1000) [``sum(sin(x) x)``, R^1000 -> R],
  (1000, 1) [``sin(s t) s``, R -> R^1000] and (100, 100) [``tanh(A @ x)``], in
  reverse and forward mode for every tool (and diffkit's numeric backend), / f;
  the case is shape and mode, e.g. ``"(1, 1000) reverse"``. Targets for
  diffkit: <= 5 for (1, 1000) reverse and (1000, 1) forward, <= 10 for
  (100, 100) in both modes. The compiled backend has one mode, ``auto`` (forward
  where the arguments are fewer than the outputs), with the same targets.
* ``scaling`` -- Rosenbrock gradient time against n, decade by decade (rows
  shared with ``cheap gradient`` where n is the same).

Every measurement runs twice: in this process, with glibc's default allocator
(as users run: the leading figures ``seconds``, ``ratio``), then in a child
process with the tuned allocator (:data:`~diffkit.bench.timing.TUNED_MALLOC`,
freed memory kept: ``tuned_seconds``, ``tuned_ratio``), which takes page faults
out of the large-array figures.

:func:`run` returns JSON-able rows; :func:`format_table` prints them.

Example:
    >>> rows = run(quick=True, tools=["diffkit reverse"], sections=["scalar chain"], budget=0.01)
    >>> [(r["case"], r["tool"], r["unit"], r["target"]) for r in rows]
    [('scalar chain 1000 ops', 'diffkit reverse', 'us/op', 2.0)]
    >>> rows[0]["ratio"] > 0 and rows[0]["tuned_ratio"] > 0  # default allocator, tuned one
    True
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InvalidArgument
from .peers import TOOLS, Case, Tool, get_tool
from .timing import timeit, tuned_environ

__all__ = ["ROW_KEYS", "SECTIONS", "format_table", "mlp_loss", "missed", "rosenbrock", "run", "scalar_chain"]

SECTIONS: tuple[str, ...] = ("cheap gradient", "scalar chain", "jacobian", "scaling")

#: The keys of every row, in order.
ROW_KEYS: tuple[str, ...] = ("section", "case", "tool", "mode", "n", "f_seconds", "seconds", "ratio", "spread",
                             "repeats", "setup_seconds", "tuned_f_seconds", "tuned_seconds", "tuned_ratio",
                             "tuned_spread", "target", "unit", "note")

CHEAP_SIZES = (1_000, 100_000, 1_000_000)
SCALING_SIZES = (100, 1_000, 10_000, 100_000, 1_000_000)
SCALING_SIZES_QUICK = (100, 1_000, 100_000, 1_000_000)


# --- the functions, each written once against an array module ``xp`` -----------------------------

def rosenbrock(xp: Any, x: Any) -> Any:
    """The n-dimensional Rosenbrock function."""
    return xp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def mlp_loss(xp: Any, w1: Any, b1: Any, w2: Any, b2: Any, x: Any, y: Any) -> Any:
    """An MLP with a tanh hidden layer, softmax cross-entropy, averaged over the batch."""
    h = xp.tanh(x @ w1 + b1)
    z = h @ w2 + b2
    z = z - xp.max(z, axis=1, keepdims=True)
    logp = z - xp.log(xp.sum(xp.exp(z), axis=1, keepdims=True))
    return -xp.sum(logp * y) / x.shape[0]


def scalar_chain(xp: Any, x: Any) -> Any:
    """1,000 operations on a scalar (250 rounds of 4)."""
    for _ in range(250):
        x = xp.sin(x) * 0.999 + x * 0.5
    return x


def wide(xp: Any, v: Any) -> Any:
    """R^n -> R."""
    return xp.sum(xp.sin(v) * v)


def tall(xp: Any, s: Any, grid: Any) -> Any:
    """R -> R^m (``grid`` is a constant)."""
    return xp.sin(s * grid) * s


def square(xp: Any, u: Any, a: Any) -> Any:
    """R^n -> R^n (``a`` is a constant)."""
    return xp.tanh(a @ u)


def _exp10(n: int) -> str:
    e = int(round(np.log10(n)))
    return f"1e{e}" if 10**e == n else f"{n:,}"


def rosenbrock_case(n: int) -> Case:
    x = np.random.default_rng(0).normal(size=n)
    return Case(f"rosenbrock n={_exp10(n)}", rosenbrock, (x,))


def mlp_case() -> Case:
    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(size=(64, 128)) * 0.1, np.zeros(128)
    w2, b2 = rng.normal(size=(128, 10)) * 0.1, np.zeros(10)
    x = rng.normal(size=(256, 64))
    y = np.eye(10)[rng.integers(0, 10, 256)]
    return Case("mlp 64-128-10", mlp_loss, (w1, b1, w2, b2, x, y), argnums=(0, 1, 2, 3))


def chain_case() -> Case:
    return Case("scalar chain 1000 ops", scalar_chain, (0.3,), meta={"ops": 1000})


def jacobian_cases() -> list[Case]:
    rng = np.random.default_rng(0)
    return [
        Case("(1, 1000)", wide, (rng.normal(size=1000),)),
        Case("(1000, 1)", tall, (0.7, np.linspace(0.0, 1.0, 1000))),
        Case("(100, 100)", square, (rng.normal(size=100), rng.normal(size=(100, 100)) / 10)),
    ]


# Targets: (case, tool, mode) -> bound on the row's figure.
TARGETS: dict[tuple[str, str, str], float] = {
    ("rosenbrock n=1e5", "diffkit reverse", "reverse"): 2.0,
    ("mlp 64-128-10", "diffkit reverse", "reverse"): 1.5,
    ("scalar chain 1000 ops", "diffkit reverse", "reverse"): 2.0,
    ("(1, 1000) reverse", "diffkit reverse", "reverse"): 5.0,
    ("(1000, 1) forward", "diffkit forward", "forward"): 5.0,
    ("(100, 100) reverse", "diffkit reverse", "reverse"): 10.0,
    ("(100, 100) forward", "diffkit forward", "forward"): 10.0,
    # the compiled backend's own (its Rosenbrock target, 1.2x a hand-written gradient, is
    # measured against that gradient by bench/bench_compiled.py)
    ("rosenbrock n=1e5", "diffkit compiled", "reverse"): 2.0,
    ("mlp 64-128-10", "diffkit compiled", "reverse"): 1.8,
    ("scalar chain 1000 ops", "diffkit compiled", "reverse"): 0.15,
    ("(1, 1000) auto", "diffkit compiled", "auto"): 2.5,
    ("(1000, 1) auto", "diffkit compiled", "auto"): 2.5,
    ("(100, 100) auto", "diffkit compiled", "auto"): 5.0,
}


def _target(section: str, case: str, tool: str, mode: str | None) -> float | None:
    if section == "scaling":
        return None
    return TARGETS.get((case, tool, mode or ""))


# --- the plan: measurements, each a case timed against NumPy's f with several tools -----------

@dataclass
class _Entry:
    tool: Tool
    mode: str  # "reverse", "forward", "numeric" or "auto" (the compiled backend's choice)
    kind: str  # "grad" or "jacobian"


@dataclass
class _Measurement:
    sections: list[str]
    case: Case
    unit: str  # "x f" (ratio to f) or "us/op"
    entries: list[_Entry] = field(default_factory=list)


def _grad_mode(tool: Tool) -> str:
    return "forward" if tool.name == "diffkit forward" else "reverse"


def _plan(quick: bool, tools: list[Tool], sections: Sequence[str]) -> list[_Measurement]:
    grad_tools = [t for t in tools if t.gradient]
    plan = []
    sizes: dict[int, list[str]] = {}
    if "cheap gradient" in sections:
        for n in CHEAP_SIZES:
            sizes.setdefault(n, []).append("cheap gradient")
    if "scaling" in sections:
        for n in (SCALING_SIZES_QUICK if quick else SCALING_SIZES):
            sizes.setdefault(n, []).append("scaling")
    for n in sorted(sizes):
        plan.append(_Measurement(sizes[n], rosenbrock_case(n), "x f",
                                 [_Entry(t, _grad_mode(t), "grad") for t in grad_tools]))
    if "cheap gradient" in sections:
        plan.append(_Measurement(["cheap gradient"], mlp_case(), "x f",
                                 [_Entry(t, _grad_mode(t), "grad") for t in grad_tools]))
    if "scalar chain" in sections:
        plan.append(_Measurement(["scalar chain"], chain_case(), "us/op",
                                 [_Entry(t, _grad_mode(t), "grad") for t in grad_tools]))
    if "jacobian" in sections:
        for case in jacobian_cases():
            plan.append(_Measurement(["jacobian"], case, "x f",
                                     [_Entry(t, m, "jacobian") for t in tools for m in t.modes]))
    return plan


def _notes(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _tool_note(tool: Tool, case: Case) -> str:
    if tool.name == "jax" and case.meta.get("ops"):
        return "jit: the whole chain is one XLA computation, so this is its call cost / 1,000, not per-op cost"
    if tool.name == "torch" and case.meta.get("ops"):
        return "eager, on 0-d tensors"
    return tool.note


def run(quick: bool = False, tools: Sequence[str | Tool] | None = None,
        progress: Callable[[str], Any] | None = None, *,
        sections: Sequence[str] | None = None, budget: float | None = None,
        max_call: float | None = None, tuned: bool = True) -> list[dict[str, Any]]:
    """Run the AD benchmark; return one JSON-able row per (section, case, tool, mode).

    Args:
        quick: shorter budgets and fewer sizes in the scaling section.
        tools: names from :data:`~diffkit.bench.peers.TOOLS`, or the tools
            themselves (:func:`~diffkit.bench.peers.available_tools`); default
            all. A tool that is not installed gets rows with ``seconds=None``
            and the reason in ``note``.
        progress: called with a short message (``"ad 7/9: jacobian: (1, 1000)"``)
            before each measurement.
        sections: a subset of :data:`SECTIONS` (default: all).
        budget: seconds of timing per timed function (default 0.2 quick, 0.5);
            the functions of one case share their rounds, so a case with
            k functions runs about k * budget (at least 7 rounds).
        max_call: a tool whose single call takes longer than this is not
            timed on that case (default 1 s quick, 3 s), and says so.
        tuned: measure everything again in a child process with glibc's malloc
            told to keep freed memory (the ``tuned_*`` keys; ``None`` when
            ``False``). ``progress`` then hears the child's measurements too,
            marked ``(tuned allocator)``.

    Each row has the keys :data:`ROW_KEYS`: ``section``, ``case``, ``tool``,
    ``mode`` (``"reverse"``, ``"forward"`` or ``"numeric"``), ``n``
    (number of inputs differentiated), ``f_seconds`` (median of the plain
    NumPy f, timed in the same rounds), ``seconds`` (median of the
    derivative), ``ratio`` (``seconds / f_seconds``; for unit ``"us/op"``
    microseconds per operation instead), ``spread`` (interquartile range /
    median of ``seconds``), ``repeats`` (samples; a fast function's sample is
    the mean of a block of calls), ``setup_seconds`` (building the
    callable and its first call: JAX's and the compiled backend's trace and
    compile), ``tuned_f_seconds``, ``tuned_seconds``, ``tuned_ratio``,
    ``tuned_spread`` (the same, measured in the child process with the tuned
    allocator), ``target`` (a bound on ``ratio``, the default process's figure,
    or ``None``), ``unit`` (``"x f"`` or ``"us/op"``) and ``note``. A derivative not measured has ``seconds``, ``ratio``,
    ``spread`` and ``repeats`` ``None`` and says why in ``note``.
    """
    sections = list(SECTIONS if sections is None else sections)
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        raise InvalidArgument(f"AD benchmark: unknown section(s) {bad}; choose from {', '.join(SECTIONS)}")
    chosen = [t if isinstance(t, Tool) else get_tool(t) for t in (TOOLS if tools is None else tools)]
    budget = (0.2 if quick else 0.5) if budget is None else budget
    max_call = (1.0 if quick else 3.0) if max_call is None else max_call
    plan = _plan(quick, chosen, sections)
    by_section: dict[str, list[dict[str, Any]]] = {s: [] for s in sections}
    for i, m in enumerate(plan):
        if progress is not None:
            progress(f"ad {i + 1}/{len(plan)}: {' / '.join(m.sections)}: {m.case.name}")
        rows = _measure(m, budget, max_call)
        for s in m.sections:
            for r in rows:
                by_section[s].append(dict(r, section=s, target=_target(s, r["case"], r["tool"], r["mode"])))
    rows = [r for s in sections for r in by_section[s]]
    if tuned:
        _add_tuned(rows, quick, [t.name for t in chosen], sections, budget, max_call, progress)
    return rows


def _sizes() -> dict[str, Any]:
    return {"CHEAP_SIZES": list(CHEAP_SIZES), "SCALING_SIZES": list(SCALING_SIZES),
            "SCALING_SIZES_QUICK": list(SCALING_SIZES_QUICK)}


def _add_tuned(rows: list[dict[str, Any]], quick: bool, tools: list[str], sections: list[str], budget: float,
               max_call: float, progress: Callable[[str], Any] | None) -> None:
    """The ``tuned_*`` keys of ``rows``: the same run in a child process whose glibc malloc
    keeps freed memory (it reads the thresholds at start, hence the child)."""
    import os
    import tempfile

    spec = {"quick": quick, "tools": tools, "sections": sections, "budget": budget, "max_call": max_call,
            "sizes": _sizes()}
    fd, path = tempfile.mkstemp(prefix="diffkit-bench-", suffix=".json")
    os.close(fd)
    spec["out"] = path
    problem = None
    proc = None
    try:
        proc = subprocess.Popen([sys.executable, "-m", "diffkit.bench.ad"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=tuned_environ(), text=True)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(spec))
        proc.stdin.close()
        for line in proc.stdout:  # the child's progress, as it goes
            if progress is not None and line.strip():
                progress(f"{line.strip()} (tuned allocator)")
        err = proc.stderr.read() if proc.stderr is not None else ""
        if proc.wait() != 0:
            problem = f"the tuned-allocator process failed: {err.strip().splitlines()[-1:] or proc.returncode}"
        else:
            with open(path, encoding="utf-8") as fh:
                child = json.load(fh)
    except OSError as e:
        problem = f"the tuned-allocator process could not run: {e}"
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            proc.wait()
        try:
            os.unlink(path)
        except OSError:
            pass
    if problem is not None:
        for r in rows:
            r["note"] = _notes(r["note"], problem)
        return
    found = {(r["section"], r["case"], r["tool"], r["mode"]): r for r in child}
    for r in rows:
        c = found.get((r["section"], r["case"], r["tool"], r["mode"]))
        if c is None:
            continue
        r.update(tuned_f_seconds=c["f_seconds"], tuned_seconds=c["seconds"], tuned_ratio=c["ratio"],
                 tuned_spread=c["spread"])
        if c["seconds"] is None and r["seconds"] is not None and c.get("note"):
            r["note"] = _notes(r["note"], f"tuned allocator: {c['note']}")


def _child() -> None:  # pragma: no cover - runs in the tuned-allocator child process
    """``python -m diffkit.bench.ad``: a spec (JSON) on stdin, progress lines on stdout,
    the rows (JSON) written to the spec's ``out`` file."""
    import warnings

    warnings.simplefilter("ignore")
    spec = json.loads(sys.stdin.read())
    g = globals()
    for k, v in spec["sizes"].items():
        g[k] = tuple(v)

    def say(msg: str) -> None:
        print(msg, flush=True)

    rows = run(spec["quick"], spec["tools"], say, sections=spec["sections"], budget=spec["budget"],
               max_call=spec["max_call"], tuned=False)
    with open(spec["out"], "w", encoding="utf-8") as fh:
        json.dump(rows, fh, default=float)


def _measure(m: _Measurement, budget: float, max_call: float) -> list[dict[str, Any]]:
    case = m.case
    ops = case.meta.get("ops")
    rows: list[dict[str, Any]] = []
    timed: list[tuple[dict[str, Any], Callable[[], Any]]] = []
    for e in m.entries:
        t = e.tool
        row = {k: None for k in ROW_KEYS}
        name = case.name if e.kind == "grad" else f"{case.name} {e.mode}"
        row.update(case=name, tool=t.name, mode=e.mode, n=case.n_inputs, unit=m.unit,
                   note=_tool_note(t, case))
        rows.append(row)
        if not t.available:
            row["note"] = f"not available: {t.reason}"
            continue
        if e.kind == "grad" and t.max_grad_inputs is not None and case.n_inputs > t.max_grad_inputs:
            row["note"] = (f"skipped: forward mode makes one pass per input ({case.n_inputs:,} inputs; "
                           f"limit {t.max_grad_inputs:,})")
            continue
        try:
            t0 = time.perf_counter()
            fn = t.grad(case) if e.kind == "grad" else t.jacobian(case, e.mode)
            fn()
            row["setup_seconds"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            fn()
            one = time.perf_counter() - t0
        except Exception as exc:  # a tool that cannot do this case says so in its row
            row["note"] = _notes(row["note"], f"error: {type(exc).__name__}: {exc}"[:300])
            continue
        if one > max_call:
            row["note"] = _notes(row["note"], f"skipped: one call took {one:.2f} s (limit {max_call:g} s)")
            continue
        timed.append((row, fn))
    if not timed:
        return rows
    gc.collect()
    f = case.numpy_f()
    stats = timeit([f] + [fn for _, fn in timed], budget=budget * (1 + len(timed)))
    fstat = stats[0]
    for (row, _), st in zip(timed, stats[1:]):
        row.update(f_seconds=fstat.median, seconds=st.median, spread=st.spread, repeats=st.n)
        row["ratio"] = st.median / ops * 1e6 if ops else st.median / fstat.median
    for row in rows:
        row["f_seconds"] = fstat.median
    return rows


def missed(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows whose figure misses its target (or that have a target and were not measured)."""
    return [r for r in rows if r["target"] is not None and (r["ratio"] is None or r["ratio"] > r["target"])]


def _fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 1.0:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def _ratio_fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}" if x < 100 else f"{x:.0f}"


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as plain-text tables, one per section."""
    out: list[str] = []
    header = (f"{'case':22s} {'tool':16s} {'mode':8s} {'f':>9s} {'derivative':>10s} {'ratio':>9s} "
              f"{'iqr%':>5s} {'reps':>5s} {'setup':>9s} {'tuned':>9s} {'target':>6s}")
    section = None
    for r in rows:
        if r["section"] != section:
            section = r["section"]
            unit = "us per op" if r["unit"] == "us/op" else "derivative time / NumPy f time"
            out += ["", f"== {section} (ratio: {unit}; default allocator, then tuned: malloc keeps freed memory)",
                    header]
        ratio = _ratio_fmt(r["ratio"])
        tuned = _ratio_fmt(r.get("tuned_ratio"))
        spread = "-" if r["spread"] is None else f"{100 * r['spread']:.0f}"
        target = "" if r["target"] is None else f"{r['target']:g}"
        verdict = "" if r["target"] is None or r["ratio"] is None else (
            " ok" if r["ratio"] <= r["target"] else " MISSED")
        line = (f"{r['case']:22s} {r['tool']:16s} {r['mode'] or '-':8s} {_fmt_time(r['f_seconds']):>9s} "
                f"{_fmt_time(r['seconds']):>10s} {ratio:>9s} {spread:>5s} {r['repeats'] or '-':>5} "
                f"{_fmt_time(r['setup_seconds']):>9s} {tuned:>9s} {target:>6s}{verdict}")
        if r["note"]:
            line += f"  ({r['note']})"
        out.append(line)
    return "\n".join(out).lstrip("\n")


if __name__ == "__main__":  # pragma: no cover
    _child()
