"""Expression swell: Baydin et al. (2018), Table 1, on the logistic map.

The logistic map l_1 = x, l_{n+1} = 4 l_n (1 - l_n) shows why textbook
symbolic differentiation swells: the tree of d l_n / dx grows exponentially,
while its DAG — what automatic differentiation, and diffkit's DAG-aware
symbolic derivative, compute — grows linearly. For n = 1..N this module
measures the function, SymPy's naive derivative, its expanded form, its
common-subexpression-eliminated form, and diffkit's DAG-aware derivative.

Each step runs in a child process under a time limit (``sympy.expand`` takes
about a minute at n = 9 and four at n = 10): a step past the limit is
reported as ``"timeout"`` and the table always completes.

Example:
    >>> from diffkit.swell import swell_table
    >>> [row["naive_ops"] for row in swell_table(4, timeout=30)]
    [0, 2, 21, 82]
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from typing import Any, Callable

import numpy as np
import sympy

from .errors import InvalidArgument

X0 = 0.3
"""The point at which derivatives are evaluated for comparison."""

STEPS = ("function", "naive", "expanded", "cse", "dag", "ad")


def logistic(x: Any, n: int) -> Any:
    """l_n of the logistic map, written as plain code (works on numbers and traced values)."""
    for _ in range(n - 1):
        x = 4 * x * (1 - x)
    return x


def tree_nodes(expr: Any) -> int:
    """Nodes of the expression *tree* (shared subexpressions counted each time)."""
    return sum(1 for _ in sympy.preorder_traversal(expr))


def dag_nodes(expr: Any) -> int:
    """Distinct subexpressions: the size of the expression as a DAG."""
    seen: set[Any] = set()
    stack = [expr]
    while stack:
        e = stack.pop()
        if e in seen:
            continue
        seen.add(e)
        stack.extend(e.args)
    return len(seen)


def cse_ops(exprs: list[Any]) -> tuple[int, int]:
    """count_ops of the cse form (replacements plus reduced expressions), and the replacements."""
    replacements, reduced = sympy.cse(exprs)
    ops = sum(sympy.count_ops(r) for _, r in replacements) + sum(sympy.count_ops(r) for r in reduced)
    return int(ops), len(replacements)


def _step(step: str, n: int) -> dict[str, Any]:
    """One measurement; runs in a child process."""
    x = sympy.Symbol("x", real=True)
    t0 = time.perf_counter()
    ln = logistic(x, n)
    if step == "function":
        return {"function_ops": int(sympy.count_ops(ln)), "function_nodes": tree_nodes(ln),
                "function_time": time.perf_counter() - t0}
    if step == "ad":
        from . import operators as dk

        t0 = time.perf_counter()
        value = float(dk.derivative(lambda v: logistic(v, n))(X0))
        return {"ad_value": value, "ad_time": time.perf_counter() - t0}
    if step == "dag":
        from .backends.symbolic import derivative_exprs, trace_args

        t0 = time.perf_counter()
        traced = trace_args(lambda x: logistic(x, n), [0.0], 10)
        _, (d,) = derivative_exprs(lambda x: logistic(x, n), traced, "grad", (0,))
        elapsed = time.perf_counter() - t0
        ops, _ = cse_ops([d])
        value = float(d.subs(traced.symbols[0], X0)) if dag_nodes(d) < 5000 else float("nan")
        return {"dag_nodes": dag_nodes(d), "dag_cse_ops": ops, "dag_time": elapsed, "dag_value": value}
    t0 = time.perf_counter()
    d = sympy.diff(ln, x)
    naive_time = time.perf_counter() - t0
    if step == "naive":
        return {"naive_ops": int(sympy.count_ops(d)), "naive_nodes": tree_nodes(d), "naive_time": naive_time,
                "naive_value": float(d.subs(x, X0))}
    if step == "expanded":
        t0 = time.perf_counter()
        e = sympy.expand(d)
        return {"expanded_ops": int(sympy.count_ops(e)), "expanded_time": time.perf_counter() - t0}
    if step == "cse":
        t0 = time.perf_counter()
        ops, k = cse_ops([d])
        return {"cse_ops": ops, "cse_replacements": k, "cse_time": time.perf_counter() - t0}
    raise InvalidArgument(f"swell: unknown step {step!r}; choose one of {', '.join(STEPS)}")


def _child(step: str, n: int, conn: Any) -> None:
    try:
        conn.send(("ok", _step(step, n)))
    except Exception as e:  # reported as the row's error, the table goes on
        conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        conn.close()


def run_step(step: str, n: int, timeout: float) -> dict[str, Any]:
    """``_step`` in a child process; ``{"<step>_status": "timeout"}`` past ``timeout`` seconds."""
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(step, n, child), daemon=True)
    proc.start()
    child.close()
    try:
        if parent.poll(timeout):
            status, payload = parent.recv()
        else:
            status, payload = "timeout", None
    except EOFError:
        status, payload = "error", f"the worker died (exit code {proc.exitcode})"
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        parent.close()
    if status == "ok":
        return {f"{step}_status": "ok", **payload}
    return {f"{step}_status": status, **({f"{step}_error": payload} if payload else {})}


def swell_table(n_max: int = 10, timeout: float = 10.0, steps: tuple[str, ...] = STEPS,
                progress: Callable[[int, str], None] | None = None) -> list[dict[str, Any]]:
    """One row per n = 1..n_max: sizes and times of each step (see the module docstring).

    Args:
        n_max: the largest n.
        timeout: seconds allowed to each step of each row.
        steps: which measurements to make.
        progress: called with (n, step) before each step.
    """
    rows = []
    for n in range(1, n_max + 1):
        row: dict[str, Any] = {"n": n}
        for step in steps:
            if progress:
                progress(n, step)
            row.update(run_step(step, n, timeout))
        rows.append(row)
    return rows


COLUMNS = [
    ("n", "n"), ("function_ops", "l_n ops"), ("naive_ops", "d/dx naive ops"),
    ("naive_nodes", "naive nodes"), ("naive_time", "naive s"), ("expanded_ops", "expanded ops"),
    ("expanded_time", "expand s"), ("cse_ops", "cse ops"), ("cse_time", "cse s"),
    ("dag_nodes", "DAG nodes"), ("dag_cse_ops", "DAG cse ops"), ("dag_time", "DAG s"),
    ("naive_value", f"naive d/dx at {X0}"), ("ad_value", f"AD d/dx at {X0}"),
]


def cell(row: dict[str, Any], key: str) -> str:
    """A table cell: the value, or the step's status (``timeout``, ``error``)."""
    step = key.split("_")[0]
    status = row.get(f"{step}_status", "ok")
    if key != "n" and status != "ok":
        return status
    v = row.get(key)
    if v is None:
        return ""
    if key.endswith("_time"):
        return f"{v:.3g}"
    if isinstance(v, float):
        return f"{v:.15g}"
    return str(v)


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """The table as GitHub Markdown."""
    head = "| " + " | ".join(h for _, h in COLUMNS) + " |"
    sep = "|" + "---|" * len(COLUMNS)
    body = ["| " + " | ".join(cell(r, k) for k, _ in COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def to_json(rows: list[dict[str, Any]]) -> str:
    """The rows as JSON (``{"x0": ..., "rows": [...]}``)."""
    clean = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in rows]
    return json.dumps({"x0": X0, "rows": clean}, indent=1)
