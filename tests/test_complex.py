"""Complex numbers (docs/complex.md): JAX's conventions on every backend.

1. Complex intermediates inside a real-valued function of real arguments give
   exact real derivatives on every backend: ``np.real``, ``np.imag``,
   ``np.conj``, ``np.abs`` and ``np.angle`` have their true rules, and the
   cross-check agrees.
2. ``holomorphic=True`` differentiates holomorphic functions of complex
   arguments (checked against cmath's derivatives); a real-valued function of a
   complex argument gets ``jax.grad``'s answer, ``df/dx - 1j df/dy`` (the JAX
   FAQ's ``f(z) = x**2 + y**2`` at ``3 + 4j`` gives ``6 - 8j``).
3. ``grad`` of a complex-valued output without ``holomorphic=True`` raises.

Every expected number is derived by hand in the comment next to it (evaluated
with cmath, math or mpmath at the binary value of the point).
"""

from __future__ import annotations

import cmath
import math
from typing import Any, Callable

import mpmath
import numpy as np
import pytest

import diffkit as dk
from diffkit.backends.base import Dropped
from diffkit.core.primitive import OUT, PRIMITIVES

BACKENDS = ("forward", "reverse", "compiled", "symbolic", "numeric")
AD = ("forward", "reverse", "compiled", "symbolic")
EPS = float(np.finfo(np.float64).eps)

RTOL = {"forward": 16 * EPS, "reverse": 16 * EPS, "compiled": 16 * EPS, "symbolic": 16 * EPS, "numeric": 1e-9}
"""The AD and symbolic backends evaluate a handful of correctly rounded operations (a
few ulps); the numeric backend's finite differences are good to about 1e-12 here
(complex step is refused: the functions take real or imaginary parts), 1e-9 leaves
room."""


def close(got: Any, want: Any, backend: str) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
    err = float(np.max(np.abs(got - want), initial=0.0))
    assert err <= RTOL[backend] * scale, f"{backend}: got {got}, want {want} (error {err:.2e})"


# ---------------------------------------------------------------------------
# 1. Complex intermediates, real arguments, real outputs
# ---------------------------------------------------------------------------


def phase(x: Any) -> Any:
    return np.imag(np.exp(1j * x))  # sin x


def transfer(w: Any, a: Any) -> Any:
    return np.sum(np.abs(1 / (1j * w + a)) ** 2)  # 1 / (w**2 + a**2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_imaginary_part_of_a_phase(backend: str) -> None:
    # d/dx Im(exp(ix)) = d/dx sin x = cos x; was 0.0 on every backend (np.imag gave zeros)
    g = dk.grad(phase, backend=backend)(0.3)
    assert type(g) is np.float64
    close(g, math.cos(0.3), backend)  # 0.955336489125606


@pytest.mark.parametrize("backend", BACKENDS)
def test_squared_modulus_of_a_transfer_function(backend: str) -> None:
    # |1/(iw + a)|**2 = 1/(w**2 + a**2): d/dw = -2w/(w**2 + a**2)**2 = -1.4/0.4225 = -3.31360946745562...,
    # d/da = -2a/(w**2 + a**2)**2 = -1.89349112426035...; forward and reverse gave the complex
    # 0.0510+3.8161j for d/dw, symbolic a TypeError
    with mpmath.workdps(50):
        w, a = mpmath.mpf(0.7), mpmath.mpf(0.4)
        dw, da = (float(-2 * v / (w**2 + a**2) ** 2) for v in (w, a))
    gw, ga = dk.grad(transfer, argnums=(0, 1), backend=backend)(0.7, 0.4)
    assert not np.iscomplexobj(gw) and not np.iscomplexobj(ga)
    close(gw, dw, backend)
    close(ga, da, backend)


CASES: list[tuple[str, Callable[[Any], Any], Callable[[float], float]]] = [
    # Re exp(ix) = cos x
    ("real", lambda x: np.real(np.exp(1j * x)), lambda x: -math.sin(x)),
    # Im conj(exp(ix)) = -sin x
    ("conj", lambda x: np.imag(np.conj(np.exp(1j * x))), lambda x: -math.cos(x)),
    ("conjugate", lambda x: np.imag(np.conjugate(np.exp(1j * x))), lambda x: -math.cos(x)),
    # the attributes: Im exp(ix) Im(conj(ix)) + Re(2ix) = sin x (-x) + 0: -sin x - x cos x
    ("attributes", lambda x: np.exp(1j * x).imag * np.conj(1j * x).imag + (2j * x).real,
     lambda x: -math.sin(x) - x * math.cos(x)),
    # |exp(ix) (x + 2i)| = sqrt(x**2 + 4): d/dx = x / sqrt(x**2 + 4)
    ("abs", lambda x: np.abs(np.exp(1j * x) * (x + 2j)), lambda x: x / math.sqrt(x * x + 4)),
    # arg(exp(ix) + 1/2): d arg w = Im(w'/w) = Re(exp(ix) / (exp(ix) + 1/2))
    ("angle", lambda x: np.angle(np.exp(1j * x) + 0.5),
     lambda x: (cmath.exp(1j * x) / (cmath.exp(1j * x) + 0.5)).real),
    ("angle-deg", lambda x: np.angle(np.exp(1j * x), deg=True), lambda x: 180.0 / math.pi),
    # a real value (|x e^{ix}| = x) fed back into complex arithmetic: Re exp(i|x e^{ix}|) = cos x;
    # the modulus's cotangent must be real (Re of i exp(iy) ct), or its rule mixes parts
    ("real-node-between", lambda x: np.real(np.exp(1j * np.abs(x * np.exp(1j * x)))), lambda x: -math.sin(x)),
    # Re(i Im(exp(ix))) = 0 for every x: derivative 0, not Im's -1j times i
    ("dead-imaginary", lambda x: np.real(1j * np.imag(np.exp(1j * x))) + x, lambda x: 1.0),
    # Im(exp(ix) * exp(ix)) = sin 2x
    ("product", lambda x: np.imag(np.exp(1j * x) * np.exp(1j * x)), lambda x: 2 * math.cos(2 * x)),
    # Re(1 / (1 + ix)) = 1 / (1 + x**2): d/dx = -2x / (1 + x**2)**2
    ("divide", lambda x: np.real(1.0 / (1.0 + 1j * x)), lambda x: -2 * x / (1 + x * x) ** 2),
    # Re(sqrt(ix)) = sqrt(x/2) for x > 0: d/dx = 1 / (2 sqrt(2x))
    ("sqrt", lambda x: np.real(np.sqrt(1j * x)), lambda x: 1 / (2 * math.sqrt(2 * x))),
    # Im(log(1 + ix)) = atan x: 1 / (1 + x**2)
    ("log", lambda x: np.imag(np.log(1.0 + 1j * x)), lambda x: 1 / (1 + x * x)),
    # Re(sin(ix)) = 0, Im(sin(x + i)) = cos x sinh 1
    ("sin", lambda x: np.imag(np.sin(x + 1j)), lambda x: -math.sin(x) * math.sinh(1.0)),
    # Im((x + i)**3) = 3x**2 - 1: 6x
    ("power", lambda x: np.imag((x + 1j) ** 3), lambda x: 6 * x),
    # Re(ix) + Im(2ix) = 2x: the parts of a value whose (co)tangent is still a plain number
    # (on the symbolic backend a SymPy number, whose NumPy real part would be itself)
    ("parts-of-constant-times", lambda x: np.real(1j * x) + np.imag(2j * x), lambda x: 2.0),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "f", "df"), CASES, ids=[c[0] for c in CASES])
def test_complex_intermediates(name: str, f: Callable[[Any], Any], df: Callable[[float], float],
                               backend: str) -> None:
    x = 0.7
    g = dk.grad(f, backend=backend)(x)
    assert not np.iscomplexobj(g), f"{name} on {backend}: a complex gradient {g} for a real argument"
    close(g, df(x), backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "f", "df"), CASES, ids=[c[0] for c in CASES])
def test_complex_intermediates_forward_derivative(name: str, f: Callable[[Any], Any],
                                                  df: Callable[[float], float], backend: str) -> None:
    # dk.derivative runs forward mode (on the symbolic backend over SymPy values)
    close(dk.derivative(f, backend=backend)(0.7), df(0.7), backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_second_derivative_through_complex_values(backend: str) -> None:
    # d2/dx2 sin x = -sin x
    d2 = dk.derivative(phase, order=2, backend=backend)(0.3)
    close(d2, -math.sin(0.3), backend if backend != "numeric" else "numeric")


@pytest.mark.parametrize("backend", BACKENDS)
def test_jacobian_through_complex_values(backend: str) -> None:
    # Im(exp(ix)) |x + i| = sin x sqrt(x**2 + 1), elementwise: a diagonal Jacobian
    x = np.array([0.3, 0.5, 1.1])
    jac = dk.jacobian(lambda v: np.imag(np.exp(1j * v)) * np.abs(v + 1j), backend=backend)(x)
    r = np.sqrt(x * x + 1)
    close(jac, np.diag(np.cos(x) * r + np.sin(x) * x / r), backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hessian_through_complex_values(backend: str) -> None:
    # 1/(w**2 + a**2), r = w**2 + a**2: d2/dw2 = (6w**2 - 2a**2)/r**3, d2/dwda = 8wa/r**3
    w, a = 0.7, 0.4
    r3 = (w * w + a * a) ** 3
    want = np.array([[6 * w * w - 2 * a * a, 8 * w * a], [8 * w * a, 6 * a * a - 2 * w * w]]) / r3
    h = dk.hessian(lambda v: transfer(v[0], v[1]), backend=backend)(np.array([w, a]))
    close(h, want, backend if backend != "numeric" else "numeric")


@pytest.mark.parametrize(("outer", "inner"), [("forward", "symbolic"), ("reverse", "symbolic"),
                                              ("forward", "reverse"), ("reverse", "forward")])
def test_nested_backends_through_complex_values(outer: str, inner: str) -> None:
    # d2/dw2 of 1/(w**2 + a**2) = (6w**2 - 2a**2)/(w**2 + a**2)**3; the inner symbolic
    # gradient keeps I and im(...) (its expressions are evaluated on the outer backend's values)
    w, a = 0.7, 0.4
    d2 = dk.jacobian(dk.grad(transfer, backend=inner), backend=outer)(w, a)
    close(d2, (6 * w * w - 2 * a * a) / (w * w + a * a) ** 3, "reverse")


def test_graph_shows_complex_values() -> None:
    g = dk.graph(phase, 0.3)
    assert [n.label for n in g.nodes] == ["x", "0+1j", "×", "exp", "imag"]
    close(g.nodes[0].grad, math.cos(0.3), "reverse")


@pytest.mark.parametrize("backend", [dk.Reverse(accelerate=False), dk.Forward(accelerate=False)], ids=repr)
@pytest.mark.parametrize(("name", "f", "df"), CASES, ids=[c[0] for c in CASES])
def test_textbook_paths_agree(name: str, f: Callable[[Any], Any], df: Callable[[float], float], backend: Any) -> None:
    close(dk.grad(f, backend=backend)(0.7), df(0.7), "reverse")


@pytest.mark.parametrize(("f", "args"), [(phase, (0.3,)), (transfer, (0.7, 0.4))], ids=["phase", "transfer"])
def test_crosscheck_agrees(f: Callable[..., Any], args: tuple[float, ...]) -> None:
    # for the phase it said "all backends agree" on 0.0 before
    report = dk.crosscheck(f, args=args, op="grad")
    assert report.ok, str(report)
    assert {r.backend: r.verdict for r in report.rows} == dict.fromkeys(BACKENDS, "ok"), str(report)


def test_numeric_refuses_complex_step_through_the_parts() -> None:
    r = dk.Numeric().gradient_result(phase, (0.3,))
    assert r.method == "richardson" and "imag is not complex-analytic" in r.reason
    assert abs(r.value - math.cos(0.3)) <= max(r.error, 1e-12)


def test_symbolic_expressions_are_real() -> None:
    assert str(dk.diff(phase)) == "cos(x)"
    # the symbols are real: Re, Im and Abs of expressions in them simplify or stay exact
    d = dk.diff(transfer, "w")
    w, a = sorted(d.free_symbols, key=str)[::-1]
    assert float(d.subs({w: 0.7, a: 0.4})) == pytest.approx(-1.4 / 0.4225, rel=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_array_methods(backend: str) -> None:
    # z = x e^{ix}: Re z . Im z + |conj z|**2 summed = sum x**2 (cos x sin x + 1):
    # d/dx_k = 2 x_k (cos sin + 1) + x_k**2 cos 2x_k
    x = np.array([0.3, 0.9])

    def f(v: Any) -> Any:
        z = v * np.exp(1j * v)
        return np.sum(z.real * z.imag + np.abs(z.conj()) ** 2)

    want = 2 * x * (np.cos(x) * np.sin(x) + 1) + x * x * np.cos(2 * x)
    close(dk.grad(f, backend=backend)(x), want, backend)


def test_real_parts_of_real_values_are_the_values() -> None:
    # np.real / np.conj of a real value are the value itself, np.imag and np.angle constants
    for backend in BACKENDS:
        assert float(dk.grad(lambda x: np.real(x) * np.conj(x), backend=backend)(1.5)) == pytest.approx(3.0)
        assert float(dk.grad(lambda x: np.imag(x) + np.angle(x) + x, backend=backend)(-1.5)) == pytest.approx(1.0)


# ---------------------------------------------------------------------------
# 2. Complex arguments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_holomorphic_exp(backend: str) -> None:
    g = dk.grad(np.exp, holomorphic=True, backend=backend)(1 + 1j)
    close(g, cmath.exp(1 + 1j), backend)  # 1.4686939399158851+2.2873552871788423j
    if backend != "numeric":
        assert g == cmath.exp(1 + 1j)


@pytest.mark.parametrize("backend", BACKENDS)
def test_holomorphic_composite(backend: str) -> None:
    # f = sin(z) z**2 / (1 + z): f' = (cos z z**2 + 2 z sin z)/(1 + z) - sin z z**2/(1 + z)**2
    z = 0.5 - 2j
    want = (cmath.cos(z) * z * z + 2 * z * cmath.sin(z)) / (1 + z) - cmath.sin(z) * z * z / (1 + z) ** 2
    g = dk.grad(lambda v: np.sin(v) * v**2 / (1 + v), holomorphic=True, backend=backend)(z)
    close(g, want, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_holomorphic_jacobian(backend: str) -> None:
    # z sin z elementwise: diag(sin z + z cos z)
    z = np.array([1 + 1j, 0.5 - 2j])
    jac = dk.jacobian(lambda v: np.sin(v) * v, holomorphic=True, backend=backend)(z)
    want = np.diag([cmath.sin(v) + v * cmath.cos(v) for v in z])
    close(jac, want, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_jax_convention_for_real_valued_functions(backend: str) -> None:
    # The JAX FAQ's example: f(z) = x**2 + y**2 at z = 3 + 4j, grad = df/dx - 1j df/dy = 6 - 8j
    # (2 conj z), also when written with the modulus
    fs = (lambda z: np.real(z) ** 2 + np.imag(z) ** 2, lambda z: np.abs(z) ** 2)
    for f in fs:
        close(dk.grad(f, backend=backend)(3 + 4j), 6 - 8j, backend)
    # d|z| = conj(z)/|z| = 0.6 - 0.8j; 0 at 0 (the kink convention)
    close(dk.grad(np.abs, backend=backend)(3 + 4j), 0.6 - 0.8j, backend)
    assert dk.grad(np.abs, backend=backend)(0j) == 0
    # arg z = atan2(y, x): df/dx - 1j df/dy = (-y - 1j x)/|z|**2 = -1j / z = -0.16 - 0.12j
    close(dk.grad(np.angle, backend=backend)(3 + 4j), -1j / (3 + 4j), backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_holomorphic_promise_broken_gives_jax_answer(backend: str) -> None:
    # The FAQ: grad(conj, holomorphic=True)(3 + 4j) is the gradient of Re(conj z) = x: 1
    close(dk.grad(np.conj, holomorphic=True, backend=backend)(3 + 4j), 1.0 + 0j, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_complex_and_real_arguments_together(backend: str) -> None:
    # |z x|**2 = x**2 |z|**2 at x = 0.5, z = 1 + 1j: d/dx = 2x|z|**2 = 2, d/dz = 2x**2 conj z = 0.5 - 0.5j
    gx, gz = dk.grad(lambda x, z: np.abs(z * x) ** 2, argnums=(0, 1), backend=backend)(0.5, 1 + 1j)
    assert not np.iscomplexobj(gx)
    close(gx, 2.0, backend)
    close(gz, 0.5 - 0.5j, backend)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_jvp_and_vjp_of_a_nonholomorphic_function(backend: str) -> None:
    # f(z) = conj(z) z**2 = |z|**2 z = u + iv, u = x**3 + x y**2, v = x**2 y + y**3, at 3 + 4j:
    # u_x = 43, u_y = 24, v_x = 24, v_y = 57.
    # JVP along 1 + 2j: (43 + 2*24) + 1j (24 + 2*57) = 91 + 138j
    f = lambda z: np.conj(z) * z**2  # noqa: E731
    out, t = dk.jvp(f, (3 + 4j,), (1 + 2j,), backend=backend)
    assert out == (3 - 4j) * (3 + 4j) ** 2 and t == pytest.approx(91 + 138j, rel=1e-15)
    # VJP at c + di = 1 - 1j: c (u_x - i u_y) - d (v_x - i v_y) = 43 - 24j + 24 - 57j = 67 - 81j
    (ct,) = dk.vjp(f, 3 + 4j, backend=backend)[1](1 - 1j)
    assert ct == pytest.approx(67 - 81j, rel=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_jvp_of_a_real_valued_function_of_a_complex_argument(backend: str) -> None:
    # d|z|**2 = 2x dx + 2y dy: at 3 + 4j along 1 + 2j, 6 + 16 = 22
    out, t = dk.jvp(lambda z: np.abs(z) ** 2, (3 + 4j,), (1 + 2j,), backend=backend)
    close(out, 25.0, backend)
    close(t, 22.0, backend)


@pytest.mark.parametrize("backend", ("forward", "reverse", "compiled"))
def test_vjp_of_a_real_argument_is_real(backend: str) -> None:
    # exp(ix): J = i exp(ix); the cotangent of x for c: Re(c i exp(ix)) (JAX's convention)
    (ct,) = dk.vjp(lambda x: np.exp(1j * x), 0.3, backend=backend)[1](2 - 1j)
    assert not np.iscomplexobj(ct)
    assert ct == pytest.approx(((2 - 1j) * 1j * cmath.exp(0.3j)).real, rel=1e-15)


def test_complex_gradients_keep_complex_dtypes() -> None:
    for backend in BACKENDS:
        z = np.array([1 + 2j, 3 - 1j], dtype=np.complex64)
        g = dk.grad(lambda v: np.sum(np.abs(v) ** 2), backend=backend)(z)
        assert g.dtype == np.complex64, backend
        np.testing.assert_allclose(g, 2 * np.conj(z), rtol=1e-5)
    # the reverse backend's cotangent of Re z is a complex number, as JAX's
    assert type(dk.grad(np.real)(1 + 1j)) is np.complex128


# ---------------------------------------------------------------------------
# 3. Errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_of_a_complex_output_needs_holomorphic(backend: str) -> None:
    def rotate(x: Any) -> Any:
        return np.exp(1j * x)

    with pytest.raises(dk.DiffkitError) as info:
        dk.grad(rotate, backend=backend)(0.3)
    msg = str(info.value)
    assert isinstance(info.value, TypeError)
    assert "rotate" in msg and backend in msg and "complex" in msg
    if backend != "numeric":  # the numeric backend says it differentiates real-valued functions
        assert isinstance(info.value, dk.InvalidType) and "holomorphic=True" in msg
    with pytest.raises(dk.DiffkitError):
        dk.grad(np.exp, backend=backend)(1 + 1j)
    with pytest.raises(dk.DiffkitError):
        dk.jacobian(rotate, backend=backend)(np.array([0.3, 0.4]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_holomorphic_needs_complex_arguments_and_outputs(backend: str) -> None:
    with pytest.raises(dk.InvalidType, match="complex arguments"):
        dk.grad(np.exp, holomorphic=True, backend=backend)(1.0)
    with pytest.raises(dk.InvalidType, match="complex-valued"):
        dk.grad(np.abs, holomorphic=True, backend=backend)(1 + 1j)


@pytest.mark.parametrize("backend", BACKENDS)
def test_higher_derivatives_refuse_complex_arguments(backend: str) -> None:
    with pytest.raises(dk.InvalidType, match="complex argument"):
        dk.hessian(lambda z: np.abs(z) ** 2, backend=backend)(1 + 1j)
    with pytest.raises(dk.InvalidType, match="complex argument"):
        dk.derivative(np.exp, backend=backend)(1 + 1j)


def test_nested_holomorphic_gradients() -> None:
    # (z**3)'' = 6z
    for backend in AD:
        g2 = dk.grad(dk.grad(lambda z: z**3, holomorphic=True, backend=backend), holomorphic=True,
                     backend=backend)(1 + 2j)
        assert g2 == pytest.approx(6 + 12j, rel=1e-15)


# ---------------------------------------------------------------------------
# The table's complex rules read only what they declare (tests/test_table.py, on
# complex points)
# ---------------------------------------------------------------------------

COMPLEX_RULES = ["absolute", "angle", "real", "imag", "conj", "exp", "log", "sin", "sqrt", "tanh",
                 "multiply", "divide", "square", "reciprocal"]


@pytest.mark.parametrize("name", COMPLEX_RULES)
def test_complex_rules_read_only_what_saves_declares(name: str) -> None:
    prim = PRIMITIVES[name]
    rng = np.random.default_rng(11)
    args = tuple(rng.normal(size=3) + 1j * rng.normal(size=3) + 0.5 for _ in range(prim.nargs))
    out = prim.numpy(*args)
    ct = np.ones(np.shape(out)) * (1.0 if np.isrealobj(out) else 1 - 0.5j)
    for j, saved in enumerate(prim.saves):
        full = prim.vjp_rule(j)(ct, out, *args)
        kept = [a if k in saved else Dropped(np.shape(a)) for k, a in enumerate(args)]
        o = out if OUT in saved else Dropped(np.shape(out))
        np.testing.assert_allclose(prim.vjp_rule(j)(ct, o, *kept), full, rtol=1e-15, atol=0)


@pytest.mark.parametrize("name", COMPLEX_RULES)
def test_complex_vjp_is_the_transpose_of_the_jvp(name: str) -> None:
    # JAX's pairing <a, b> = Re(sum(a * b)): Re<vjp(c), t> = Re<c, jvp(t)> for every c and t
    prim = PRIMITIVES[name]
    rng = np.random.default_rng(12)
    args = tuple(rng.normal(size=3) + 1j * rng.normal(size=3) + 0.5 for _ in range(prim.nargs))
    out = prim.numpy(*args)
    c = rng.normal(size=3) + (1j * rng.normal(size=3) if np.iscomplexobj(out) else 0)
    for j in range(prim.nargs):
        t = rng.normal(size=3) + 1j * rng.normal(size=3)
        lhs = np.sum(prim.vjp[j](c, out, *args) * t).real
        rhs = np.sum(c * prim.jvp[j](t, out, *args)).real
        assert lhs == pytest.approx(rhs, rel=1e-13, abs=1e-13), (name, j)
