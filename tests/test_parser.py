"""Tests of the safe expression parser ``diffkit.core.parser``."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import sympy

from diffkit.core.parser import (
    MAX_DEPTH,
    MAX_EXPONENT,
    MAX_LENGTH,
    MAX_NODES,
    Expression,
    parse,
)
from diffkit.errors import ParseError

FUNCTIONS: dict[str, tuple[Callable[..., Any], tuple[int, ...]]] = {
    "sin": (np.sin, (1,)),
    "cos": (np.cos, (1,)),
    "exp": (np.exp, (1,)),
    "log": (np.log, (1,)),
    "sqrt": (np.sqrt, (1,)),
    "where": (np.where, (3,)),
    "maximum": (np.maximum, (2,)),
    "clip": (np.clip, (3,)),
    "pow": (np.power, (2,)),
}
SYMPY_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sin": sympy.sin,
    "cos": sympy.cos,
    "exp": sympy.exp,
    "log": sympy.log,
    "sqrt": sympy.sqrt,
    "maximum": sympy.Max,
}


def p(text: str, **kwargs: Any) -> Expression:
    return parse(text, functions=FUNCTIONS, **kwargs)


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------


def test_limits_are_documented_constants() -> None:
    assert MAX_LENGTH == 10_000
    assert MAX_DEPTH == 200
    assert MAX_NODES == 10_000
    assert MAX_EXPONENT == 1000


def test_example_value() -> None:
    f = p("sin(x)*exp(y) + x**2*y")
    assert f.variables == ("x", "y")
    assert f.names_used == frozenset({"x", "y"})
    assert f.functions_used == frozenset({"sin", "exp"})
    expected = math.sin(1) * math.exp(2) + 2
    assert f(1.0, 2.0) == pytest.approx(expected, rel=1e-15)
    assert f(x=1.0, y=2.0) == pytest.approx(expected, rel=1e-15)
    assert f(1.0, y=2.0) == pytest.approx(expected, rel=1e-15)


def test_str_and_repr() -> None:
    f = p("x  +  1")
    assert str(f) == "x  +  1"
    assert f.text == "x  +  1"
    assert "x  +  1" in repr(f)


def test_immutable() -> None:
    f = p("x + 1")
    with pytest.raises(AttributeError):
        f.text = "y"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del f.variables


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("2 ** 3 ** 2", 512.0),
        ("(2 ** 3) ** 2", 64.0),
        ("8 / 4 / 2", 1.0),
        ("8 - 4 - 2", 2.0),
        ("-2 ** 2", -4.0),
        ("(-2) ** 2", 4.0),
        ("2 ** -1", 0.5),
        ("- - 3", 3.0),
        ("+3", 3.0),
        ("1e3 + .5", 1000.5),
        ("0x10", 16.0),
        ("1_000", 1000.0),
        ("pi", math.pi),
        ("e", math.e),
        ("2*pi*e", 2 * math.pi * math.e),
    ],
)
def test_constant_arithmetic(text: str, expected: float) -> None:
    f = p(text)
    assert f.variables == ()
    result = f()
    assert type(result) is float
    assert result == pytest.approx(expected, rel=1e-15)


def test_unary_minus_binds_weaker_than_power() -> None:
    f = p("-x**2")
    assert f(3.0) == -9.0
    assert p("-x*y")(2.0, 3.0) == -6.0
    assert p("x*-y")(2.0, 3.0) == -6.0


def test_literals_are_floats() -> None:
    f = p("x * 2")
    assert type(f(3)) is float  # int * float literal


def test_comparisons_with_where() -> None:
    f = p("where(x > 0, x, 0)")
    x = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(f(x), [0.0, 0.0, 2.0])
    for op, fn in [
        ("<", np.less),
        ("<=", np.less_equal),
        (">", np.greater),
        (">=", np.greater_equal),
        ("==", np.equal),
        ("!=", np.not_equal),
    ]:
        g = p(f"where(x {op} 0, 1, -1)")
        np.testing.assert_array_equal(g(x), np.where(fn(x, 0), 1.0, -1.0))
    assert p("x > 1")(2.0) is True


def test_functions_with_several_args() -> None:
    assert p("maximum(x, 2)")(1.0) == 2.0
    np.testing.assert_array_equal(
        p("clip(x, -1, 1)")(np.array([-5.0, 0.5, 5.0])), [-1.0, 0.5, 1.0]
    )
    assert p("sqrt(log(exp(x)))")(4.0) == pytest.approx(2.0)
    assert p("cos(0)")() == 1.0


def test_variable_named_e_when_declared() -> None:
    f = p("e * x", variables=("x", "e"))
    assert f.variables == ("x", "e")
    assert f(2.0, 5.0) == 10.0
    g = p("e * x")
    assert g.variables == ("x",)
    assert g(2.0) == pytest.approx(2 * math.e)


def test_custom_constants() -> None:
    f = parse("g * t", functions=FUNCTIONS, constants={"g": 9.81})
    assert f.variables == ("t",)
    assert f(2.0) == pytest.approx(19.62)
    assert parse("pi", functions=FUNCTIONS, constants={}).variables == ("pi",)


def test_variables_sorted_by_default() -> None:
    assert p("z + b*a + sin(y)").variables == ("a", "b", "y", "z")


def test_explicit_variable_order_and_unused_variables() -> None:
    f = p("a*x + b", variables=("x", "a", "b", "c"))
    assert f.variables == ("x", "a", "b", "c")
    assert f.names_used == frozenset({"x", "a", "b"})
    assert f(2.0, 3.0, 1.0) == 7.0
    assert f(2.0, 3.0, 1.0, 99.0) == 7.0
    assert f(x=2.0, a=3.0, b=1.0) == 7.0


def test_call_argument_errors() -> None:
    f = p("a*x + b", variables=("x", "a", "b"))
    with pytest.raises(TypeError):
        f(1.0, 2.0, 3.0, 4.0)
    with pytest.raises(TypeError):
        f(1.0, 2.0, 3.0, q=1.0)
    with pytest.raises(TypeError):
        f(1.0, 2.0, 3.0, x=1.0)
    with pytest.raises(TypeError):
        f(1.0, 2.0)


def test_numpy_broadcasting() -> None:
    f = p("sin(x)*exp(y) + x**2*y")
    x = np.linspace(0.0, 1.0, 3)[:, None]
    y = np.array([1.0, 2.0])
    out = f(x, y)
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out, np.sin(x) * np.exp(y) + x**2 * y)


def test_arbitrary_objects_pass_through() -> None:
    class Traced:
        def __init__(self, log: list[str]) -> None:
            self.log = log

        def __mul__(self, other: Any) -> Traced:
            self.log.append(f"mul {other!r}")
            return self

        def __rmul__(self, other: Any) -> Traced:
            self.log.append(f"rmul {other!r}")
            return self

        def __neg__(self) -> Traced:
            self.log.append("neg")
            return self

    log: list[str] = []
    t = Traced(log)
    assert p("-(2 * x * 3)")(t) is t
    assert log == ["rmul 2.0", "mul 3.0", "neg"]


def test_multiline_and_whitespace() -> None:
    assert p("  (x +\n   1)  ")(1.0) == 2.0
    assert p("\tx + 1\n")(1.0) == 2.0


def test_float_overflow_literals_are_refused() -> None:
    for text in ("1e400", "1" * 400, "x + 2e308"):
        with pytest.raises(ParseError, match="too large for float64"):
            p(text)
    assert p("1.7e308")() == 1.7e308


def test_power_tower_is_refused_quickly() -> None:
    start = time.perf_counter()
    with pytest.raises(ParseError, match="MAX_EXPONENT") as info:
        p("9**9**9")
    assert (info.value.token, info.value.column) == ("9**9", 4)
    assert time.perf_counter() - start < 1.0


def test_equality_and_hash() -> None:
    assert p("x + 1") == p("x+1")
    assert hash(p("x + 1")) == hash(p("x+1"))
    assert p("x + 1") != p("x + 2")


# --------------------------------------------------------------------------
# SymPy
# --------------------------------------------------------------------------


def test_integer_literal_stays_integer_in_sympy() -> None:
    x = sympy.Symbol("x")
    result = p("x**2").to_sympy(SYMPY_FUNCTIONS, {"x": x})
    assert result == x**2
    assert result.exp.is_Integer
    assert p("x**2.0").to_sympy(SYMPY_FUNCTIONS, {"x": x}) == x ** sympy.Float(2.0)
    assert p("1/2").to_sympy(SYMPY_FUNCTIONS, {}) == sympy.Rational(1, 2)


def test_sympy_of_example() -> None:
    x, y = sympy.symbols("x y")
    result = p("sin(x)*exp(y) + x**2*y").to_sympy(SYMPY_FUNCTIONS, {"x": x, "y": y})
    assert result == sympy.sin(x) * sympy.exp(y) + x**2 * y
    assert sympy.diff(result, x) == sympy.cos(x) * sympy.exp(y) + 2 * x * y


def test_sympy_constants_relations_and_default_symbols() -> None:
    x = sympy.Symbol("x")
    assert p("pi*x").to_sympy(SYMPY_FUNCTIONS, {}) == sympy.pi * x
    assert p("e").to_sympy(SYMPY_FUNCTIONS, {}) == sympy.E
    assert p("-x + +x").to_sympy(SYMPY_FUNCTIONS, {}) == 0
    assert p("0.5*x").to_sympy(SYMPY_FUNCTIONS, {}) == sympy.Float(0.5) * x
    rel = p("x > 1").to_sympy(SYMPY_FUNCTIONS, {"x": x})
    assert rel == sympy.Gt(x, 1)
    piecewise = {"where": lambda c, a, b: sympy.Piecewise((a, c), (b, True))}
    result = p("where(x >= 0, x, 0)").to_sympy(piecewise, {"x": x})
    assert result == sympy.Piecewise((x, x >= 0), (0, True))
    assert p("maximum(x, 1)").to_sympy(SYMPY_FUNCTIONS, {}) == sympy.Max(x, 1)


def test_sympy_missing_function() -> None:
    with pytest.raises(KeyError, match="where"):
        p("where(x > 0, x, 0)").to_sympy(SYMPY_FUNCTIONS, {})


def test_sympy_huge_constant_powers_are_bounded() -> None:
    start = time.perf_counter()
    for text in ("9**9**9", "((9**1000)**1000)**1000"):
        with pytest.raises(ParseError):  # refused by the parser: no constant overflows float64
            p(text)
    assert p("2**1000").to_sympy(SYMPY_FUNCTIONS, {}) == sympy.Integer(2) ** 1000
    with pytest.raises(ParseError, match="MAX_EXPONENT"):
        p("x**(10**4)").to_sympy(SYMPY_FUNCTIONS, {})
    assert time.perf_counter() - start < 1.0


# --------------------------------------------------------------------------
# Rejection
# --------------------------------------------------------------------------

HOSTILE: list[str] = [
    "__import__('os').system('echo hi')",
    "().__class__.__bases__[0].__subclasses__()",
    "x.real",
    "sin(x.real)",
    "x[0]",
    "lambda: 1",
    "[i for i in x]",
    "(i for i in x)",
    "{i for i in x}",
    "{i: i for i in x}",
    "sin(x=1)",
    "sin(*x)",
    "sin(**x)",
    "__builtins__",
    "_x",
    "x_",
    "x; y",
    "import os",
    "open('f')",
    "eval('1')",
    "exec('1')",
    "compile('1', '', 'eval')",
    "x if y else z",
    "x and y",
    "x or y",
    "not x",
    "(x := 1)",
    "f'{x}'",
    "'abc'",
    "b'x'",
    "1j",
    "True",
    "None",
    "...",
    "x // 2",
    "x % 2",
    "x @ y",
    "x ^ y",
    "x | y",
    "x & y",
    "x << 1",
    "~x",
    "x in y",
    "x is y",
    "a < b < c",
    "sin",
    "sin + 1",
    "x(1)",
    "sin(x, y)",
    "sin()",
    "where(x, y)",
    "sine(x)",
    "x ** 1e6",
    "x ** -5000",
    "x ** 1e400",
    "x ** - - 1001",
    "(" * 500 + "x" + ")" * 500,
    "[" * 500 + "x" + "]" * 500,
    "-" * 5000 + "x",
    "- " * 200 + "x",
    "x" + "+x" * 6000,
    "x" + "+x" * 4000,
    "not " * 2400 + "x",
    "1" * 5000,
    "x\x00",
    "x\x07",
    "",
    "   ",
    "\n",
    "x" * 1_000_000,
    "sin(" * 300 + "x" + ")" * 300,
    "x**" * 3000 + "2",
    "{}",
    "[x]",
    "(x, y)",
    "x,",
    "x = 1",
    "x +",
    "await x",
    "yield x",
    "x[1:2]",
    "sin(x)(y)",
    "getattr(x, 'y')",
]


@pytest.mark.parametrize("text", HOSTILE, ids=lambda s: repr(s[:40]))
def test_hostile_strings_raise_parse_error_fast(text: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ParseError) as info:
        p(text)
    assert time.perf_counter() - start < 1.0
    assert isinstance(info.value, ValueError)
    assert info.value.text == text


def test_hostile_strings_execute_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    for text in [
        "__import__('os').system('echo hi')",
        "exec('print(1)')",
        "print('hi')",
    ]:
        with pytest.raises(ParseError):
            p(text)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_non_string_input() -> None:
    with pytest.raises(TypeError):
        p(b"x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "token", "column", "fragment"),
    [
        ("sin(x.real)", "x.real", 5, "attribute access"),
        ("x + y[0]", "y[0]", 5, "subscript"),
        ("x // 2", "//", 3, "floor division"),
        ("1 + (x := 1)", "x := 1", 6, "assignment expression"),
        ("sin(x=1)", "x=1", 5, "keyword"),
        ("x ** 1e6", "1e6", 6, "MAX_EXPONENT"),
        ("x ** -5000", "-5000", 6, "MAX_EXPONENT"),
        ("a < b < c", "a < b < c", 1, "chained comparison"),
        ("2 * __import__('os')", "__import__", 5, "'_'"),
        ("x; y", ";", 2, "invalid syntax"),
        ("x + 'abc'", "'abc'", 5, "string"),
        ("1 + 2j", "2j", 5, "complex"),
        ("y + sin", "sin", 5, "function"),
        ("sin(x, y)", "sin(x, y)", 1, "1 argument"),
        ("ab + x.y", "x.y", 6, "attribute access"),
        ("αβ + x.y", "α", 1, "GREEK SMALL LETTER ALPHA"),
        ("x**9**9", "9**9", 4, "MAX_EXPONENT"),
        ("x**(10*1000)", "10*1000", 5, "MAX_EXPONENT"),
        ("pow(x, 1e6)", "1e6", 8, "MAX_EXPONENT"),
        ("x + 10**300 * 10**300", "10**300 * 10**300", 5, "overflows float64"),
        ("x + 1/0", "1/0", 5, "division by zero"),
        ("x * (-8)**(1/3)", "(-8)**(1/3)", 5, "not a real number"),
    ],
)
def test_error_messages_quote_token_and_column(
    text: str, token: str, column: int, fragment: str
) -> None:
    with pytest.raises(ParseError) as info:
        p(text)
    err = info.value
    message = str(err)
    assert err.token == token
    assert err.column == column
    assert text[column - 1 :].startswith(token)
    assert repr(token) in message
    assert f"column {column}" in message
    assert repr(text) in message
    assert fragment in message


def test_attribute_message_format() -> None:
    with pytest.raises(ParseError) as info:
        p("sin(x.real)")
    assert str(info.value) == (
        "unsupported syntax 'x.real' (attribute access) at column 5 "
        "in expression 'sin(x.real)'"
    )


def test_unknown_function_suggests_close_match() -> None:
    with pytest.raises(ParseError) as info:
        p("sine(x)")
    message = str(info.value)
    assert message.startswith("unknown function 'sine' at column 1")
    assert "did you mean 'sin'?" in message
    assert "clip, cos, exp, log, maximum, pow, sin, sqrt, where" in message
    assert info.value.token == "sine"


def test_unknown_function_without_close_match_lists_allowed() -> None:
    with pytest.raises(ParseError) as info:
        p("1 + open('f')")
    message = str(info.value)
    assert "did you mean" not in message
    assert "allowed functions: clip, cos" in message
    assert info.value.column == 5


def test_undeclared_name_lists_declared_variables() -> None:
    with pytest.raises(ParseError) as info:
        p("x + z", variables=("x", "y"))
    message = str(info.value)
    assert "'z'" in message and "x, y" in message
    assert info.value.column == 5


def test_variable_called_as_function() -> None:
    with pytest.raises(ParseError, match="'x'"):
        p("x(1)", variables=("x",))
    with pytest.raises(ParseError, match="'pi'"):
        p("pi(1)")


@pytest.mark.parametrize(
    "variables",
    [("x", "x"), ("1x",), ("for",), ("_x",), ("x_",), ("sin",), ("x y",)],
)
def test_invalid_declared_variables(variables: tuple[str, ...]) -> None:
    with pytest.raises(ParseError):
        p("x", variables=variables)


def test_depth_limits() -> None:
    ok = "(" * (MAX_DEPTH - 2) + "x" + ")" * (MAX_DEPTH - 2)
    assert p(ok)(1.0) == 1.0
    assert p("-" * 50 + "x")(2.0) == 2.0
    assert p("x" + "+x" * 90)(1.0) == 91.0
    with pytest.raises(ParseError, match="MAX_DEPTH"):
        p("x" + "+x" * 200)


def test_exponent_limits() -> None:
    assert p("x ** 1000")(1.0) == 1.0
    assert p("x ** -1000")(1.0) == 1.0
    assert p("x ** +1000.0")(1.0) == 1.0
    with pytest.raises(ParseError):
        p("x ** 1000.5")


def test_length_limit() -> None:
    text = "x" + " " * (MAX_LENGTH - 1)
    assert p(text)(1.0) == 1.0
    with pytest.raises(ParseError, match="too long"):
        p(text + " ")
