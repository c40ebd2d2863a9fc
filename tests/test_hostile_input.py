"""Hostile input and faults: nothing runs that should not, every long operation is bounded.

A battery of inputs an attacker or an unlucky user may give: to the parser,
to ``Function.from_sympy``, and to the command line's ``check``, ``diff``,
``graph`` and ``swell``. Each must end in a clean ``DiffkitError`` (exit
status 2 on the command line), and none may have a side effect: every string
that could reach Python carries a call that would create a sentinel file,
which must never appear. Then the time and size limits: a call past its
``timeout`` returns within about a second of it, with a message that names
the limit and how to raise it.
"""

from __future__ import annotations

import inspect
import os
import pathlib
import sys
import time

import numpy as np
import pytest
import sympy
from typer.testing import CliRunner

import diffkit as dk
from diffkit.cli import app
from diffkit.core.parser import MAX_DEPTH, MAX_LENGTH
from diffkit.limits import run_limited

runner = CliRunner()

SENTINEL = "SENTINEL_hostile"
"""Created by any of the payloads below, should one ever run (relative: the tests run in a fresh folder)."""

TOUCH = f"__import__('pathlib').Path('{SENTINEL}').touch()"
"""A Python expression with a side effect."""


@pytest.fixture(autouse=True)
def _in_empty_folder(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    yield
    assert not (tmp_path / SENTINEL).exists(), "a payload ran: the sentinel file exists"


# --------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------

CODE = [  # Python that must never run: the payload in every position a string can reach
    TOUCH,
    f"x + {TOUCH}",
    f"sin({TOUCH})",
    f"{TOUCH} or x",
    f"x if {TOUCH} else x",
    f"[{TOUCH} for _ in (1,)]",
    f"({TOUCH} for _ in (1,))",
    f"{{{TOUCH} for _ in (1,)}}",
    f"{{1: {TOUCH}}}",
    f"lambda: {TOUCH}",
    f"(lambda: {TOUCH})()",
    f"f'{{{TOUCH}}}'",
    f"x[{TOUCH}]",
    f"x.real + {TOUCH}",
    f"sin(x=({TOUCH}))",
    f"sin(*[{TOUCH}])",
    f"(y := {TOUCH})",
    f"x; {TOUCH}",
    f"x\n{TOUCH}",
    f"eval(\"{TOUCH}\")",
    f"exec(\"{TOUCH}\")",
    f"compile('{TOUCH}', 'f', 'eval')",
    f"open('{SENTINEL}', 'w')",
    "getattr(x, '__class__')",
    "().__class__.__bases__[0].__subclasses__()",
    "x.__class__",
    "__builtins__",
    "__import__",
    "globals()",
    "locals()",
    "vars()",
    "breakpoint()",
    "sin.__globals__",
    "sin(x).__reduce__()",
    f"not {TOUCH}",
    f"~{TOUCH}",
    f"x in {TOUCH}",
    f"await {TOUCH}",
    f"(yield {TOUCH})",
    "import os",
    f"{TOUCH!r}",
    "b'x'",
    "x @ x",
    "x // 2",
    "x % 2",
    "x ^ 2",
    "x << 2",
    "1 < x < 2",
    "2j * x",
    "True * x",
    "None",
    "...",
    "x,",
    "[x]",
    "sin",
    "_x",
    "x_",
    "sin(x, x)",
    "unknown(x)",
    "pi(x)",
    "",
    "   ",
    "x\x00",
    "x\x1b[31m",
]

ARITHMETIC = [  # constants and exponents the evaluator or SymPy could not survive
    "9**9**9",
    "(10**300)**(10**300)",
    "x**9**9",
    "x**(10*1000)",
    "x**(2**10)",
    "x**-9**9",
    "pow(x, 1e6)",
    "power(x, 10**4)",
    "pow(x, 2**20)",
    "x ** 1e6",
    "x ** 1000.5",
    "exp(x) ** (1/1e-9)",
    "1e999 * x",
    "x + 1" + "0" * 400,
    "x + 10**300 * 10**300",
    "x + 2.0**1024",
    "x + 1/0",
    "x * (1 - 1)**-1",
    "x * 0**-2",
    "x * (-8)**(1/3)",
    "x + (-1)**0.5",
    "x + (1e308 + 1e308)",
    "x - 1e308 * 10",
]

DEPTH = [  # nesting past MAX_DEPTH, and very long input
    "(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1),
    "-" * (MAX_DEPTH + 1) + "x",
    "x" + "**x" * (MAX_DEPTH + 1),
    "x" + "+x" * (MAX_DEPTH + 1),
    "sin(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1),
    "x" + "**x" * 3333,
    "not " * 2000 + "x",
    "[x]" * 3000,
    "x" + ".a" * 4000,
    "lambda: " * 1000 + "x",
    "x" + " + x" * (MAX_LENGTH // 4),
    "x" * (MAX_LENGTH + 1),
    "1" * 5000,
]

UNICODE = [  # look-alikes: ast.parse would fold or accept them
    "ｅｘｐ(x)",            # fullwidth: NFKC makes it exp
    "а + 1",               # Cyrillic a: prints like the Latin one, a different variable
    "x + ο",               # Greek omicron
    "𝑥 + 1",               # mathematical italic x: NFKC makes it x
    "sin(x)\u200b",        # zero-width space
    "x\u202e+1",           # right-to-left override
    "x\u00a0+ 1",          # no-break space
    "x \u2212 1",          # minus sign
    "x \u00d7 y",          # multiplication sign
    "x\u0301 + 1",         # combining acute accent
    "ℯ**x",                # script e
    "αβ + x",              # Greek letters
    "x²",                  # superscript two
    "ｘ",                  # fullwidth x alone
    "x\ufeff",             # byte-order mark
]

PARSER_INPUTS = CODE + ARITHMETIC + DEPTH + UNICODE


@pytest.mark.parametrize("text", PARSER_INPUTS, ids=range(len(PARSER_INPUTS)))
def test_the_parser_refuses_hostile_text(text: str) -> None:
    start = time.perf_counter()
    with pytest.raises(dk.ParseError) as info:
        dk.Function.parse(text)
    assert time.perf_counter() - start < 1.0
    assert str(info.value)  # a message, never an empty error
    with pytest.raises(dk.ParseError):
        dk.Function.from_sympy(text)  # the same parser: never sympify
    with pytest.raises(dk.DiffkitError):
        dk.grad(text)(1.0)


@pytest.mark.parametrize("text, token, column, fragment", [
    ("9**9**9", "9**9", 4, "MAX_EXPONENT"),
    ("x**9**9", "9**9", 4, "MAX_EXPONENT"),
    ("x**(10*1000)", "10*1000", 5, "MAX_EXPONENT"),
    ("pow(x, 1e6)", "1e6", 8, "MAX_EXPONENT"),
    ("(10**300)**(10**300)", "10**300", 13, "MAX_EXPONENT"),
    ("x + 10**400", "10**400", 5, "overflows float64"),
    ("x + 1e999", "1e999", 5, "too large for float64"),
    ("x + 1/0", "1/0", 5, "division by zero"),
    ("ｅｘｐ(x)", "ｅ", 1, "FULLWIDTH LATIN SMALL LETTER E"),
    ("а + 1", "а", 1, "CYRILLIC SMALL LETTER A"),
    ("x \u2212 1", "\u2212", 3, "MINUS SIGN"),
])
def test_errors_name_the_token_the_column_and_the_reason(text: str, token: str, column: int,
                                                          fragment: str) -> None:
    with pytest.raises(dk.ParseError) as info:
        dk.Function.parse(text)
    e = info.value
    assert (e.token, e.column) == (token, column)
    assert text[column - 1:].startswith(token)
    assert fragment in str(e)


def test_fullwidth_hint_and_what_stays_allowed() -> None:
    with pytest.raises(dk.ParseError, match="write 'e' instead"):
        dk.Function.parse("ｅｘｐ(x)")
    for text in ("x**1000", "x**-1000", "x**(1/3)", "x**y", "x**(2*y + 1e6)", "pow(x, 2.5)", "2**1000 * x",
                 "x**x**x**x", "1.7e308 * x", "exp(1000) + x"):
        dk.Function.parse(text)  # variable exponents and finite constants are fine
    with pytest.raises(dk.ParseError, match="not ASCII"):
        dk.Function.parse("a*x", variables=("x", "а"))


def test_deep_but_allowed_nesting_is_evaluated_without_recursion() -> None:
    f = dk.Function.parse("sin(" * (MAX_DEPTH - 1) + "x" + ")" * (MAX_DEPTH - 1))
    assert f.expr.depth == MAX_DEPTH
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(120)  # far below the depth: evaluation is iterative
    try:
        value = f(0.5)
    finally:
        sys.setrecursionlimit(limit)
    assert 0 < value < 0.5
    assert f.expr.to_sympy({"sin": sympy.sin}, {}).func is sympy.sin  # and so is to_sympy (SymPy recurses)
    assert dk.grad(f)(0.5) > 0  # reverse mode: no recursion either


def test_parsing_on_a_nearly_full_stack_is_a_parse_error() -> None:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack(0)) + 120)
    try:
        with pytest.raises(dk.ParseError, match="too deeply"):
            dk.Function.parse("sin(" * 150 + "x" + ")" * 150)
    finally:
        sys.setrecursionlimit(limit)


# --------------------------------------------------------------------------
# from_sympy
# --------------------------------------------------------------------------

class _Evil:
    """An object whose conversion to text has a side effect: sympify would call it."""

    def __str__(self) -> str:
        pathlib.Path(SENTINEL).touch()
        return "x"


@pytest.mark.parametrize("obj", [
    object(), b"x", bytearray(b"x"), ["x"], ("x",), {"x": 1}, {1, 2}, None, True, 1j, _Evil(),
    lambda x: x, np.array([1.0, 2.0]), np.bool_(True), type, Exception("x"), slice(1),
], ids=lambda o: type(o).__name__)
def test_from_sympy_refuses_what_is_not_sympy(obj) -> None:
    with pytest.raises(dk.InvalidType, match="from_sympy"):
        dk.Function.from_sympy(obj)


def test_from_sympy_reads_strings_with_the_safe_parser() -> None:
    F = dk.Function.from_sympy("sigmoid(x) * y + where(x > 0, x**2, -x)")
    x, y = sympy.symbols("x y")
    assert F.expr == y / (1 + sympy.exp(-x)) + sympy.Piecewise((x**2, x > 0), (-x, True))
    assert F.variables == ("x", "y")
    assert float(dk.grad(F, argnums=1)(0.0, 2.0)) == 0.5
    xr = sympy.Symbol("x", real=True)
    assert dk.Function.from_sympy("x**2", variables=[xr]).expr.free_symbols == {xr}
    assert dk.Function.from_sympy(2.5).expr == sympy.Float(2.5)
    for variables in ("xy", [1], [None]):
        with pytest.raises(dk.InvalidType):
            dk.Function.from_sympy("x*y", variables=variables)


def test_no_sympify_of_text_in_diffkit() -> None:
    """sympify, parse_expr, eval and exec: none on text anywhere in the package."""
    package = pathlib.Path(dk.__file__).parent
    for path in package.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for banned in ("parse_expr(", "eval(", "exec(", "__import__("):
            hits = [ln for ln in text.splitlines() if banned in ln and not ln.lstrip().startswith("#")
                    and ".eval(" not in ln and "literal_eval(" not in ln and "_eval(" not in ln
                    # the compiled backend runs the code it wrote itself (test_generated_code_holds_no_text)
                    and not (path.name == "compiled.py" and "exec(compile(src, filename" in ln)]
            assert not hits, f"{path.name}: {banned} {hits}"
        for line in text.splitlines():
            if "sympify(" in line and not line.lstrip().startswith("#"):
                assert "strict=True" in line or "sympify(expr)  # a number" in line, f"{path.name}: {line.strip()}"
    for v in ("x + 1", TOUCH):
        with pytest.raises(dk.InvalidType):  # a function returning text: never evaluated
            dk.grad(lambda x, v=v: v, backend="symbolic")(1.0)


def test_generated_code_holds_no_text() -> None:
    """The compiled backend's source is built from its own names and number literals:
    keyword names that are not identifiers, strings and objects stay in its namespace."""
    from diffkit.core.values import bind
    from diffkit.primitives import PRIMITIVES

    evil = "x=__import__('os').system('touch /tmp/diffkit-pwned')"

    def f(x):
        return np.sum(bind(PRIMITIVES["sum"], x * 2.0, axis=(0,), keepdims=False)) * len(evil)

    src = dk.source(f, np.ones(3))
    assert "__import__" not in src and "os" not in src.replace("pos", "")
    bad = {evil: 1.0}
    with pytest.raises(Exception):  # a keyword that is no identifier: a clear TypeError, never code
        dk.grad(lambda x: bind(PRIMITIVES["sum"], x, **bad), backend="compiled")(np.ones(2))
    assert not pathlib.Path("/tmp/diffkit-pwned").exists()


# --------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------

CLI_CASES = [
    # check: the point
    ["check", "x**2", "--at", "x=1", "x=2"],
    ["check", "x**2", "--at", "x=1", "--at", "x=1"],
    ["check", "v**2", "--at", "v=1,2,3"],                    # grad of a vector output: usage, not a disagreement
    ["check", "x*y", "--at", "x=1,2", "y=3"],                 # the same
    ["check", "x", "--at", "x=nan"],
    ["check", "x", "--at", "x=inf"],
    ["check", "x", "--at", "x=-inf"],
    ["check", "x", "--at", "x=1e999"],
    ["check", "x", "--at", "x=1,nan"],
    ["check", "x", "--at", "x="],
    ["check", "x", "--at", "x=,"],
    ["check", "x", "--at", "x=1,,2"],
    ["check", "x", "--at", "=1"],
    ["check", "x", "--at", "x"],
    ["check", "x", "--at", "x=abc"],
    ["check", "x", "--at", "x=0x10"],
    ["check", "x", "--at", f"x={TOUCH}"],
    ["check", "x", "--at", "x=1", "y=2"],
    ["check", "x*y", "--at", "x=1"],
    ["check", "x"],
    ["check", "3"],
    ["check", "x", "--at", "x=1", "--bogus"],
    # check: the expression and options
    ["check", TOUCH, "--at", "x=1"],
    ["check", f"x + {TOUCH}", "--at", "x=1"],
    ["check", "9**9**9"],
    ["check", "(10**300)**(10**300)"],
    ["check", "x**9**9", "--at", "x=1"],
    ["check", "ｅｘｐ(x)", "--at", "x=1"],
    ["check", "а", "--at", "а=1"],
    ["check", "x", "--at", "x=1", "--op", TOUCH],
    ["check", "x", "--at", "x=1", "--op", "gradient"],
    ["check", "x", "--at", "x=1", "--format", "pickle"],
    ["check", "x", "--at", "x=1", "--timeout", "0"],
    ["check", "x", "--at", "x=1", "--timeout", "-1"],
    ["check", "x", "--at", "x=1", "--timeout", "nan"],
    ["check", "x", "--at", "x=1", "--timeout", "inf"],
    ["check", "x", "--at", "x=1", "--timeout", "1e9"],
    ["check", "x", "--at", "x=1", "--timeout", "soon"],
    ["check", "x", "--at", "x=1", "--op", "derivative", "--timeout", ""],
    # diff
    ["diff", TOUCH],
    ["diff", "sin(x)*y"],
    ["diff", "sin(x)*y", "--wrt", "z"],
    ["diff", "sin(x)*y", "--wrt", TOUCH],
    ["diff", "x**2", "--order", "0"],
    ["diff", "x**2", "--order", "21"],
    ["diff", "x**2", "--order", "two"],
    ["diff", "x**2", "--method", "magic"],
    ["diff", "x**2", "--timeout", "nan"],
    ["diff", "x**2", "--timeout", "-5"],
    ["diff", "3"],
    ["diff", "pow(x, 1e6)"],
    ["diff", "x\u00a0+ 1"],
    # graph
    ["graph", TOUCH, "--at", "x=1"],
    ["graph", "(x + y)**2", "--at", "x=1", "x=2", "y=1"],
    ["graph", "(x + y)**2", "--at", "x=1", "y=nan"],
    ["graph", "(x + y)**2", "--at", "x=1"],
    ["graph", "(x + y)**2", "--at", "x=1", "y=2", "--out", "graph.exe"],
    ["graph", "(x + y)**2", "--at", "x=1", "y=2", "--out", "no/such/folder/g.dot"],
    ["graph", "(x + y)**2", "--at", "x=1", "y=2", "--timeout", "0"],
    ["graph", "x**(10*1000)", "--at", "x=1"],
    # swell
    ["swell", "--n", "0"],
    ["swell", "--n", "31"],
    ["swell", "--n", "-1"],
    ["swell", "--n", TOUCH],
    ["swell", "--format", "yaml"],
    ["swell", "--timeout", "nan"],
    ["swell", "--timeout", "inf"],
    ["swell", "--timeout", "0"],
    ["swell", "--plot", "swell.exe"],
]


@pytest.mark.parametrize("args", CLI_CASES, ids=[" ".join(a)[:60] for a in CLI_CASES])
def test_the_command_line_refuses_hostile_arguments(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.exit_code, result.output[-2000:], result.exception)
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


def test_command_line_messages() -> None:
    out = runner.invoke(app, ["check", "x**2", "--at", "x=1", "x=2"]).output
    assert "x given twice" in out
    out = runner.invoke(app, ["check", "v**2", "--at", "v=1,2,3"]).output
    assert "scalar output" in out and "--op jacobian" in out and "DISAGREEMENT" not in out
    out = runner.invoke(app, ["check", "x", "--at", "x=nan"]).output
    assert "not a finite number" in out


def test_an_array_point_is_a_vector_argument() -> None:
    result = runner.invoke(app, ["check", "v**2", "--at", "v=1,2,3", "--op", "jacobian", "--format", "json"])
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(result.output)
    assert data["point"] == [[1.0, 2.0, 3.0]] and data["ok"]
    assert data["reference"]["value"] == [2.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 6.0]


# --------------------------------------------------------------------------
# crosscheck: mistakes in the call are the caller's, not "likely bug" rows
# --------------------------------------------------------------------------

@pytest.mark.parametrize("call, error", [
    (lambda: dk.crosscheck("v**2", (np.array([1.0, 2.0, 3.0]),)), dk.ShapeError),
    (lambda: dk.crosscheck(lambda x: None, (1.0,)), dk.InvalidType),
    (lambda: dk.crosscheck(lambda x: "x", (1.0,)), dk.InvalidType),
    (lambda: dk.crosscheck(lambda x: x > 0, (1.0,)), dk.InvalidType),
    (lambda: dk.crosscheck(lambda x: 3, (1.0,)), dk.InvalidType),
    (lambda: dk.crosscheck(lambda x: x, ()), dk.InvalidArgument),
    (lambda: dk.crosscheck(lambda x: np.sum(x), (np.array([]),)), dk.InvalidArgument),
    (lambda: dk.crosscheck(lambda x: x, ("one",)), dk.InvalidType),
    (lambda: dk.crosscheck("x*y", (1.0, 2.0), argnums=2), dk.InvalidArgument),
    (lambda: dk.crosscheck("x*y", (1.0, 2.0), argnums=(0, "y")), dk.InvalidArgument),
    (lambda: dk.crosscheck(lambda v: v, (np.ones(2),), "derivative"), dk.ShapeError),
    (lambda: dk.crosscheck("x*y", (1.0, 2.0), "jvp", tangents=[1.0]), dk.InvalidArgument),
    (lambda: dk.crosscheck("x*y", (1.0, 2.0), "jvp", tangents=[1.0, np.ones(2)]), dk.ShapeError),
    (lambda: dk.crosscheck(lambda v: v * 2, (np.ones(2),), "vjp", cotangent=np.ones(3)), dk.ShapeError),
    (lambda: dk.crosscheck("x", (1.0,), timeout=-1), dk.InvalidArgument),
    (lambda: dk.crosscheck("x", (1.0,), timeout="10"), dk.InvalidType),
])
def test_crosscheck_refuses_mistakes_before_running_backends(call, error) -> None:
    with pytest.raises(error):
        call()


# --------------------------------------------------------------------------
# Time limits
# --------------------------------------------------------------------------

SLACK = 1.5
"""Seconds a timed-out call may take past its limit (the measured overshoot is ~0.01 s; the
rest is room for a loaded machine)."""


def test_diff_command_stops_at_its_timeout() -> None:
    start = time.perf_counter()
    result = runner.invoke(app, ["diff", "exp(sin(x))", "--order", "13", "--timeout", "2"])
    elapsed = time.perf_counter() - start
    assert result.exit_code == 2, result.output
    assert "time limit of 2 s" in result.output and "--timeout" in result.output
    assert elapsed < 2 + SLACK


def test_dk_diff_timeout() -> None:
    start = time.perf_counter()
    with pytest.raises(dk.TimeLimitError, match="time limit of 1 s; raise it with timeout=") as info:
        dk.diff("exp(sin(x))", order=13, timeout=1)
    assert time.perf_counter() - start < 1 + SLACK
    assert info.value.limit == 1 and isinstance(info.value, TimeoutError)
    assert dk.diff("x**3", order=2, timeout=30) == 6 * sympy.Symbol("x", real=True)


def test_symbolic_det_is_bounded() -> None:
    det = lambda A: np.linalg.det(A)
    start = time.perf_counter()
    with pytest.raises(dk.SizeLimitError, match=r"7x7 matrix.*matrix_limit"):
        dk.grad(det, backend="symbolic")(np.eye(7))
    assert time.perf_counter() - start < 1.0
    start = time.perf_counter()
    with pytest.raises(dk.TimeLimitError, match="Symbolic\\(timeout="):
        dk.grad(det, backend=dk.Symbolic(matrix_limit=7, timeout=1))(np.eye(7))
    assert time.perf_counter() - start < 1 + SLACK


def test_precise_timeout() -> None:
    start = time.perf_counter()
    with pytest.raises(dk.TimeLimitError, match="precise grad"):
        dk.precise(lambda A: np.linalg.det(A), (np.eye(5) + 0.1,), timeout=0.5)
    assert time.perf_counter() - start < 0.5 + SLACK
    assert float(dk.precise("x**3", (2.0,), timeout=30)) == 12.0


def test_symbolic_backend_timeout_keeps_a_working_backend() -> None:
    be = dk.Symbolic(timeout=30)
    g = dk.grad(lambda x, y: np.sin(x) * y, argnums=(0, 1), backend=be)
    assert np.allclose(g(0.5, 2.0), (2 * np.cos(0.5), np.sin(0.5)))
    assert np.allclose(g(1.0, 3.0), (3 * np.cos(1.0), np.sin(1.0)))  # the cached, compiled derivative
    assert len(be._cache) == 1


def test_op_limit_and_depth_are_size_limits() -> None:
    with pytest.raises(dk.SizeLimitError, match="op_limit=100"):
        dk.grad(lambda x: np.sum(np.sin(x) * x), backend=dk.Symbolic(op_limit=100))(np.ones(50))
    with pytest.raises(dk.SizeLimitError, match="op_limit=50"):
        dk.diff("exp(sin(x))", order=5, op_limit=50)
    limit = sys.getrecursionlimit()
    here = len(inspect.stack(0))
    sys.setrecursionlimit(here + 600)  # what SymPy's recursion reaches differs by Python version
    try:
        with pytest.raises(dk.SizeLimitError, match="nested 101 levels deep"):
            dk.diff("sigmoid(" * 100 + "x" + ")" * 100)
    finally:
        sys.setrecursionlimit(limit)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(dk.InvalidArgument):
            dk.Symbolic(op_limit=bad)
    with pytest.raises(dk.InvalidArgument):
        dk.diff("x", timeout=float("nan"))
    with pytest.raises(dk.InvalidType):
        dk.diff("x", order=1.5)
    with pytest.raises(dk.ShapeError):
        dk.diff("x*y", wrt=2)


def _rk4(n: int):
    def f(y0, a):
        h, y = 0.1, y0
        rhs = lambda y: -a * y + np.sin(y)
        for _ in range(n):
            k1 = rhs(y)
            k2 = rhs(y + h / 2 * k1)
            k3 = rhs(y + h / 2 * k2)
            k4 = rhs(y + h * k3)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return y
    return f


def test_crosscheck_timeout_shares_out_the_time() -> None:
    start = time.perf_counter()
    rep = dk.crosscheck(_rk4(50), (0.5, 1.0), argnums=(0, 1), timeout=8, time_budget=0.01)
    assert time.perf_counter() - start < 8 + SLACK
    rows = {r.backend: r for r in rep.rows}
    # the symbolic trace of 50 unrolled steps swells: its row says so, the others still report
    assert rows["symbolic"].verdict == "unsupported" and "TimeLimitError" in rows["symbolic"].message
    assert "ok" in (rows["forward"].verdict, rows["reverse"].verdict)
    assert all(r.verdict in ("ok", "unsupported") for r in rep.rows)
    assert "time limit" in rep.reference.note


def test_crosscheck_timeout_of_the_whole_call() -> None:
    start = time.perf_counter()
    with pytest.raises(dk.TimeLimitError, match="crosscheck of sin"):
        dk.crosscheck("sin(x)", (1.0,), timeout=0.05)
    assert time.perf_counter() - start < 0.05 + SLACK
    assert dk.crosscheck("sin(x)", (1.0,), timeout=30).ok


def test_check_command_timeout() -> None:
    start = time.perf_counter()
    result = runner.invoke(app, ["check", "sin(x)", "--at", "x=1", "--timeout", "0.05"])
    assert result.exit_code == 2 and "time limit of 0.05 s" in result.output, result.output
    assert time.perf_counter() - start < 0.05 + SLACK


def test_run_limited() -> None:
    assert run_limited(sum, [1, 2], timeout=10, what="a sum") == 3
    start = time.perf_counter()
    with pytest.raises(dk.TimeLimitError, match="a nap: no result within the time limit of 0.5 s"):
        run_limited(time.sleep, 30, timeout=0.5, what="a nap")
    assert time.perf_counter() - start < 0.5 + SLACK
    with pytest.raises(ZeroDivisionError) as info:  # the exception itself comes back
        run_limited(lambda: 1 / 0, timeout=10, what="a division")
    assert "child process" in "".join(getattr(info.value, "__notes__", ["child process"]))
    with pytest.raises(dk.DiffkitError, match="could not be sent back"):
        run_limited(lambda: (lambda: 1), timeout=10, what="a closure")
    with pytest.raises(dk.DiffkitError, match="died"):
        run_limited(os._exit, 3, timeout=10, what="an exit")
    assert not pathlib.Path(SENTINEL).exists()


def test_without_fork_the_limit_still_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    from diffkit import limits

    monkeypatch.setattr(limits.mp, "get_all_start_methods", lambda: ["spawn"])  # as on Windows
    assert run_limited(sum, [1, 2], timeout=10, what="a sum") == 3
    start = time.perf_counter()
    with pytest.raises(dk.TimeLimitError, match="background thread"):
        run_limited(time.sleep, 3, timeout=0.2, what="a nap")
    assert time.perf_counter() - start < 0.2 + SLACK
    with pytest.raises(ZeroDivisionError):
        run_limited(lambda: 1 / 0, timeout=10, what="a division")
    be = dk.Symbolic(timeout=30)  # the build in a thread: same process, nothing to carry back
    assert np.isclose(dk.grad(lambda x: np.sin(x), backend=be)(0.5), np.cos(0.5))


def test_a_timed_out_child_leaves_nothing_behind() -> None:
    import multiprocessing as mp

    with pytest.raises(dk.TimeLimitError):
        run_limited(time.sleep, 30, timeout=0.2, what="a nap")
    assert not [p for p in mp.active_children() if p.name.startswith("diffkit:")]


@pytest.mark.slow
def test_slow_cases_are_bounded_too() -> None:
    start = time.perf_counter()
    result = runner.invoke(app, ["check", "sin(" * 150 + "x" + ")" * 150, "--at", "x=0.5", "--op", "hessian",
                                 "--timeout", "20"])
    assert result.exit_code in (0, 1, 2) and time.perf_counter() - start < 20 + SLACK, result.output
    assert "Traceback" not in result.output
    start = time.perf_counter()
    with pytest.raises(dk.TimeLimitError):
        dk.grad(_rk4(50), argnums=(0, 1), backend=dk.Symbolic(timeout=5))(0.5, 1.0)
    assert time.perf_counter() - start < 5 + SLACK
