"""The reference is independent of the table's derivative rules, and the causes name the truth.

Truths here are hand derivations or SymPy's own ``diff``; the point of these
tests is that a wrong rule in the table cannot hide behind an agreement of the
backends that share it.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import diffkit as dk
from diffkit.harness.reference import AD_AGREEMENT, NUMERIC, SYMBOLIC, DagDerivative, reference


@pytest.fixture
def softsign():
    """softsign(x) = x / (1 + |x|), d/dx = 1 / (1 + |x|)^2; a wrong and a right registration."""
    made = []

    def make(partial):
        name = f"softsign_{len(made)}"
        fn = dk.primitive(name, lambda x: x / (1 + np.abs(x)), sympy=lambda x: x / (1 + sympy.Abs(x)),
                          partials=(partial,))
        made.append(fn)
        return fn

    yield make
    for fn in made:
        fn.unregister()


x, y, z = sympy.symbols("x y z", real=True)


@pytest.mark.parametrize("expr", [
    sympy.sin(x) * sympy.exp(y) + x ** 2 * y,
    sympy.log(1 + x ** 2) / (1 + sympy.Abs(y)),
    sympy.Max(x, y) * z + sympy.Min(x * z, y),
    sympy.atan2(y, x) * sympy.sqrt(x ** 2 + y ** 2 + z ** 2),
    sympy.Piecewise((x ** 3, x > y), (sympy.cos(y) * x, True)),
    sympy.re(sympy.exp(sympy.I * x) * y) + sympy.im(sympy.exp(sympy.I * z)),
])
def test_dag_derivative_is_sympys_own(expr):
    d = DagDerivative([x, y, z])
    got = d.tangent(expr)
    point = {x: sympy.Rational(3, 10), y: sympy.Rational(-7, 10), z: sympy.Rational(6, 5)}
    for k, s in enumerate((x, y, z)):
        want = sympy.diff(expr, s).subs(point)
        have = got.get(k, sympy.S.Zero).subs(point)
        assert abs(complex(sympy.N(want - have, 30))) < 1e-25, (s, want, have)


def test_dag_derivative_memoises_shared_subexpressions():
    # the logistic map: the expression is a DAG of n nodes, its tree exponentially large
    e = x
    for _ in range(12):
        e = 4 * e * (1 - e)
    d = DagDerivative([x])
    t = d.tangent(e)[0]
    assert len(d.memo) < 100  # one entry per distinct subexpression
    assert abs(float(t.subs(x, sympy.Rational(1, 10))) - float(sympy.diff(e, x).subs(x, sympy.Rational(1, 10)))) \
        < 1e-6 * abs(float(t.subs(x, sympy.Rational(1, 10))))


def test_a_wrong_partial_is_caught_by_the_independent_reference(softsign):
    bad = softsign(lambda out, x: 1 / (1 + np.abs(x)))  # missing the square
    rep = dk.crosscheck(lambda x: bad(x) * x, (0.7,), "derivative")
    assert rep.reference.kind == SYMBOLIC
    assert rep.reference.value[0] == pytest.approx(0.7 / 1.7 + 0.7 / 1.7 ** 2, rel=1e-15)
    for b in ("forward", "reverse", "symbolic"):  # all three read the wrong partial
        assert (rep.row(b).verdict, rep.row(b).cause) == ("fail", "likely bug"), rep.row(b).message
    assert rep.row("numeric").verdict == "ok"
    assert not rep.ok


def test_a_right_partial_agrees_everywhere(softsign):
    good = softsign(lambda out, x: 1 / (1 + np.abs(x)) ** 2)
    rep = dk.crosscheck(lambda x, y: np.sum(good(x) * y), (np.array([0.7, -0.2]), 2.0), "grad", argnums=(0, 1))
    assert rep.reference.kind == SYMBOLIC and rep.ok
    np.testing.assert_allclose(rep.row("reverse").value, [2 / 1.7 ** 2, 2 / 1.2 ** 2, 0.7 / 1.7 - 0.2 / 1.2],
                               rtol=1e-14)


def test_a_kink_elsewhere_does_not_excuse_a_wrong_element(softsign):
    bad = softsign(lambda out, x: 1 / (1 + np.abs(x)))
    # |x0| has its kink at x0 = 0 (element 0); the wrong partial is at element 1
    rep = dk.crosscheck(lambda v: np.abs(v[0]) + bad(v[1]), (np.array([0.0, 0.5]),), "grad")
    assert rep.kinks
    for b in ("forward", "reverse"):
        row = rep.row(b)
        assert (row.verdict, row.cause, row.worst_index) == ("fail", "likely bug", 1), row.message


def test_a_kink_at_the_element_is_a_convention():
    rep = dk.crosscheck(lambda v: np.maximum(v[0], v[1]) * v[0] + v[2] ** 2, (np.array([-0.5, -0.5, 1.0]),),
                        "grad", backends=["numeric", "reverse"])
    assert rep.ok


def test_mpmath_reference_where_sympy_has_no_form():
    a = np.array([[2.0, 1.0], [1.0, 3.0]])
    F = dk.Function(lambda a: np.linalg.eigh(a)[0][-1])
    ref = reference(F, (a,), "grad", 0)
    assert ref.kind == NUMERIC
    # lambda_max = (5 + sqrt 5)/2; its eigenvector v: d lambda / d a_ij as NumPy reads A (lower
    # triangle): v0^2, 0, 2 v0 v1, v1^2
    lam = (5 + np.sqrt(5)) / 2
    v = np.array([1.0, lam - 2.0])
    v /= np.linalg.norm(v)
    np.testing.assert_allclose(ref.value, [v[0] ** 2, 0.0, 2 * v[0] * v[1], v[1] ** 2], rtol=1e-14, atol=1e-15)
    assert np.all(ref.error < 1e-25)


def test_mpmath_reference_refuses_work_beyond_its_budget_before_starting():
    import time

    from diffkit.harness import mp_numeric

    # eigh has no SymPy form, so the mpmath reference is next: 2 x 2 x 900 evaluations of a
    # 30 x 30 eigenproblem in 60 digits would take hours; counting float operations says so
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 30))
    F = dk.Function(lambda a: np.linalg.eigh(a + a.T)[0][-1], name="top")
    start = time.perf_counter()
    with pytest.raises(dk.SizeLimitError, match=r"3,600 evaluations of top in 60 digits \(grad in 900 variables\)"):
        mp_numeric.numeric_derivative(F, (a,), "grad", (0,))
    ref = reference(F, (a,), "grad", 0)
    assert ref.kind == "none" and "BUDGET" in ref.note
    assert time.perf_counter() - start < 5.0
    assert mp_numeric.evaluations("hessian", 3) == 3 * 3 + 4 * 3  # 3 diagonal, 3 mixed pairs


def test_reference_of_jvp_and_vjp_is_contracted_exactly():
    F = dk.Function(lambda u, w: np.sin(u) * w)
    t = [0.25, -0.5]
    ref = reference(F, (0.3, 2.0), "jvp", 0, tangents=t)
    assert ref.value[0] == pytest.approx(np.cos(0.3) * 2.0 * 0.25 + np.sin(0.3) * -0.5, rel=1e-15)
    ref = reference(F, (0.3, 2.0), "vjp", 0, cotangent=3.0)
    np.testing.assert_allclose(ref.value, [3 * np.cos(0.3) * 2.0, 3 * np.sin(0.3)], rtol=1e-15)


def test_ad_agreement_is_the_labelled_last_resort():
    import math

    @dk.custom_jvp
    def erf(x):  # math.erf: neither SymPy nor mpmath can run it on their numbers
        return math.erf(x)

    @erf.defjvp
    def erf_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return math.erf(x), 2.0 / math.sqrt(math.pi) * math.exp(-x * x) * t

    truth = 2.0 / math.sqrt(math.pi) * math.exp(-0.25)
    ref = reference(dk.Function(erf), (0.5,), "derivative", 0, ad=lambda b: np.array([truth]))
    assert ref.kind == AD_AGREEMENT and "weak" in ref.kind
    assert "no symbolic reference" in ref.note and "no mpmath reference" in ref.note
    assert not dk.harness.report.Reference(ref.value, ref.kind).independent


def test_infinite_derivative_is_a_domain_edge():
    # NumPy's arithmetic (the plain paths): 0.5 / sqrt(0) is inf
    rep = dk.crosscheck("sqrt(x)", (0.0,), "derivative",
                        backends=["symbolic", "numeric", dk.Forward(accelerate=False), dk.Reverse(accelerate=False)])
    assert rep.reference.kind == SYMBOLIC and rep.reference.value[0] == np.inf
    for b in ("forward", "reverse", "symbolic"):
        assert rep.row(b).verdict == "ok" and rep.row(b).value == [np.inf]
    assert (rep.row("numeric").verdict, rep.row("numeric").cause) == ("fail", "domain edge")


def test_reference_error_survives_json():
    rep = dk.crosscheck(lambda a: np.linalg.eigh(a)[0][-1], (np.array([[2.0, 1.0], [1.0, 3.0]]),), "grad",
                        backends=["reverse"], time_budget=0)
    back = dk.Report.from_json(rep.to_json())
    assert back.reference.kind == NUMERIC
    np.testing.assert_allclose(back.reference.error, rep.reference.error)


def test_a_function_undefined_at_the_point_is_not_judged():
    # sqrt(x - 2) at 1: no real value, no derivative; every backend's NaN is no failure
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = dk.crosscheck(lambda x: np.sqrt(x - 2.0) + x, (1.0,), "derivative", time_budget=0)
    assert rep.reference.kind == SYMBOLIC and np.isnan(rep.reference.value[0])
    assert rep.ok
    assert all("no derivative" in (r.message or "") for r in rep.rows)
