"""Tests of diffkit.strategies, diffkit.testing and the pytest plugin themselves."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

import diffkit as dk
from diffkit.primitives import PRIMITIVES
from diffkit.strategies import (
    constant_matrix,
    domain_transform,
    elementwise_primitives,
    functions,
    point_problem,
    points,
)
from diffkit.testing import absolute_derivative, check_grads

# find() searches and shrinks; a fixed, derandomized budget keeps these fast and reproducible
FIND = settings(max_examples=2000, derandomize=True, database=None, deadline=None)


def _calls(text: str) -> int:
    return text.count("(")


# --------------------------------------------------------------------------
# functions()
# --------------------------------------------------------------------------


def short(text: str) -> bool:
    """A shrunk expression: a handful of calls, not a 40-node tree (Hypothesis's shrinker is a
    heuristic search, so a wrapper or two may survive)."""
    return _calls(text) <= 4 and len(text) <= 48


def test_failing_cases_shrink_to_a_minimal_expression():
    f = find(functions(variables=("x", "y")), lambda f: "log(" in f.source, settings=FIND)
    assert f.source == "log(1 + x**2)"


@pytest.mark.parametrize("name", ["sin", "arcsin", "arccosh", "divide", "exp", "hypot"])
def test_shrinks_to_a_short_expression_over_one_variable(name):
    marker = {"divide": " / "}.get(name, f"{name}(")
    f = find(functions(variables=("x", "y")), lambda f: marker in f.source, settings=FIND)
    assert f.expr.names_used == {"x"} and f.source.count(marker) == 1 and short(f.source), f.source


def test_a_two_variable_failure_shrinks_to_a_short_expression():
    f = find(functions(variables=("x", "y")), lambda f: {"x", "y"} <= f.expr.names_used, settings=FIND)
    assert short(f.source), f.source


def test_functions_are_parsed_dk_functions_with_a_readable_source():
    @settings(max_examples=50, derandomize=True, database=None)
    @given(functions(variables=("x", "y"), max_depth=3))
    def check(f):
        assert isinstance(f, dk.Function) and f.variables == ("x", "y")
        assert f.source and f.expr is not None
        assert dk.Function.parse(f.source, variables=("x", "y")).source == f.source

    check()


def test_table_options_select_primitives():
    smooth = {p.name for p in elementwise_primitives()}
    assert "log" in smooth and "absolute" not in smooth and "maximum" not in smooth
    kinked = {p.name for p in elementwise_primitives(smooth=False)}
    assert {"absolute", "maximum", "minimum", "where"} <= kinked
    analytic = {p.name for p in elementwise_primitives(analytic=True)}
    assert analytic and all(PRIMITIVES[n].complex_safe for n in analytic) and "hypot" not in analytic
    assert [p.name for p in elementwise_primitives(["sin", "ln"])] == ["log", "sin"]
    with pytest.raises(ValueError, match="not_a_primitive"):
        elementwise_primitives(["not_a_primitive"])


def test_every_table_primitive_is_drawn_with_a_valid_domain_transform():
    """Generated from the table: each elementwise primitive appears, inside its domain."""
    for p in elementwise_primitives(smooth=False):
        for i, dom in enumerate(p.domain or ()):
            text = domain_transform(dom, "t")
            for t in (-3.0, -1.0, 0.0, 0.5, 2.0, 10.0):
                v = dk.Function.parse(text, variables=("t",))(t)
                assert dom[0] < v < dom[1], (p.name, i, text, t, v)


def test_restricted_primitives_and_analytic_functions():
    @settings(max_examples=40, derandomize=True, database=None)
    @given(functions(variables=("x",), primitives=["log", "sin"]),
           functions(variables=("x", "y"), analytic=True))
    def check(f, g):
        assert f.expr.functions_used <= {"log", "sin"}
        assert all(PRIMITIVES[n].complex_safe for n in g.expr.functions_used if n in PRIMITIVES)

    check()


def test_kinks_only_when_asked_for():
    f = find(functions(variables=("x",), smooth=False), lambda f: "abs(" in f.source, settings=FIND)
    assert f.source == "abs(x)"
    f = find(functions(variables=("x",), smooth=False), lambda f: "where(" in f.source, settings=FIND)
    assert short(f.source), f.source

    @settings(max_examples=60, derandomize=True, database=None)
    @given(functions(variables=("x", "y")))
    def smooth(f):
        assert not any(PRIMITIVES[n].kink for n in f.expr.functions_used if n in PRIMITIVES and n != "hypot")
        assert "clip" not in f.source and "where" not in f.source

    smooth()


def test_array_functions_have_numpy_names_and_shapes():
    shapes = {"x": (3,)}

    @settings(max_examples=60, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(functions(variables=("x", "y"), shapes=shapes, scalar_output=True), st.data())
    def check(f, data):
        args = data.draw(points(f))
        assert np.shape(args[0]) == (3,) and np.shape(args[1]) == ()
        assert np.shape(f(*args)) == ()
        assert f.name == f.source and f.source

    check()
    f = find(functions(variables=("x",), shapes=shapes), lambda f: "@" in f.source, settings=FIND)
    assert short(f.source), f.source
    g = find(functions(variables=("x",), shapes=shapes, max_depth=1), lambda f: f.source == "x @ M3",
             settings=FIND)
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(g(x), x @ constant_matrix(3))
    f = find(functions(variables=("x",), shapes=shapes), lambda f: "[0]" in f.source, settings=FIND)
    assert short(f.source), f.source


def test_drawing_is_reproducible():
    def draw_all():
        out = []

        @settings(max_examples=30, derandomize=True, database=None)
        @given(functions(variables=("x", "y")), st.data())
        def collect(f, data):
            out.append((f.source, data.draw(points(f))))

        collect()
        return out

    assert draw_all() == draw_all()


# --------------------------------------------------------------------------
# points()
# --------------------------------------------------------------------------


def test_points_are_inside_the_domain_and_finite():
    @settings(max_examples=100, derandomize=True, database=None)
    @given(functions(variables=("x", "y"), max_depth=3), st.data())
    def check(f, data):
        args = data.draw(points(f, min_value=-1.5, max_value=1.5))
        assert all(-1.5 <= a <= 1.5 for a in args)
        with np.errstate(divide="raise", invalid="raise", over="raise"):  # no log(-1), no 1/0
            assert math.isfinite(float(f(*args)))
        assert point_problem(f, args) is None

    check()


def test_points_keep_away_from_kinks_and_domain_edges():
    assert point_problem("abs(x)", [0.0]) is not None
    assert point_problem("abs(x)", [5e-4]) is not None
    assert point_problem("abs(x)", [5e-4], margin=1e-4) is None
    assert point_problem("abs(x)", [0.0], margin=0) is not None  # exactly on it, always
    assert point_problem("maximum(x, y)", [1.0, 1.0 + 1e-4]) is not None
    assert point_problem("maximum(x, y)", [1.0, 1.1]) is None
    assert point_problem("where(x > 0, x, 0)", [1e-5]) is not None
    assert point_problem("log(x)", [1e-4]) is not None
    assert point_problem("sqrt(x)", [0.0]) is not None
    assert point_problem("arcsin(x)", [0.9999]) is not None
    assert point_problem("x / y", [1.0, 1e-4]) is not None
    assert point_problem("hypot(x, y)", [1e-4, -1e-4]) is not None
    assert point_problem("hypot(x, y)", [1e-4, 0.5]) is None

    @settings(max_examples=50, derandomize=True, database=None)
    @given(points(dk.Function.parse("abs(x) + maximum(x, y)", variables=("x", "y"))))
    def check(args):
        x, y = args
        assert abs(x) > 1e-3 and abs(x - y) > 1e-3 * max(1.0, abs(x))

    check()


def test_points_dtype_and_magnitude():
    f = dk.Function.parse("sin(x) * y", variables=("x", "y"))

    @settings(max_examples=30, derandomize=True, database=None)
    @given(points(f, min_value=-0.5, max_value=0.25, dtype=np.float32),
           points(f, shapes={"x": (2, 2)}))
    def check(p32, parr):
        assert all(isinstance(a, np.float32) and -0.5 <= a <= 0.25 for a in p32)
        assert parr[0].shape == (2, 2) and parr[0].dtype == np.float64 and isinstance(parr[1], float)

    check()


def test_points_reproducible():
    f = dk.Function.parse("log(1 + x**2)")
    first = find(points(f), lambda a: a[0] > 1.0, settings=FIND)
    assert first == find(points(f), lambda a: a[0] > 1.0, settings=FIND)


# --------------------------------------------------------------------------
# diffkit.testing
# --------------------------------------------------------------------------


def _custom_sin(scale: float) -> dk.custom_jvp:
    @dk.custom_jvp
    def f(x):
        return np.sin(x)

    @f.defjvp
    def f_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return f(x), np.cos(x) * t * scale

    return f


def _custom_cube(scale: float) -> dk.custom_vjp:
    @dk.custom_vjp
    def f(x, y):
        return x**3 * y

    f.defvjp(lambda x, y: (f(x, y), (x, y)),
             lambda res, ct: (ct * 3 * res[0] ** 2 * res[1] * scale, np.sum(ct * res[0] ** 3)))
    return f


def test_check_grads_accepts_correct_rules_to_second_order():
    check_grads(_custom_sin(1.0), (0.7,), order=2)
    check_grads(_custom_cube(1.0), (np.array([0.5, -1.2]), 0.3), order=2)
    check_grads(lambda x: np.sum(np.exp(x) * x), (np.array([0.1, 0.2, 0.3]),), order=2)
    check_grads("log(1 + x**2) * y", (0.3, 2.0), order=2, modes=("rev",))


def test_check_grads_catches_a_wrong_custom_jvp():
    with pytest.raises(dk.BackendMismatch, match=r"JVP \(mode 'fwd', order 1, backend 'forward'\)"):
        check_grads(_custom_sin(1.0 + 1e-6), (0.7,), order=1)
    with pytest.raises(AssertionError, match="difference"):
        check_grads(_custom_sin(1.0 + 1e-6), (0.7,), order=1, modes=("rev",))


def test_check_grads_catches_a_wrong_custom_vjp():
    with pytest.raises(dk.BackendMismatch, match=r"VJP \(mode 'rev', order 1"):
        check_grads(_custom_cube(1.0 + 1e-6), (np.array([0.5, -1.2]), 0.3), order=1, modes=("rev",))
    with pytest.raises(dk.BackendMismatch, match="mode 'fwd'"):  # forward mode uses the bwd rule too
        check_grads(_custom_cube(0.5), (np.array([0.5, -1.2]), 0.3), order=1, modes=("fwd",))


def test_check_grads_arguments():
    with pytest.raises(ValueError, match="order"):
        check_grads(np.sin, (1.0,), order=0)
    with pytest.raises(ValueError, match="modes"):
        check_grads(np.sin, (1.0,), modes=("sideways",))


def test_absolute_derivative_bounds_the_derivative():
    f = dk.Function.parse("sin(x) * y - x * exp(y)", variables=("x", "y"))
    args = (0.3, -0.4)
    g = np.asarray(dk.grad(f, argnums=(0, 1))(*args))
    H = np.asarray(dk.hessian(f, argnums=(0, 1))(*args))
    assert np.all(np.abs(g) <= absolute_derivative(f, args, 1) + 1e-15)
    assert np.all(np.abs(H) <= absolute_derivative(f, args, 2) + 1e-15)
    assert absolute_derivative(lambda x: np.prod(x), (np.ones(2),)) is None  # not covered


def test_testing_exports_the_harness_assertion():
    from diffkit import testing

    assert testing.assert_backends_agree is dk.assert_backends_agree


# --------------------------------------------------------------------------
# The pytest plugin
# --------------------------------------------------------------------------


def test_backends_fixture_runs_once_per_backend(backends):
    assert backends in dk.backends()
    assert float(dk.grad(lambda x: x * x, backend=backends)(3.0)) == pytest.approx(6.0, rel=1e-9)


def test_profiles_are_registered():
    from hypothesis import settings as hsettings

    assert hsettings.get_profile("diffkit-ci").derandomize
    assert hsettings.get_profile("diffkit-ci").deadline is None
    assert hsettings.get_profile("thorough").max_examples == 5000


def test_import_diffkit_does_not_import_hypothesis():
    code = "import sys, diffkit, diffkit.testing; sys.exit(1 if 'hypothesis' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_plugin_leaves_other_test_runs_alone(tmp_path):
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    assert 1 + 1 == 2\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout


# --------------------------------------------------------------------------
# The docs' property examples, under Hypothesis's default profile
# --------------------------------------------------------------------------


def _docs_property_examples() -> dict[str, Any]:
    import pathlib
    import re

    text = (pathlib.Path(__file__).parent.parent / "docs" / "testing.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "def test_hessians_agree" in b)
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/testing.md", "exec"), namespace)  # our own docs, as a user copies them
    return namespace


@pytest.mark.parametrize("name", ["test_backends_agree", "test_hessians_agree"])
def test_docs_property_examples_pass_under_the_default_profile(name):
    from hypothesis import settings as hsettings

    current = hsettings.get_current_profile_name()
    # Hypothesis's default profile (not diffkit's: what a user's project has), with fewer
    # examples to keep this quick; the example's own @settings(deadline=None) applies on top
    from hypothesis import HealthCheck

    # (too_slow: drawing a function takes longer on a loaded machine than the health check's
    # one second at times; that says nothing about the property)
    hsettings.register_profile("docs-default", hsettings.get_profile("default"), max_examples=15,
                               database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    hsettings.load_profile("docs-default")
    try:
        _docs_property_examples()[name]()
    finally:
        hsettings.load_profile(current)


def test_logaddexp_false_alarm_is_gone():
    # Once: numeric 2.68e-11 against an exact 0 with tol 1.89e-11 in the Hessian of
    # logaddexp(x, x)**2 = (x + log 2)**2 at (0, 2); the exact Hessian is [[2, 0], [0, 0]]
    f = dk.Function.parse("logaddexp(x, x)**2", variables=("x", "y"))
    rep = dk.crosscheck(f, (0.0, 2.0), "hessian", argnums=(0, 1), time_budget=0)
    assert rep.ok, rep
    np.testing.assert_allclose(rep.reference.value, [2.0, 0.0, 0.0, 0.0], atol=1e-15)
    numeric = rep.row("numeric")
    assert numeric.verdict == "ok" and abs(numeric.value[0] - 2.0) < 1e-9


def test_shrinking_reaches_the_minimal_expression_small():
    from diffkit.bench import shrink

    rows = shrink.run(seeds=4, targets={"log": "log(1 + x**2)", "exp": "exp(tanh(x))"})
    assert shrink.summary(rows) == (8, 8), rows
