"""Defining a function: callables, dk.Function, expression strings, SymPy expressions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy

import diffkit as dk
from diffkit.core.function import as_function


def test_variables_from_signature():
    def f(x, y, *rest, scale=1.0):
        return x * y

    F = dk.Function(f)
    assert F.variables == ("x", "y")
    assert F.name == "f"
    assert F(2.0, 3.0) == 6.0
    assert dk.Function(F) is not F and dk.Function(F).variables == ("x", "y")


def test_parse_sorts_variables_and_evaluates_with_numpy():
    G = dk.Function.parse("sin(x)*exp(y) + x**2*y")
    assert G.variables == ("x", "y")
    assert G(1.0, 2.0) == pytest.approx(math.sin(1) * math.exp(2) + 2, rel=1e-15)
    v = np.array([0.0, 1.0])
    np.testing.assert_allclose(G(v, 0.0), np.sin(v))
    G2 = dk.Function.parse("a*x + b", variables=("x", "a", "b"))
    assert G2.variables == ("x", "a", "b") and G2(2.0, 3.0, 1.0) == 7.0


def test_parse_knows_the_table_and_composites():
    assert dk.Function.parse("arcsin(x) + asin(x)")(0.5) == pytest.approx(2 * math.asin(0.5))
    assert dk.Function.parse("sigmoid(x)")(0.0) == 0.5
    assert dk.Function.parse("relu(x) + max(x, 0)")(-1.0) == 0.0
    assert dk.Function.parse("where(x > 0, x, -x)")(-3.0) == 3.0
    assert dk.Function.parse("2*pi + e")() == pytest.approx(2 * math.pi + math.e)


@pytest.mark.parametrize("text", ["x.real", "__import__('os')", "x[0]", "lambda: 1", "f(x=1)", "x; y",
                                  "open('f')"])
def test_parse_rejects_hostile_text(text):
    with pytest.raises(dk.ParseError):
        dk.Function.parse(text)


def test_from_sympy_maps_through_the_table():
    x, y = sympy.symbols("x y", real=True)
    expr = sympy.Piecewise((x**2, x > 0), (-x, True)) + sympy.Max(x, y) + sympy.Abs(y) * sympy.log(2 + x)
    H = dk.Function.from_sympy(expr, variables=(x, y))
    for a, b in [(1.5, -2.0), (-0.5, 0.25)]:
        want = float(expr.subs({x: a, y: b}))
        assert H(a, b) == pytest.approx(want, rel=1e-14)
    # the same derivative as SymPy's own, on both AD backends
    for backend in ("forward", "reverse"):
        g = dk.grad(H, argnums=(0, 1), backend=backend)(1.5, -2.0)
        want = [float(expr.diff(s).subs({x: 1.5, y: -2.0})) for s in (x, y)]
        assert g == pytest.approx(want, rel=1e-14)


def test_from_sympy_default_variables_and_errors():
    a, b = sympy.symbols("b a")
    assert dk.Function.from_sympy(a + 2 * b).variables == ("a", "b")
    with pytest.raises(ValueError, match="not among the variables"):
        dk.Function.from_sympy(a * b, variables=("a",))
    with pytest.raises(dk.UnsupportedOperation, match="zeta"):
        dk.Function.from_sympy(sympy.zeta(a))


def test_as_function_rejects_other_objects():
    with pytest.raises(TypeError, match="cannot differentiate a int"):
        as_function(3)


def test_a_numpy_ufunc_has_its_inputs_as_variables():
    # inspect.signature of a ufunc lists out= too
    assert dk.Function(np.sin).variables == ("x",)
    assert dk.Function(np.arctan2).variables == ("x1", "x2")
    assert float(dk.grad(np.arctan2, argnums=1)(1.0, 1.0)) == -0.5
