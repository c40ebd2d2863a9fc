"""The ``diffkit`` command line: parsing and printing only.

Commands so far: ``check`` (the derivative of an expression on every
backend, side by side), ``diff`` (a symbolic derivative), ``swell`` (the
expression-swell table) and ``backends``. Typer and rich are imported here,
never by ``import diffkit``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

import diffkit as dk

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Differentiate one function with symbolic, numeric and automatic differentiation.")
console = Console()

OPS = ("grad", "jacobian", "hessian", "derivative")


def parse_point(assignments: list[str], variables: tuple[str, ...]) -> list[Any]:
    """``["x=1", "y=2"]`` -> ``[1.0, 2.0]`` in the function's variable order.

    Values are numbers or comma-separated lists of numbers (a vector);
    they are read with ``float``, never evaluated.
    """
    values: dict[str, Any] = {}
    for item in assignments:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--at")
        try:
            parts = [float(p) for p in text.split(",")]
        except ValueError:
            raise typer.BadParameter(f"{name}: {text!r} is not a number or a comma-separated list "
                                     "of numbers", param_hint="--at") from None
        values[name] = parts[0] if len(parts) == 1 and "," not in text else np.array(parts)
    unknown = set(values) - set(variables)
    if unknown:
        raise typer.BadParameter(f"unknown variable(s) {', '.join(sorted(unknown))}; the expression's "
                                 f"variables are {', '.join(variables)}", param_hint="--at")
    missing = [v for v in variables if v not in values]
    if missing:
        raise typer.BadParameter(f"no value for {', '.join(missing)}", param_hint="--at")
    return [values[v] for v in variables]


def _run(F: dk.Function, op: str, point: list[Any], backend: str) -> Any:
    argnums = tuple(range(len(point)))
    if op == "grad":
        return dk.grad(F, argnums=argnums, backend=backend)(*point)
    if op == "jacobian":
        return dk.jacobian(F, argnums=argnums, backend=backend)(*point)
    if op == "hessian":
        return dk.hessian(F, argnums=argnums, backend=backend)(*point)
    if len(point) != 1:
        raise typer.BadParameter("derivative takes a function of one variable", param_hint="--op")
    return dk.derivative(F, backend=backend)(point[0])


def _flat(value: Any) -> np.ndarray:
    if isinstance(value, tuple):
        return np.concatenate([_flat(v) for v in value]) if value else np.zeros(0)
    return np.ravel(np.asarray(value, dtype=float))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def check(
    ctx: typer.Context,
    expression: str = typer.Argument(..., help='A safe expression, e.g. "sin(x)*exp(y)".'),
    at: list[str] = typer.Option([], "--at", help="The point: --at x=1 y=2 (vectors: v=1,2,3)."),
    op: str = typer.Option("grad", "--op", help=f"One of {', '.join(OPS)}."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """The derivative of EXPRESSION at a point, on every backend, side by side."""
    if op not in OPS:
        raise typer.BadParameter(f"{op!r}; choose one of {', '.join(OPS)}", param_hint="--op")
    if fmt not in ("table", "json"):
        raise typer.BadParameter(f"{fmt!r}; choose table or json", param_hint="--format")
    try:
        F = dk.Function.parse(expression)
    except dk.ParseError as e:
        raise typer.BadParameter(str(e), param_hint="EXPRESSION") from None
    point = parse_point(list(at) + list(ctx.args), F.variables)
    rows = []
    for backend in dk.backends():
        try:
            value = _run(F, op, point, backend)
            rows.append({"backend": backend, "value": _flat(value).tolist(), "error": None})
        except dk.DiffkitError as e:
            rows.append({"backend": backend, "value": None, "error": str(e)})
    ok = [r for r in rows if r["value"] is not None]
    spread = 0.0
    if len(ok) > 1:
        ref = np.array(ok[0]["value"])
        spread = max(float(np.max(np.abs(np.array(r["value"]) - ref), initial=0.0)) for r in ok)
    if fmt == "json":
        print(json.dumps({"expression": expression, "op": op, "variables": list(F.variables),
                          "point": [_flat(p).tolist() for p in point], "rows": rows,
                          "max_abs_difference": spread}, indent=1))
    else:
        names = ", ".join(f"{v}={p}" for v, p in zip(F.variables, point))
        table = Table(title=f"{op} of {expression} at {names}")
        table.add_column("backend")
        table.add_column("value")
        for r in rows:
            shown = ("[red]" + r["error"] + "[/red]") if r["error"] else \
                ", ".join(f"{v:.17g}" for v in r["value"])
            table.add_row(r["backend"], shown)
        console.print(table)
        console.print(f"largest difference between backends: {spread:.3g}")
    if len(ok) != len(rows):
        raise typer.Exit(1)


@app.command("diff")
def diff_command(
    expression: str = typer.Argument(..., help='A safe expression, e.g. "sin(x)*exp(y)".'),
    wrt: Optional[str] = typer.Option(None, "--wrt", help="The variable (needed with several)."),
    order: int = typer.Option(1, "--order", min=1, max=20, help="How many times to differentiate."),
    simplify: bool = typer.Option(False, "--simplify", help="Simplify the result (slow)."),
    method: str = typer.Option("dag", "--method", help="dag (shared subexpressions) or naive."),
) -> None:
    """The derivative of EXPRESSION as a SymPy expression."""
    try:
        F = dk.Function.parse(expression)
    except dk.ParseError as e:
        raise typer.BadParameter(str(e), param_hint="EXPRESSION") from None
    if method not in ("dag", "naive"):
        raise typer.BadParameter(f"{method!r}; choose dag or naive", param_hint="--method")
    try:
        print(dk.diff(F, wrt, order=order, simplify=simplify, method=method))
    except dk.ShapeError as e:
        raise typer.BadParameter(str(e), param_hint="--wrt") from None


@app.command()
def swell(
    n: int = typer.Option(10, "--n", min=1, max=30, help="Largest n of the logistic map."),
    fmt: str = typer.Option("table", "--format", help="table, markdown or json."),
    timeout: float = typer.Option(10.0, "--timeout", min=0.1, help="Seconds allowed to each step."),
) -> None:
    """Expression swell on the logistic map (Baydin et al. 2018, Table 1)."""
    from rich.progress import Progress

    from .swell import COLUMNS, STEPS, cell, swell_table, to_json, to_markdown

    if fmt not in ("table", "markdown", "json"):
        raise typer.BadParameter(f"{fmt!r}; choose table, markdown or json", param_hint="--format")
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("swell", total=n * len(STEPS))

        def progress(k: int, step: str) -> None:
            bar.update(task, advance=1, description=f"n={k}: {step}")

        rows = swell_table(n, timeout=timeout, progress=progress)
    if fmt == "json":
        print(to_json(rows))
    elif fmt == "markdown":
        print(to_markdown(rows))
    else:
        table = Table(title=f"Expression swell, logistic map (each step limited to {timeout:g} s)")
        for _, head in COLUMNS:
            table.add_column(head, justify="right")
        for r in rows:
            table.add_row(*[cell(r, k) for k, _ in COLUMNS])
        console.print(table)


@app.command("backends")
def list_backends() -> None:
    """List the available backends."""
    for name in dk.backends():
        print(name)


def main() -> None:
    """Entry point of the ``diffkit`` script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
