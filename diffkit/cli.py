"""The ``diffkit`` command line: parsing and printing only.

Commands: ``check`` (cross-check one derivative), ``suite`` (the main job: a
cross-validation report over a suite), ``diff`` (a symbolic derivative),
``swell`` (the expression-swell table), ``bench``, ``graph`` (the computational graph)
and ``backends``. Typer is imported here, rich when a command prints (and by
typer's ``--help``), neither by ``import diffkit``; the commands import the
parts of diffkit they use when they run, so ``diffkit --help`` imports
neither SymPy nor mpmath.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any, Optional

import numpy as np
import typer

import diffkit as dk

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Differentiate one function with symbolic, numeric and automatic differentiation.")


def _rich_console(**kwargs: Any) -> Any:
    """A rich ``Console``: rich is imported when a command first prints."""
    from rich.console import Console as RichConsole

    return RichConsole(**kwargs)


def _rich_table(*args: Any, **kwargs: Any) -> Any:
    from rich.table import Table as RichTable

    return RichTable(*args, **kwargs)


_CONSOLE: list[Any] = []


def _console() -> Any:
    """The standard-output console, made when a command first prints."""
    if not _CONSOLE:
        # Wide enough for the report tables when the output is a file or a pipe (rich assumes 80).
        _CONSOLE.append(_rich_console(width=None if sys.stdout.isatty() else 160))
    return _CONSOLE[0]



DEFAULT_TIMEOUT = 60.0
"""Seconds ``check``, ``diff`` and ``graph`` allow by default (``--timeout``)."""

MAX_TIMEOUT = 86400.0
"""The largest ``--timeout``: a day."""


def parse_point(assignments: list[str], variables: tuple[str, ...]) -> list[Any]:
    """``["x=1", "y=2"]`` -> ``[1.0, 2.0]`` in the function's variable order.

    Values are finite numbers, or comma-separated lists of them: ``v=1,2,3`` is
    a 1-D array (a vector argument). They are read with ``float``, never
    evaluated. A variable given twice, an empty value, NaN or infinity is bad
    usage (exit 2), as are unknown and missing variables.
    """
    values: dict[str, Any] = {}
    for item in assignments:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--at")
        if name in values:
            raise typer.BadParameter(f"{name} given twice ({name}={_shown(values[name])} and {item.strip()}); "
                                     "give each variable once (a vector as v=1,2,3)", param_hint="--at")
        pieces = text.split(",")
        try:
            parts = [float(p) for p in pieces]
        except ValueError:
            bad = next(p for p in pieces if not _is_float(p))
            what = "an empty value" if not bad.strip() else f"{bad.strip()!r} is not a number"
            raise typer.BadParameter(f"{name}={text}: {what}; give a number or a comma-separated list of "
                                     "numbers (v=1,2,3)", param_hint="--at") from None
        bad_values = [p for p, v in zip(pieces, parts) if not np.isfinite(v)]
        if bad_values:
            raise typer.BadParameter(f"{name}={text}: {bad_values[0].strip()!r} is not a finite number "
                                     "(NaN and infinity are not points)", param_hint="--at")
        values[name] = np.float64(parts[0]) if len(parts) == 1 else np.array(parts, dtype=np.float64)
    unknown = set(values) - set(variables)
    if unknown:
        known = ", ".join(variables) if variables else "none (it is a constant)"
        raise typer.BadParameter(f"unknown variable(s) {', '.join(sorted(unknown))}; the expression's "
                                 f"variables: {known}", param_hint="--at")
    missing = [v for v in variables if v not in values]
    if missing:
        raise typer.BadParameter(f"no value for {', '.join(missing)}", param_hint="--at")
    return [values[v] for v in variables]


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _shown(value: Any) -> str:
    return ",".join(f"{v:g}" for v in np.ravel(value))


def _check_timeout(timeout: float) -> float:
    """``--timeout`` as seconds: more than 0 and at most a day (typer lets NaN and inf through ``min=``)."""
    if not (np.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
        raise typer.BadParameter(f"{timeout!r}: seconds, more than 0 and at most {MAX_TIMEOUT:g}",
                                 param_hint="--timeout")
    return float(timeout)


def _stop(message: str) -> None:
    """Bad usage or a limit hit: the message on stderr, exit status 2."""
    _rich_console(stderr=True).print(f"Error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _stop_on_limit(e: BaseException, command: str) -> None:
    """A TimeLimitError or SizeLimitError: which limit, and how to raise it."""
    if isinstance(e, dk.TimeLimitError):
        _stop(f"diffkit {command}: no result within the time limit of {e.limit:g} s; raise it with "
              "--timeout SECONDS")
    _stop(f"diffkit {command}: {e}")


def _parse(expression: str) -> Any:
    try:
        return dk.Function.parse(expression)
    except dk.ParseError as e:
        raise typer.BadParameter(str(e), param_hint="EXPRESSION") from None


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def check(
    ctx: typer.Context,
    expression: str = typer.Argument(..., help='A safe expression, e.g. "sin(x)*exp(y)".'),
    at: list[str] = typer.Option([], "--at", help="The point: --at x=1 y=2 (vectors: v=1,2,3)."),
    op: str = typer.Option("grad", "--op", help="grad, jacobian, hessian, derivative, jvp or vjp."),
    fmt: str = typer.Option("table", "--format", help="table, markdown, json or html."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Also write the report here (.md, .json, .html)."),
    timeout: float = typer.Option(DEFAULT_TIMEOUT, "--timeout",
                                  help="Seconds allowed (> 0); a slow reference or backend gets its share, "
                                  "past the whole limit exit 2."),
    candidate: list[str] = typer.Option(
        [], "--candidate", help="Also judge your own derivative: [NAME=]module:function, a Python callable "
        "taking the point's values (in the expression's variable order) and returning what --op returns "
        "(for grad of several variables a tuple, one per variable). Imported from the current folder or "
        "sys.path: it is code and runs with your rights. Repeatable."),
) -> None:
    """Cross-check the derivative of EXPRESSION on every backend against a 50-digit reference.

    Exits 0 when every backend (and every --candidate) agrees (a difference
    explained as a convention at a kink counts as agreement), 1 when one
    disagrees, 2 on bad usage (an operator that does not fit the function,
    e.g. grad of a vector output, or a candidate that cannot be imported) or
    when a time or size limit is hit.
    """
    from .harness.crosscheck import OPS as CHECK_OPS

    if op not in CHECK_OPS:
        raise typer.BadParameter(f"{op!r}; choose one of {', '.join(CHECK_OPS)}", param_hint="--op")
    if fmt not in ("table", "markdown", "json", "html"):
        raise typer.BadParameter(f"{fmt!r}; choose table, markdown, json or html", param_hint="--format")
    timeout = _check_timeout(timeout)
    F = _parse(expression)
    if not F.variables:
        raise typer.BadParameter("the expression has no variables: there is nothing to differentiate",
                                 param_hint="EXPRESSION")
    point = parse_point(list(at) + list(ctx.args), F.variables)
    argnums = tuple(range(len(point))) if len(point) != 1 else 0
    candidates = _candidates(candidate)
    try:
        with _working(f"cross-checking {op} of {expression[:60]} (limit {timeout:g} s)"):
            report = dk.crosscheck(F, point, op, argnums=argnums, timeout=timeout, candidates=candidates or None)
    except (dk.TimeLimitError, dk.SizeLimitError) as e:
        _stop_on_limit(e, "check")
    except dk.DiffkitError as e:  # a mistake in the call (grad of a vector output, ...), not a disagreement
        _stop(str(e))
    if fmt == "table":
        _print_report_table(report)
    else:
        print({"markdown": report.to_markdown, "json": report.to_json, "html": report.to_html}[fmt]())
    if out:
        kind = out.rsplit(".", 1)[-1]
        render = {"md": report.to_markdown, "json": report.to_json, "html": report.to_html}.get(kind)
        try:
            _write(out, render() if render else str(report))
        except OSError as e:
            _stop(f"cannot write the report to {out}: {e}")
    raise typer.Exit(0 if report.ok else 1)


def _working(what: str) -> Any:
    """A spinner with the elapsed time on stderr while one long call runs (a reference in
    50 digits can take seconds); nothing at all when stderr is not a terminal."""
    from rich.markup import escape
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    err = _rich_console(stderr=True)
    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err,
                   transient=True, disable=not err.is_terminal)
    bar.add_task(escape(what), total=None)
    return bar


def _candidates(refs: list[str]) -> dict[str, Any]:
    """``[NAME=]module:function`` references imported (the current folder first on the path)."""
    import importlib

    from .harness.cases import is_callable_ref

    found: dict[str, Any] = {}
    for ref in refs:
        name, sep, target = ref.partition("=")
        if not sep:
            name, target = "", ref
        if not is_callable_ref(target.strip()):
            raise typer.BadParameter(f"{ref!r}: expected [NAME=]module:function, e.g. mygrads:grad_f",
                                     param_hint="--candidate")
        module, _, attr = target.strip().partition(":")
        name = name.strip() or attr
        if name in found or name in dk.backends():
            raise typer.BadParameter(f"{ref!r}: the name {name!r} is taken (a backend or another candidate); "
                                     "give one with NAME=module:function", param_hint="--candidate")
        sys.path.insert(0, os.getcwd())
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as e:  # noqa: BLE001 - the user's module: any failure is theirs, reported
            raise typer.BadParameter(f"{ref!r}: cannot import it ({type(e).__name__}: {e})",
                                     param_hint="--candidate") from None
        finally:
            sys.path.remove(os.getcwd())
        if not callable(obj):
            raise typer.BadParameter(f"{ref!r} is a {type(obj).__name__}, not a function", param_hint="--candidate")
        found[name] = obj
    return found


def _print_report_table(report: Any) -> None:
    from .harness.report import HEADERS, _cells, _footer

    table = _rich_table(title=report.title)
    for h in HEADERS:
        table.add_column(h)
    style = {"ok": "green", "fail": "red", "error": "red", "convention": "yellow", "unsupported": "yellow"}
    for r in report.rows:
        table.add_row(*_cells(r), style=style.get(r.verdict))
    _console().print(table)
    for line in _footer(report):
        _console().print(line, markup=False, highlight=False)


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


@app.command()
def suite(
    name: str = typer.Argument("standard", help="A built-in suite (standard, seeds, swell) or a .toml file."),
    jobs: int = typer.Option(2, "--jobs", min=1, max=1024, help="Cases run in parallel processes (1 to 1024)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Write a report: .html, .md or .json."),
    results: Optional[str] = typer.Option(
        None, "--results", help="Write each case's record to this JSONL file as the case ends. The file must be "
        "new or empty; an existing one is continued only with --resume and never overwritten (exit 2 "
        "otherwise). Locked while a run writes it: a second run on it exits 2."),
    resume: bool = typer.Option(False, "--resume", help="Continue --results: run only the cases without a stored "
                                "record made for the very same case (function, point, op, tolerances, "
                                "source file, diffkit version); says how many were run again."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds allowed to each case (> 0, at most 86400)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="A dask.distributed scheduler address."),
    list_only: bool = typer.Option(False, "--list", help="Print the case ids, one a line, and run nothing "
                                   "(nothing the suite names is imported)."),
    allow_import: bool = typer.Option(
        True, "--allow-import/--no-import", help="Whether a suite file's module:function cases may import and run "
        "their Python code (default: allowed, as for a script you run). --no-import refuses such a file with "
        "exit 2 before anything runs: use it for suite files you did not write (expressions only)."),
) -> None:
    """The main job: a cross-validation report over a suite of functions.

    A TOML suite that names Python callables (f = "module:function") is code:
    it runs with your rights, like a script, and is imported only inside each
    case's own process (never for --list). Expression strings are only read by
    the safe parser. Run files you did not write with --no-import.

    Exits 0 when every case agrees (a difference explained as a convention at a
    kink is agreement), 1 when a case fails, 2 on bad usage (a wrong suite file
    or option, a results file that is in use or already full), 3 when the run
    ended but its report could not be rendered (the records are kept and the
    message says where).
    """
    import math

    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.text import Text

    from .harness.report import _case_line, suite_summary_lines, suite_to_html, suite_to_json, suite_to_markdown
    from .harness.runner import refused_imports, run_suite
    from .harness.suites import suite as load_suite

    err = _rich_console(stderr=True)
    try:
        cases = load_suite(name)
    except (dk.DiffkitError, OSError) as e:
        raise typer.BadParameter(str(e), param_hint="NAME") from None
    if not allow_import:
        refused = refused_imports(cases)
        if refused:
            shown = ", ".join(refused[:5]) + (f" and {len(refused) - 5} more" if len(refused) > 5 else "")
            _usage_error(err, f"{name}: --no-import, and {len(refused)} cases name Python code (module:function), "
                              f"which would be imported and run: {shown}")
    if list_only:
        for c in cases:
            print(c.id)
        return
    if not (math.isfinite(timeout) and 0 < timeout <= 86400):
        raise typer.BadParameter(f"{timeout!r}: seconds, more than 0 and at most 86400", param_hint="--timeout")
    if resume and not results:
        raise typer.BadParameter("--resume needs --results FILE", param_hint="--resume")
    if out and out.rsplit(".", 1)[-1] not in ("html", "md", "json"):
        raise typer.BadParameter(f"{out!r}: the report is .html, .md or .json", param_hint="--out")
    for path, hint in ((out, "--out"), (results, "--results")):
        if path is not None:
            problem = _unwritable(path)
            if problem:
                raise typer.BadParameter(f"{path!r}: {problem}", param_hint=hint)
    if out and results and os.path.abspath(out) == os.path.abspath(results):
        raise typer.BadParameter("--out and --results are the same file", param_hint="--out")
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]

    def warn(message: str) -> None:
        err.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)

    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(escape(f"suite {name}"), total=len(cases))

        def progress(rec: dict[str, Any]) -> None:
            bar.update(task, advance=1, description=escape(f"{rec['id'][:40]}: {rec['verdict']}"))

        try:
            result = run_suite(cases, name=name, jobs=jobs, timeout=timeout, results=results, resume=resume,
                               scheduler=scheduler, progress=progress, allow_import=allow_import, warn=warn)
        except dk.DiffkitError as e:
            _usage_error(err, str(e))
        except OSError as e:
            _usage_error(err, f"the run stopped: {e}")
    failures: list[str] = []
    try:  # from here on the records exist: a rendering error must not lose them
        table = _rich_table(title=Text(f"suite {name}: cases that did not simply agree"))
        for h in ("case", "op", "verdict", "details", "s"):
            table.add_column(h)
        for rec in result.records:
            detail = _case_line(rec)
            if rec["verdict"] != "ok" or detail:
                elapsed = rec.get("elapsed", 0)
                table.add_row(Text(rec["id"]), Text(str((rec.get("case") or {}).get("op", ""))),
                              Text(rec["verdict"]), Text(str(detail)),
                              Text(f"{elapsed:.2f}" if isinstance(elapsed, (int, float)) else str(elapsed)),
                              style="yellow" if rec["verdict"] == "ok" else "red")
        if table.row_count:
            _console().print(table)
        for line in suite_summary_lines(result.summary()):
            _console().print(line, markup=False, highlight=False, soft_wrap=True)
    except Exception as e:
        failures.append(f"the summary: {type(e).__name__}: {e}")
    if out:
        kind = out.rsplit(".", 1)[-1]
        try:
            if kind == "html":
                text = suite_to_html(result, plots=_suite_plots(result))
            else:
                text = {"md": suite_to_markdown, "json": suite_to_json}[kind](result)
            _write_atomic(out, text)
            _console().print(f"report written to {out}", markup=False, highlight=False, soft_wrap=True)
        except Exception as e:
            failures.append(f"the report {out}: {type(e).__name__}: {e}")
    if failures:
        where = results or _save_records(result, out)
        for failure in failures:
            err.print(f"error: could not render {failure}", markup=False, highlight=False, soft_wrap=True)
        err.print(f"the {len(result.records)} records of the run are in {where}", markup=False, highlight=False,
                  soft_wrap=True)
        raise typer.Exit(3)
    raise typer.Exit(0 if result.ok else 1)


def _usage_error(err: Any, message: str) -> None:
    err.print(f"Error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _unwritable(path: str) -> str | None:
    """Why a file cannot be written at ``path`` (None when it can)."""
    if os.path.isdir(path):
        return "is a directory"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"its folder {folder} does not exist"
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        return "cannot be written (permission denied)"
    return None


def _write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file: an old file is replaced whole, never half."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".diffkit-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _save_records(result: Any, out: Optional[str]) -> str:
    """The run's records in a JSONL file of their own (a new file), for when its report cannot be rendered."""
    from .harness.results import dumps

    base = (out + ".records") if out else os.path.abspath("diffkit-suite-records")
    for k in range(1000):
        path = f"{base}{'' if k == 0 else f'-{k}'}.jsonl"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for rec in result.records:
                fh.write(dumps(rec) + "\n")
        return path
    raise OSError(f"no free file name for the records next to {base}")


def _suite_plots(result: Any) -> list[dict[str, str]]:
    """The suite's plots for the HTML report; none without matplotlib (and a note if drawing failed)."""
    try:
        from .plots import require_matplotlib, suite_plots

        require_matplotlib()
    except ImportError:
        return []  # the plot extra is not installed: the report goes without plots
    try:
        return suite_plots(result)
    except Exception as e:  # a plot must never cost the report of a long run
        _rich_console(stderr=True).print(f"the report's plots were left out: {type(e).__name__}: {e}", markup=False,
                                   highlight=False)
        return []


@app.command()
def bench(
    quick: bool = typer.Option(False, "--quick", help="Shorter budgets and fewer sizes (about 30 s; the default about 75 s)."),
    peers: bool = typer.Option(True, "--peers/--no-peers", help="Also time the installed peers."),
    section: list[str] = typer.Option([], "--section", help="ad, numeric or symbolic (repeatable); default all."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Write the run as JSON here."),
    markdown: Optional[str] = typer.Option(None, "--markdown", help="Write the docs page (benchmarks.md) here."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Draw gradient time against n to this file."),
) -> None:
    """diffkit against itself and its peers: gradient/f ratios, per-op overhead, Jacobians, accuracy, symbolic.

    Peers (autograd, JAX, PyTorch, numdifftools, scipy.differentiate) are timed
    when installed: pip install 'diffkit\\[peers]'. The AD section runs in this
    process with glibc's default allocator (as users run) and again in a child
    process with the malloc thresholds raised (freed memory kept), both shown,
    the default first; one BLAS thread (the command restarts itself to set it);
    medians of at least 7 repeats. The compiled backend's and JAX's first call
    (trace and compile) is reported as setup.
    """
    import json as _json
    import os
    import sys

    from .bench.timing import THREAD_ENV, TUNED_MALLOC, environment_ok

    if not environment_ok(malloc="default") and os.path.basename(sys.argv[0]).startswith("diffkit") \
            and not os.environ.get("DIFFKIT_BENCH_REEXEC"):
        # BLAS and malloc read their settings at process start: restart with one thread and
        # glibc's default allocator (the tuned one is measured in a child process)
        os.environ.update(THREAD_ENV, DIFFKIT_BENCH_REEXEC="1")
        for k in TUNED_MALLOC:
            os.environ.pop(k, None)
        os.execv(sys.executable, [sys.executable, "-m", "diffkit.cli", *sys.argv[1:]])
    from .bench.report import kept_part, print_run, to_markdown
    from .bench.runner import SECTIONS, run

    bad = [s for s in section if s not in SECTIONS]
    if bad:
        raise typer.BadParameter(f"{', '.join(bad)}; choose from {', '.join(SECTIONS)}", param_hint="--section")
    if not environment_ok(malloc="default"):
        _console().print("note: this process does not run with one BLAS thread and glibc's default allocator; "
                          "its figures (the first of each pair) are measured as it is", markup=False,
                          highlight=False)
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    chosen = list(section or SECTIONS)
    err = _rich_console(stderr=True)
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn()]
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("benchmarking", total=len(chosen))
        started: list[str] = []

        def progress(what: str) -> None:
            if what in chosen:  # a section starts (the runner names it alone); its parts follow
                bar.update(task, completed=len(started))
                started.append(what)
            bar.update(task, description=escape(f"benchmarking: {what}"[:80]))

        result = run(quick=quick, sections=section or None, peers=peers, progress=progress)
    print_run(result, _console())
    for name, err in result["errors"].items():
        _rich_console(stderr=True).print(f"section {name} failed: {err}", markup=False, highlight=False)
    _console().print(f"run took {result['seconds']:.0f} s", markup=False, highlight=False)
    if json_out:
        _write(json_out, _json.dumps(result, indent=1, default=float) + "\n")
    figure = None
    if plot:
        from .plots import scaling

        fig = scaling([r for r in result["sections"].get("ad", []) if r.get("section") == "scaling"])
        fig.savefig(plot, dpi=110, bbox_inches="tight")
        figure = os.path.relpath(plot, os.path.dirname(os.path.abspath(markdown))) if markdown else plot
    if markdown:
        try:
            with open(markdown, encoding="utf-8") as fh:
                kept = kept_part(fh.read())  # the hand-written start-up section stays
        except OSError:
            kept = ""
        _write(markdown, to_markdown(result, figure=figure) + kept)
    if result["errors"]:
        raise typer.Exit(1)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def graph(
    ctx: typer.Context,
    expression: str = typer.Argument(..., help='A safe expression, e.g. "(x + y)**2".'),
    at: list[str] = typer.Option([], "--at", help="The point: --at x=1 y=2 (vectors: v=1,2,3)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Write the picture here (.svg, .png, .pdf, .dot)."),
    timeout: float = typer.Option(DEFAULT_TIMEOUT, "--timeout",
                                  help="Seconds allowed to trace and draw (> 0); past it exit 2."),
) -> None:
    """The computational graph of EXPRESSION at a point: each operation with its value and gradient.

    Prints the nodes as a table; --out draws the graph (values in blue over
    gradients in red on each edge) with the system's Graphviz or graphviz-pure.
    """
    import os

    from .graphs import FORMATS
    from .limits import CLI_HINT, run_limited

    timeout = _check_timeout(timeout)
    F = _parse(expression)
    if out is not None and out.rsplit(".", 1)[-1].lower() not in FORMATS:
        raise typer.BadParameter(f"{out!r}: use one of the extensions {', '.join('.' + f for f in FORMATS)}",
                                 param_hint="--out")
    if out is not None and not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise typer.BadParameter(f"{out!r}: its folder does not exist", param_hint="--out")
    point = parse_point(list(at) + list(ctx.args), F.variables)
    try:
        g, picture = run_limited(_graph_and_picture, F, point, out, timeout=timeout, what="diffkit graph",
                                 hint=CLI_HINT)
    except (dk.TimeLimitError, dk.SizeLimitError) as e:
        _stop_on_limit(e, "graph")
    except dk.DiffkitError as e:
        _stop(str(e))
    header, *rows = g.rows()
    table = _rich_table(title=f"graph of {F.name}")
    for h in header:
        table.add_column(h, justify="right" if h in ("node", "value", "gradient") else "left")
    for row in rows:
        table.add_row(*row)
    _console().print(table)
    if out is not None:
        try:
            with open(out, "wb") as fh:
                fh.write(picture)
        except OSError as e:
            _stop(f"cannot write {out}: {e}")
        _console().print(f"wrote {out}", markup=False, highlight=False)


def _graph_and_picture(F: Any, point: list[Any], out: Optional[str]) -> tuple[Any, bytes | None]:
    """The graph and, for --out, its picture: the work ``diffkit graph`` does under its time limit."""
    g = dk.graph(F, *point)
    return g, (g.render(out.rsplit(".", 1)[-1].lower()) if out is not None else None)


@app.command("diff")
def diff_command(
    expression: str = typer.Argument(..., help='A safe expression, e.g. "sin(x)*exp(y)".'),
    wrt: Optional[str] = typer.Option(None, "--wrt", help="The variable (needed with several)."),
    order: int = typer.Option(1, "--order", min=1, max=20, help="How many times to differentiate."),
    simplify: bool = typer.Option(False, "--simplify", help="Run sympy.simplify on a small result (slow)."),
    method: str = typer.Option("dag", "--method", help="dag (shared subexpressions) or naive."),
    timeout: float = typer.Option(DEFAULT_TIMEOUT, "--timeout", help="Seconds allowed (> 0); past it exit 2."),
) -> None:
    """The derivative of EXPRESSION as a SymPy expression.

    Exits 2 on bad usage and when a limit is hit: --timeout, or the size of the
    derivative (a million SymPy operations) or its nesting depth.
    """
    from .limits import CLI_HINT, run_limited

    timeout = _check_timeout(timeout)
    F = _parse(expression)
    if method not in ("dag", "naive"):
        raise typer.BadParameter(f"{method!r}; choose dag or naive", param_hint="--method")
    try:
        text = run_limited(_diff_text, F, wrt, order, simplify, method, timeout=timeout, what="diffkit diff",
                           hint=CLI_HINT)
    except dk.ShapeError as e:
        raise typer.BadParameter(str(e), param_hint="--wrt") from None
    except (dk.TimeLimitError, dk.SizeLimitError) as e:
        _stop_on_limit(e, "diff")
    except dk.DiffkitError as e:
        _stop(str(e))
    print(text)


def _diff_text(F: Any, wrt: Optional[str], order: int, simplify: bool, method: str) -> str:
    """The derivative as text (SymPy's printer recurses: a too deep result is a SizeLimitError)."""
    from .limits import recursion_as_size_limit

    d = dk.diff(F, wrt, order=order, simplify="full" if simplify else True, method=method)
    with recursion_as_size_limit(f"printing the derivative of {F.name[:60]}"):
        return str(d)


@app.command()
def swell(
    n: int = typer.Option(10, "--n", min=1, max=30, help="Largest n of the logistic map."),
    fmt: str = typer.Option("table", "--format", help="table, markdown or json."),
    timeout: float = typer.Option(10.0, "--timeout", min=0.1, help="Seconds allowed to each step."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Also draw the operation counts against n to this "
                                       "file (.png, .svg, .pdf; needs matplotlib: pip install 'diffkit\\[plot]')."),
) -> None:
    """Expression swell on the logistic map (Baydin et al. 2018, Table 1)."""
    from rich.progress import Progress

    from .swell import COLUMNS, STEPS, cell, swell_table, to_json, to_markdown

    if fmt not in ("table", "markdown", "json"):
        raise typer.BadParameter(f"{fmt!r}; choose table, markdown or json", param_hint="--format")
    timeout = _check_timeout(timeout)
    if plot is not None:  # checked before the table's minutes of work
        from .plots import require_matplotlib

        try:
            formats = require_matplotlib()().canvas.get_supported_filetypes()
        except ImportError as e:
            raise typer.BadParameter(str(e), param_hint="--plot") from None
        if plot.rsplit(".", 1)[-1].lower() not in formats or "." not in plot:
            raise typer.BadParameter(f"{plot!r}: use one of the extensions .png, .svg, .pdf", param_hint="--plot")
    err = _rich_console(stderr=True)
    with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("swell", total=n * len(STEPS))

        def progress(k: int, step: str) -> None:
            bar.update(task, advance=1, description=f"n={k}: {step}")

        rows = swell_table(n, timeout=timeout, progress=progress)
    if fmt == "json":
        print(to_json(rows))
    elif fmt == "markdown":
        print(to_markdown(rows))
    else:
        table = _rich_table(title=f"Expression swell, logistic map (each step limited to {timeout:g} s)")
        for _, head in COLUMNS:
            table.add_column(head, justify="right")
        for r in rows:
            table.add_row(*[cell(r, k) for k, _ in COLUMNS])
        _console().print(table)
    if plot is not None:
        from .plots import swell as plot_swell

        plot_swell(rows).savefig(plot)
        _rich_console(stderr=True).print(f"plot written to {plot}", markup=False, highlight=False)


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
