"""Tests of THE primitive table ``diffkit.primitives.PRIMITIVES`` on the AD backends.

Every rule in the table is checked against an independent reference:

1. elementwise primitives: first partial derivatives on the ``forward`` and
   ``reverse`` backends against the SymPy derivative of the entry's own
   ``sympy`` counterpart, evaluated with mpmath at 50 digits, at fixed points
   inside the entry's ``domain``; the SymPy counterpart itself is checked
   against ``mpmath.diff`` of its lambdified form, so a wrong ``sympy`` field
   cannot hide a wrong rule;
2. second derivatives by nesting (``dk.derivative(order=2)`` and a mixed
   ``dk.hessian`` for binary primitives) against SymPy;
3. batched tangents/cotangents: a diagonal ``dk.jacobian`` of a vector;
4. structural and linear-algebra primitives: the transpose identity
   ``<v, J u> == <J^T v, u>`` between forward-mode JVP and reverse-mode VJP,
   and the full Jacobian of both backends against each other and against a
   central finite difference;
5. the conventions at kinks (docs/conventions.md) and their SymPy agreement;
6. completeness of the table and ``UnsupportedOperation`` outside it;
7. float32 inputs keep their dtype and float32 accuracy.

Tolerances are derived from the floating-point epsilon of the dtype (see the
constants below); every point is fixed, and the few random arrays come from a
seeded generator.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np
import pytest
import sympy

import diffkit as dk
from diffkit.primitives import PRIMITIVES, Primitive

# ---------------------------------------------------------------------------
# Tolerances
# ---------------------------------------------------------------------------

EPS = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)

RTOL1 = 64 * EPS
"""First derivatives: a rule evaluates a handful of correctly rounded operations
on an exact float input (the reference gets the same binary value), so a few
ulps, times a safety factor for mildly ill-conditioned partials such as
``1 / (1 - x*x)``."""

RTOL2 = 1024 * EPS
"""Second derivatives: two nested rule evaluations, each a few ulps, where the
second one differentiates an already rounded first partial (``1 + tan(x)**2``
from a rounded ``tan``) and may cancel (``1/r - x**2/r**3`` for hypot)."""

ATOL = np.finfo(np.float64).tiny
"""Where the exact derivative is 0 (``sign``, a losing ``maximum`` argument, a
constant partial) the rules must give an exact 0: only underflow is forgiven."""

MP_DPS = 50
"""Working precision of the references (digits)."""

MP_RTOL = mpmath.mpf(10) ** -30
"""SymPy derivative vs ``mpmath.diff`` at 50 digits: numerical differentiation
at that precision keeps well over 30 correct digits (its step is chosen from
the working precision), and a wrong counterpart is off in the leading digits."""

RTOL_AD = 256 * EPS
"""Forward vs reverse full Jacobians and the transpose identity: the same
products accumulated in a different order (forward sums over the inputs,
reverse over the outputs); ~1e-13 relative to the size of the Jacobian."""

FD_RTOL = 1e-6
"""Central finite differences with step h = eps**(1/3) * max(1, |x|): the
truncation error O(h**2 f''') and the round-off O(eps / h) are both about
eps**(2/3) ~ 4e-11 for the O(1) functions used here; 1e-6 leaves room for
third derivatives of matrix functions (inv, solve, eigh) of up to ~1e4."""

FD_STEP = EPS ** (1.0 / 3.0)
"""Optimal central-difference step for a smooth O(1) function (see FD_RTOL)."""

BACKENDS = ("forward", "reverse", "symbolic")

# ---------------------------------------------------------------------------
# The table, split by what can be tested how
# ---------------------------------------------------------------------------

SYMPY_UNDIFFERENTIABLE = frozenset({"remainder", "fmod"})
"""SymPy leaves ``Derivative(Mod(x, y), y)`` and ``Derivative(floor(u), u)`` unevaluated, so
the SymPy references below cannot serve; tests/test_numpy_coverage.py checks their rules
against finite differences and by hand, on every backend."""
ELEMENTWISE = sorted(
    name for name, p in PRIMITIVES.items()
    if p.elementwise and p.differentiable and name != "where"  # where: test_where_* below
    and name not in SYMPY_UNDIFFERENTIABLE
)
UNARY = [n for n in ELEMENTWISE if PRIMITIVES[n].nargs == 1]
BINARY = [n for n in ELEMENTWISE if PRIMITIVES[n].nargs == 2]

NONSMOOTH = frozenset({"absolute", "sign", "maximum", "minimum", "max", "min", "remainder", "fmod"})
"""Differentiable primitives with a kink convention (docs/conventions.md)."""

OTHER_KINKED = frozenset({"where", "eigh_packed", "hypot", "angle", "svd_packed", "svd_values", "pinv",
                          "eigvals", "eig_packed", "pinv_cut", "qr_packed"})
"""Also carry a ``kink`` note, legitimately: ``where`` selects a branch (it is in
docs/conventions.md), ``eigh_packed`` is not differentiable at repeated
eigenvalues, ``svd_packed`` and ``svd_values`` at repeated singular values, ``eigvals`` and ``eig_packed`` at repeated eigenvalues, ``pinv`` and ``pinv_cut`` where
the rank changes, ``qr_packed`` at triangular matrices (LAPACK's signs jump), ``hypot`` and ``angle`` at the origin. Every non-differentiable (piecewise-constant) entry has one too."""

# ---------------------------------------------------------------------------
# Points inside a domain
# ---------------------------------------------------------------------------

FRACTIONS = (0.15, 0.4, 0.65, 0.85)
"""Fractions of a finite interval: 15% margin from each end."""

HALF_LINE_OFFSETS = (0.35, 0.8, 1.7, 2.6)
"""Distances from the finite end of a half-line: a margin of 0.35 and moderate
values (exp and cosh of these stay O(10)); chosen so that no point is 1.0 for
the (0.1, inf) base of ``power``, where d/dy x**y would be exactly 0."""

LINE_POINTS = (-1.9, -0.6, 0.45, 1.3)
"""On the whole line: moderate (exp, sinh, cosh stay O(10)) and nonzero, away from
the kinks of abs and sign at 0."""


def domain_points(lo: float, hi: float) -> tuple[float, ...]:
    """Four fixed points strictly inside the open interval (lo, hi)."""
    if math.isfinite(lo) and math.isfinite(hi):
        return tuple(lo + (hi - lo) * f for f in FRACTIONS)
    if math.isfinite(lo):
        return tuple(lo + d for d in HALF_LINE_OFFSETS)
    if math.isfinite(hi):
        return tuple(hi - d for d in HALF_LINE_OFFSETS)
    return LINE_POINTS


def sample_points(prim: Primitive) -> list[tuple[float, ...]]:
    """Points (one float per argument) inside the entry's domain.

    The points of argument k are taken in reverse order for odd k, so two
    arguments with the same domain never coincide: maximum/minimum are tested
    away from their ties here (ties have their own test).
    """
    per_arg = [domain_points(lo, hi) for lo, hi in prim.domain]
    per_arg = [pts[::-1] if k % 2 else pts for k, pts in enumerate(per_arg)]
    return list(zip(*per_arg))


# ---------------------------------------------------------------------------
# SymPy / mpmath references
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def symbolic(name: str) -> tuple[tuple[sympy.Symbol, ...], sympy.Expr]:
    """Real symbols and the entry's SymPy counterpart applied to them."""
    prim = PRIMITIVES[name]
    syms = sympy.symbols(" ".join(f"x{k}" for k in range(prim.nargs)), real=True, seq=True)
    return tuple(syms), prim.sympy(*syms)


@functools.lru_cache(maxsize=None)
def sym_derivative(name: str, wrt: tuple[int, ...]) -> sympy.Expr:
    """The partial derivative of the counterpart w.r.t. the arguments in ``wrt`` (in order)."""
    syms, expr = symbolic(name)
    for k in wrt:
        expr = sympy.diff(expr, syms[k])
    return expr


def mp_eval(expr: sympy.Expr, syms: tuple[sympy.Symbol, ...], point: tuple[float, ...]) -> mpmath.mpf:
    """``expr`` at ``point`` (exact binary floats) to MP_DPS digits."""
    subs = {s: sympy.Float(p, MP_DPS) for s, p in zip(syms, point)}
    value = expr.evalf(MP_DPS, subs=subs)
    assert value.is_real, f"{expr} at {point} is not a real number: {value}"
    with mpmath.workdps(MP_DPS):
        return mpmath.mpf(value)


@functools.lru_cache(maxsize=None)
def reference(name: str, wrt: tuple[int, ...], point: tuple[float, ...]) -> float:
    """The SymPy derivative at ``point``, rounded once to float64 from 50 digits."""
    syms, _ = symbolic(name)
    return float(mp_eval(sym_derivative(name, wrt), syms, point))


def assert_close(actual: Any, expected: float, rtol: float, atol: float = ATOL, what: str = "") -> None:
    """|actual - expected| <= rtol * |expected| + atol, with a message naming the case."""
    a = float(actual)
    err = abs(a - expected)
    assert err <= rtol * abs(expected) + atol, (
        f"{what}: got {a!r}, expected {expected!r}; abs error {err:.3e}, "
        f"rel error {err / abs(expected) if expected else math.inf:.3e} (rtol {rtol:.1e})")


def ufunc(name: str) -> Callable[..., Any]:
    """``np.<name>``, the NumPy spelling a user writes."""
    return getattr(np, name)


# ---------------------------------------------------------------------------
# 1. First derivatives of elementwise primitives vs SymPy in 50-digit mpmath
# ---------------------------------------------------------------------------

PARTIALS = [(n, k) for n in ELEMENTWISE for k in range(PRIMITIVES[n].nargs)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "argnum"), PARTIALS, ids=[f"{n}-d{k}" for n, k in PARTIALS])
def test_first_derivative_matches_sympy(name: str, argnum: int, backend: str) -> None:
    prim = PRIMITIVES[name]
    np_fn = ufunc(name)
    g = dk.grad(lambda *a: np_fn(*a), argnums=argnum, backend=backend)
    for point in sample_points(prim):
        assert_close(g(*point), reference(name, (argnum,), point), RTOL1,
                     what=f"d{name}/dx{argnum} at {point} on {backend}")


@pytest.mark.parametrize(("name", "argnum"), PARTIALS, ids=[f"{n}-d{k}" for n, k in PARTIALS])
def test_sympy_counterpart_matches_mpmath_diff(name: str, argnum: int) -> None:
    """The ``sympy`` field is the function ``numpy`` computes, and SymPy differentiates it right.

    Two independent checks of the reference used above: the counterpart's value
    equals NumPy's (to float64 rounding), and its SymPy derivative equals
    ``mpmath.diff`` of the lambdified counterpart.
    """
    prim = PRIMITIVES[name]
    syms, expr = symbolic(name)
    mp_fn = sympy.lambdify(syms, expr, "mpmath")
    deriv = sym_derivative(name, (argnum,))
    order = tuple(1 if k == argnum else 0 for k in range(prim.nargs))
    for point in sample_points(prim):
        value = float(mp_eval(expr, syms, point))
        assert_close(prim.numpy(*point), value, RTOL1, what=f"{name}{point} vs its sympy field")
        with mpmath.workdps(MP_DPS):
            args = [mpmath.mpf(p) for p in point]
            numeric = mpmath.diff(mp_fn, args[0], 1) if prim.nargs == 1 else mpmath.diff(mp_fn, args, order)
            exact = mp_eval(deriv, syms, point)
            assert abs(numeric - exact) <= MP_RTOL * abs(exact) + mpmath.mpf(10) ** -MP_DPS, (
                f"d{name}/dx{argnum} at {point}: SymPy {exact}, mpmath.diff {numeric}")


# ---------------------------------------------------------------------------
# 2. Second derivatives by nesting
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", UNARY)
def test_second_derivative_matches_sympy(name: str, backend: str) -> None:
    np_fn = ufunc(name)
    d2 = dk.derivative(lambda x: np_fn(x), order=2, backend=backend)
    for point in sample_points(PRIMITIVES[name]):
        assert_close(d2(point[0]), reference(name, (0, 0), point), RTOL2,
                     what=f"{name}'' at {point[0]} on {backend}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", BINARY)
def test_mixed_hessian_matches_sympy(name: str, backend: str) -> None:
    np_fn = ufunc(name)
    hess = dk.hessian(lambda v: np_fn(v[0], v[1]), backend=backend)
    for point in sample_points(PRIMITIVES[name]):
        h = hess(np.array(point))
        assert h.shape == (2, 2)
        expected = np.array([[reference(name, (i, j), point) for j in range(2)] for i in range(2)])
        # Norm-wise tolerance: an entry that is small only by cancellation
        # (hypot's d2/dx2 = y**2/r**3) carries the rounding of the larger ones.
        scale = float(np.max(np.abs(expected)))
        for i in range(2):
            for j in range(2):
                assert_close(h[i, j], expected[i, j], RTOL2, atol=RTOL2 * scale + ATOL,
                             what=f"d2 {name}/dx{i}dx{j} at {point} on {backend}")


# ---------------------------------------------------------------------------
# 3. Batched tangents / cotangents: the diagonal Jacobian of a vector
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", UNARY)
def test_batched_jacobian_is_diagonal(name: str, backend: str) -> None:
    points = sample_points(PRIMITIVES[name])[:3]
    x = np.array([p[0] for p in points])
    np_fn = ufunc(name)
    jac = dk.jacobian(lambda v: np_fn(v), backend=backend)(x)
    assert jac.shape == (3, 3)
    off = jac[~np.eye(3, dtype=bool)]
    assert np.all(off == 0.0), f"{name}: off-diagonal Jacobian entries {off} on {backend}"
    for k, p in enumerate(points):
        assert_close(jac[k, k], reference(name, (0,), p), RTOL1, what=f"{name}' at {p[0]} (batched) on {backend}")


# ---------------------------------------------------------------------------
# 4. Structural and linear-algebra primitives: <v, J u> == <J^T v, u>
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A small function of one or more arrays exercising a non-elementwise primitive."""

    id: str
    fn: Callable[..., Any]
    args: tuple[np.ndarray, ...]


def _rand(shape: tuple[int, ...], seed: int, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    """A fixed pseudo-random array (seeded per case, so cases are independent)."""
    return np.random.default_rng(seed).uniform(lo, hi, size=shape)


def _spd(n: int, seed: int) -> np.ndarray:
    """A symmetric positive-definite matrix with well-separated eigenvalues."""
    q, _ = np.linalg.qr(_rand((n, n), seed))
    return (q * np.arange(1.0, n + 1.0)) @ q.T  # eigenvalues 1, 2, ..., n


def _general(n: int, seed: int) -> np.ndarray:
    """A well-conditioned, non-symmetric square matrix."""
    return _rand((n, n), seed) + n * np.eye(n)


def _sym(m: Any) -> Any:
    # numpy.linalg.cholesky/eigh read one triangle only, while the rules return the
    # symmetric cotangent; differentiating through sym(m) makes both conventions agree.
    return 0.5 * (m + np.swapaxes(m, -1, -2))


_MASK = np.array([[True, False, True, True], [False, True, False, True], [True, True, False, False]])
_WEIGHTS = np.array([0.3, -1.1, 0.7])  # weights of eigenvalues / eigenvector outer products

_MATMUL_SHAPES = [
    ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
    ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)), ((5, 2, 3), (5, 3, 4)),
    ((5, 2, 3), (3,)), ((3,), (5, 3, 4)), ((5, 1, 2, 3), (4, 3, 2)),
]

CASES: list[Case] = [
    # reductions
    Case("sum-all", lambda x: np.sum(x), (_rand((3, 4), 1),)),
    Case("sum-axis0", lambda x: np.sum(x, axis=0), (_rand((3, 4), 2),)),
    Case("sum-axis02-keepdims", lambda x: np.sum(x, axis=(0, 2), keepdims=True), (_rand((2, 3, 4), 3),)),
    Case("sum-axis-1", lambda x: np.sum(x, axis=-1), (_rand((2, 3, 4), 4),)),
    Case("prod-axis1", lambda x: np.prod(x, axis=1), (_rand((3, 4), 5, 0.5, 1.5),)),
    Case("prod-all", lambda x: np.prod(x), (_rand((2, 3), 6, 0.5, 1.5),)),
    Case("max-axis0", lambda x: np.max(x, axis=0), (_rand((3, 4), 7),)),
    Case("max-all", lambda x: np.max(x), (_rand((3, 4), 8),)),
    Case("min-axis1-keepdims", lambda x: np.min(x, axis=1, keepdims=True), (_rand((3, 4), 9),)),
    Case("cumsum-axis0", lambda x: np.cumsum(x, axis=0), (_rand((3, 4), 10),)),
    Case("cumsum-axis-1", lambda x: np.cumsum(x, axis=-1), (_rand((3, 4), 11),)),
    Case("cumsum-flat", lambda x: np.cumsum(x), (_rand((3, 4), 12),)),
    # structure
    Case("reshape", lambda x: np.reshape(x, (2, 6)), (_rand((3, 4), 13),)),
    Case("reshape-ravel", lambda x: np.reshape(x, -1) * np.arange(12.0), (_rand((3, 4), 14),)),
    Case("transpose", lambda x: np.transpose(x), (_rand((3, 4), 15),)),
    Case("transpose-axes", lambda x: np.transpose(x, (1, 0, 2)), (_rand((2, 3, 4), 16),)),
    Case("getitem-slices", lambda x: x[1:3, ::2], (_rand((3, 4), 17),)),
    Case("getitem-int-array", lambda x: x[np.array([2, 0, 2])], (_rand((3, 4), 18),)),  # repeated row
    Case("getitem-int-array-axis1", lambda x: x[:, np.array([3, 1])], (_rand((3, 4), 19),)),
    Case("getitem-bool-mask", lambda x: x[_MASK], (_rand((3, 4), 20),)),
    Case("concatenate-axis0", lambda x, y: np.concatenate([x, y, 2.0 * x], axis=0),
         (_rand((2, 3), 21), _rand((1, 3), 22))),
    Case("concatenate-axis1-const", lambda x: np.concatenate([x, np.ones((2, 2))], axis=1), (_rand((2, 3), 23),)),
    Case("stack-axis0", lambda x, y: np.stack([x, y]), (_rand((2, 3), 24), _rand((2, 3), 25))),
    Case("stack-axis-1", lambda x, y: np.stack([x, y * y], axis=-1), (_rand((2, 3), 26), _rand((2, 3), 27))),
    Case("broadcast_to-lead", lambda x: np.broadcast_to(x, (3, 4)), (_rand((4,), 28),)),
    Case("broadcast_to-inner", lambda x: np.broadcast_to(x, (2, 3, 4)), (_rand((2, 1, 4), 29),)),
    # products
    *[Case(f"matmul-{'x'.join(map(str, sa))}@{'x'.join(map(str, sb))}", lambda a, b: a @ b,
           (_rand(sa, 30 + k), _rand(sb, 50 + k))) for k, (sa, sb) in enumerate(_MATMUL_SHAPES)],
    Case("einsum-ij,jk->ik", lambda a, b: np.einsum("ij,jk->ik", a, b), (_rand((2, 3), 70), _rand((3, 4), 71))),
    Case("einsum-ij->i", lambda a: np.einsum("ij->i", a), (_rand((2, 3), 72),)),
    Case("einsum-i,i->", lambda a, b: np.einsum("i,i->", a, b), (_rand((4,), 73), _rand((4,), 74))),
    Case("dot-2d-1d", lambda a, b: np.dot(a, b), (_rand((2, 3), 75), _rand((3,), 76))),
    Case("dot-2d-2d", lambda a, b: np.dot(a, b), (_rand((2, 3), 77), _rand((3, 2), 78))),
    Case("outer", lambda a, b: np.outer(a, b), (_rand((3,), 79), _rand((4,), 80))),
    Case("tensordot-axes2", lambda a, b: np.tensordot(a, b, axes=2), (_rand((2, 3, 4), 81), _rand((3, 4, 2), 82))),
    Case("tensordot-axes-lists", lambda a, b: np.tensordot(a, b, axes=([1], [0])),
         (_rand((2, 3), 83), _rand((3, 4), 84))),
    # linear algebra
    Case("inv", lambda a: np.linalg.inv(a), (_general(3, 90),)),
    Case("solve-vector", lambda a, b: np.linalg.solve(a, b), (_general(3, 91), _rand((3,), 92))),
    Case("solve-matrix", lambda a, b: np.linalg.solve(a, b), (_general(3, 93), _rand((3, 2), 94))),
    # broadcast stacks: a single matrix against a stack of right-hand sides and back
    Case("solve-stack-b", lambda a, b: np.linalg.solve(a, b), (_general(3, 110), _rand((4, 3, 2), 111))),
    Case("solve-stack-a-vector-b", lambda a, b: np.linalg.solve(a, b), (_general(3, 112) + _rand((4, 3, 3), 113), _rand((3,), 114))),
    # a 2x2 matrix has 4 entries, as many as the stack of b: batch and stack axes coincide in size
    Case("solve-stack-b-same-size", lambda a, b: np.linalg.solve(a, b), (_general(2, 115), _rand((4, 2, 1), 116))),
    Case("det", lambda a: np.linalg.det(a), (_general(3, 95),)),
    Case("slogdet-logabsdet", lambda a: np.linalg.slogdet(a)[1], (_general(3, 96),)),
    Case("slogdet-logabsdet-negdet", lambda a: np.linalg.slogdet(a).logabsdet,
         (_general(3, 97)[::-1].copy(),)),  # rows swapped: det < 0
    Case("cholesky", lambda a: np.linalg.cholesky(_sym(a)), (_spd(3, 98),)),
    Case("eigh-eigenvalues", lambda a: np.linalg.eigh(_sym(a))[0], (_spd(3, 99),)),
    Case("eigh-sum-w-c", lambda a: np.sum(np.linalg.eigh(_sym(a))[0] * _WEIGHTS), (_spd(3, 100),)),
    # sign-invariant functions of the eigenvectors: squares and sum_k c_k v_k v_k^T
    Case("eigh-vectors-squared", lambda a: np.linalg.eigh(_sym(a))[1] ** 2, (_spd(3, 101),)),
    Case("eigh-vectors-outer", lambda a: (np.linalg.eigh(_sym(a))[1] * _WEIGHTS) @ np.linalg.eigh(_sym(a))[1].T,
         (_spd(3, 102),)),
]
CASE_IDS = [c.id for c in CASES]

# Regressions found by these tests, now fixed (kept as ordinary cases above):
# solve with a and b of different stack shapes under batched tangents and when
# nested (the tangent's batch axes must be aligned behind the stack axes).
KNOWN_BUGS: dict[tuple[str, str], str] = {}
"""(test kind, case id) -> reason of a strict xfail."""


def case_params(kind: str) -> list[Any]:
    """The cases as pytest params, the known-bug ones marked as strict xfails."""
    params = []
    for c in CASES:
        reason = KNOWN_BUGS.get((kind, c.id))
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        params.append(pytest.param(c, id=c.id, marks=marks))
    return params


def _directions(case: Case, seed: int) -> list[np.ndarray]:
    return [_rand(np.shape(a), seed + k) for k, a in enumerate(case.args)]


def fd_jacobian(fn: Callable[..., Any], args: tuple[np.ndarray, ...], argnum: int) -> np.ndarray:
    """Central finite-difference Jacobian of ``fn`` w.r.t. ``args[argnum]``, shape out + in."""
    x = np.asarray(args[argnum], dtype=np.float64)
    out_shape = np.shape(fn(*args))
    cols = []
    for idx in np.ndindex(x.shape):
        h = FD_STEP * max(1.0, abs(x[idx]))
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        hi = [xp if k == argnum else a for k, a in enumerate(args)]
        lo = [xm if k == argnum else a for k, a in enumerate(args)]
        cols.append((np.asarray(fn(*hi)) - np.asarray(fn(*lo))) / (xp[idx] - xm[idx]))
    jac = np.stack(cols, axis=-1) if cols else np.zeros(out_shape + (0,))
    return jac.reshape(out_shape + x.shape)


def _jacobians(case: Case, backend: str) -> tuple[np.ndarray, ...]:
    nums = tuple(range(len(case.args)))
    return dk.jacobian(case.fn, argnums=nums, backend=backend)(*case.args)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_transpose_identity_forward_jvp_reverse_vjp(case: Case) -> None:
    us = _directions(case, 1000)
    out_np = np.asarray(case.fn(*case.args))
    out, ju = dk.jvp(case.fn, case.args, tuple(us), backend="forward")
    np.testing.assert_allclose(out, out_np, rtol=RTOL_AD, atol=RTOL_AD)
    assert np.shape(ju) == out_np.shape
    v = _rand(out_np.shape, 2000)
    out_r, vjp_fn = dk.vjp(case.fn, *case.args, backend="reverse")
    np.testing.assert_allclose(out_r, out_np, rtol=RTOL_AD, atol=RTOL_AD)
    jtv = vjp_fn(v)
    assert len(jtv) == len(case.args)
    for c, a in zip(jtv, case.args):
        assert np.shape(c) == np.shape(a)
    lhs = float(np.vdot(v, ju))
    rhs = float(sum(np.vdot(c, u) for c, u in zip(jtv, us)))
    # the two sides sum the same products in another order: round-off relative
    # to the sum of magnitudes, not to the (possibly cancelling) result
    scale = float(np.vdot(np.abs(v), np.abs(ju)) + sum(np.vdot(np.abs(c), np.abs(u)) for c, u in zip(jtv, us)))
    assert abs(lhs - rhs) <= RTOL_AD * scale, f"{case.id}: <v, Ju> = {lhs!r}, <J^T v, u> = {rhs!r}"


@pytest.mark.parametrize("case", case_params("forward-vs-reverse"))
def test_jacobian_forward_equals_reverse(case: Case) -> None:
    jf = _jacobians(case, "forward")
    jr = _jacobians(case, "reverse")
    for k, (a, b) in enumerate(zip(jf, jr)):
        assert a.shape == b.shape == np.shape(case.fn(*case.args)) + np.shape(case.args[k])
        scale = max(1.0, float(np.max(np.abs(a), initial=0.0)))
        np.testing.assert_allclose(a, b, rtol=0, atol=RTOL_AD * scale, err_msg=f"{case.id}, argument {k}")


@pytest.mark.parametrize("case", case_params("fd-forward"))
def test_forward_jacobian_matches_finite_differences(case: Case) -> None:
    _check_against_fd(case, "forward")


@pytest.mark.parametrize("case", case_params("fd-reverse"))
def test_reverse_jacobian_matches_finite_differences(case: Case) -> None:
    _check_against_fd(case, "reverse")


def _check_against_fd(case: Case, backend: str) -> None:
    jacs = _jacobians(case, backend)
    for k, jac in enumerate(jacs):
        fd = fd_jacobian(case.fn, case.args, k)
        scale = max(1.0, float(np.max(np.abs(fd), initial=0.0)))
        np.testing.assert_allclose(jac, fd, rtol=0, atol=FD_RTOL * scale,
                                   err_msg=f"{case.id}, argument {k}, backend {backend}")


# Second order through the structural rules: the rules are written in np.* calls
# and traced in turn, so every nesting of the backends must give the Hessian of
# a scalarized case (w . f(x)) w.r.t. its first argument.
AD_BACKENDS = ("forward", "reverse")
SECOND_ORDER = ("hessian-forward", "hessian-reverse", "hessian-symbolic", "nested-forward(symbolic)",
                *(f"nested-{o}({i})" for o in AD_BACKENDS for i in AD_BACKENDS))
"""Every nesting of the AD backends; the symbolic backend's own Hessian and AD over it."""

SYMBOLIC_UNSUPPORTED = {"eigh-eigenvalues", "eigh-sum-w-c", "eigh-vectors-squared", "eigh-vectors-outer",
                        "solve-stack-a-vector-b"}
"""Cases SymPy cannot trace: eigh has no SymPy counterpart, and SymPy's matrices are not
stacks (a stack of right-hand sides is fine); these must fail with a clear error."""


SYMBOLIC_SLOW = {"cholesky"}
"""Cases whose symbolic second derivatives take SymPy 10-20 s (a 3x3 Cholesky factor's
nested square roots): they run under ``-m slow``; the first order runs by default."""


def test_symbolic_cholesky_small_form() -> None:
    # the default run's symbolic Cholesky (the 3x3 second orders run under -m slow): a 2x2
    # factor's Jacobian and Hessian against the reverse backend and differences of it
    a = _spd(2, 7)
    g = lambda m: np.sum(np.linalg.cholesky(_sym(m)) * np.array([[1.0, 0.0], [0.5, -2.0]]))  # noqa: E731
    jac = dk.jacobian(lambda m: np.linalg.cholesky(_sym(m)), backend="symbolic")(a)
    np.testing.assert_allclose(jac, dk.jacobian(lambda m: np.linalg.cholesky(_sym(m)), backend="reverse")(a),
                               rtol=1e-12, atol=1e-14)
    hess = dk.hessian(g, backend="symbolic")(a)
    fd = fd_jacobian(dk.grad(g, backend="reverse"), (a,), 0)
    np.testing.assert_allclose(hess, fd, rtol=0, atol=FD_RTOL * max(1.0, float(np.max(np.abs(fd)))))


def _second_order(kind: str, g: Callable[..., Any], args: tuple[np.ndarray, ...]) -> np.ndarray:
    if kind.startswith("hessian-"):
        return dk.hessian(g, argnums=0, backend=kind.removeprefix("hessian-"))(*args)
    outer, inner = kind.removeprefix("nested-").rstrip(")").split("(")
    return dk.jacobian(dk.grad(g, argnums=0, backend=inner), argnums=0, backend=outer)(*args)


def _second_order_params() -> list[Any]:
    params = []
    for c in CASES:
        for kind in SECOND_ORDER:
            if "symbolic" in kind and c.id in SYMBOLIC_UNSUPPORTED:
                continue
            reason = KNOWN_BUGS.get((f"second-order-{kind}", c.id))
            marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
            if "symbolic" in kind and c.id in SYMBOLIC_SLOW:
                marks.append(pytest.mark.slow)
            params.append(pytest.param(c, kind, id=f"{c.id}-{kind}", marks=marks))
    return params


@pytest.mark.parametrize("case", [c for c in CASES if c.id in SYMBOLIC_UNSUPPORTED],
                         ids=[c.id for c in CASES if c.id in SYMBOLIC_UNSUPPORTED])
def test_symbolic_refuses_what_sympy_cannot_trace(case: Case) -> None:
    with pytest.raises(dk.DiffkitError) as info:
        dk.jacobian(case.fn, backend="symbolic")(*case.args)
    assert "symbolic" in str(info.value)
    assert "reverse" in str(info.value) or "depends on the values" in str(info.value)


@pytest.mark.parametrize(("case", "kind"), _second_order_params())
def test_second_order_matches_finite_differences_of_gradient(case: Case, kind: str) -> None:
    w = _rand(np.shape(case.fn(*case.args)), 3000)

    def g(*a: Any) -> Any:
        return np.sum(case.fn(*a) * w)

    # reference: central differences of the (first-order, FD-checked above) reverse gradient
    grad_g = dk.grad(g, argnums=0, backend="reverse")
    fd = fd_jacobian(lambda *a: grad_g(*a), case.args, 0)
    hess = _second_order(kind, g, case.args)
    assert hess.shape == np.shape(case.args[0]) * 2
    scale = max(1.0, float(np.max(np.abs(fd))))
    np.testing.assert_allclose(hess, fd, rtol=0, atol=FD_RTOL * scale, err_msg=f"{case.id}, {kind}")


# ---------------------------------------------------------------------------
# where: differentiable in its branches only
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_where_routes_derivative_to_selected_branch(backend: str) -> None:
    x = np.array([-1.3, 0.4, 2.1])
    jac = dk.jacobian(lambda v: np.where(v > 0, np.sin(v), v**2), backend=backend)(x)
    expected = np.diag(np.where(x > 0, np.cos(x), 2 * x))
    np.testing.assert_allclose(jac, expected, rtol=RTOL1, atol=ATOL)
    gx, gy = dk.grad(lambda a, b: np.where(a > b, a, 3.0 * b), argnums=(0, 1), backend=backend)(0.5, -0.2)
    assert (float(gx), float(gy)) == (1.0, 0.0)


# ---------------------------------------------------------------------------
# 5. Conventions at kinks (docs/conventions.md)
# ---------------------------------------------------------------------------


def _grad(f: Callable[..., Any], backend: str, argnums: Any = 0) -> Callable[..., Any]:
    return dk.grad(f, argnums=argnums, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
class TestKinkConventions:
    def test_abs_at_zero_is_zero(self, backend: str) -> None:
        assert float(_grad(np.abs, backend)(0.0)) == 0.0
        assert float(_grad(lambda x: np.abs(x), backend)(-0.0)) == 0.0

    def test_sign_derivative_is_zero_everywhere(self, backend: str) -> None:
        for x in (-1.5, 0.0, 2.0):
            assert float(_grad(np.sign, backend)(x)) == 0.0

    @pytest.mark.parametrize("name", ["maximum", "minimum"])
    def test_tie_gives_half_to_each(self, backend: str, name: str) -> None:
        gx, gy = _grad(ufunc(name), backend, argnums=(0, 1))(1.0, 1.0)
        assert (float(gx), float(gy)) == (0.5, 0.5)

    def test_relu_as_maximum_at_zero_is_half(self, backend: str) -> None:
        assert float(_grad(lambda x: np.maximum(x, 0.0), backend)(0.0)) == 0.5

    def test_relu_as_maximum_batched(self, backend: str) -> None:
        jac = dk.jacobian(lambda x: np.maximum(x, 0.0), backend=backend)(np.array([-1.0, 0.0, 2.0]))
        np.testing.assert_array_equal(jac, np.diag([0.0, 0.5, 1.0]))

    def test_relu_as_where_at_zero_is_zero(self, backend: str) -> None:
        assert float(_grad(lambda x: np.where(x > 0, x, 0.0), backend)(0.0)) == 0.0

    @pytest.mark.parametrize(("x", "expected"), [(1.0, 0.5), (-1.0, 0.5), (0.3, 1.0), (2.0, 0.0), (-3.0, 0.0)])
    def test_clip(self, backend: str, x: float, expected: float) -> None:
        assert float(_grad(lambda v: np.clip(v, -1.0, 1.0), backend)(x)) == expected

    @pytest.mark.parametrize("reduce", [np.max, np.min], ids=["max", "min"])
    def test_reduction_tie_splits_evenly(self, backend: str, reduce: Callable[..., Any]) -> None:
        x = np.array([1.0, 3.0, 3.0, 2.0]) if reduce is np.max else np.array([2.0, -1.0, 4.0, -1.0])
        tied = x == reduce(x)
        g = _grad(lambda v: reduce(v), backend)(x)
        np.testing.assert_array_equal(g, np.where(tied, 0.5, 0.0))

    def test_reduction_three_way_tie(self, backend: str) -> None:
        jac = dk.jacobian(lambda v: np.max(v, axis=1), backend=backend)(np.array([[2.0, 2.0, 2.0], [0.0, 1.0, -1.0]]))
        expected = np.zeros((2, 2, 3))
        expected[0, 0, :] = 1.0 / 3.0
        expected[1, 1, 1] = 1.0
        np.testing.assert_allclose(jac, expected, rtol=RTOL1, atol=ATOL)


def test_sympy_agrees_with_kink_conventions() -> None:
    """The conventions are SymPy's: the symbolic reference gives the same numbers."""
    x, y = sympy.symbols("x y", real=True)
    assert sympy.diff(sympy.Abs(x), x).subs(x, 0) == 0
    assert sympy.diff(sympy.Max(x, y), x).subs({x: 1, y: 1}) == sympy.Rational(1, 2)
    assert sympy.diff(sympy.Max(x, y), y).subs({x: 1, y: 1}) == sympy.Rational(1, 2)
    assert sympy.diff(sympy.Min(x, y), x).subs({x: 1, y: 1}) == sympy.Rational(1, 2)
    assert sympy.diff(sympy.Max(x, 0), x).subs(x, 0) == sympy.Rational(1, 2)
    assert sympy.diff(sympy.Piecewise((x, x > 0), (0, True)), x).subs(x, 0) == 0
    clip = sympy.Min(sympy.Max(x, -1), 1)
    assert sympy.diff(clip, x).subs(x, 1) == sympy.Rational(1, 2)
    assert sympy.diff(clip, x).subs(x, -1) == sympy.Rational(1, 2)
    assert sympy.diff(sympy.sign(x), x).subs(x, 2) == 0  # away from 0; at 0 it is a DiracDelta
    # and the table's own counterparts give the same
    assert sympy.diff(PRIMITIVES["absolute"].sympy(x), x).subs(x, 0) == 0
    assert sympy.diff(PRIMITIVES["maximum"].sympy(x, y), x).subs({x: 1, y: 1}) == sympy.Rational(1, 2)
    assert sympy.diff(PRIMITIVES["minimum"].sympy(x, y), y).subs({x: 1, y: 1}) == sympy.Rational(1, 2)


# ---------------------------------------------------------------------------
# 6. Completeness of the table
# ---------------------------------------------------------------------------

ALL = sorted(PRIMITIVES)


@pytest.mark.parametrize("name", ALL)
def test_entry_is_complete(name: str) -> None:
    prim = PRIMITIVES[name]
    assert prim.name == name
    assert callable(prim.numpy)
    assert isinstance(prim.complex_safe, bool)
    assert isinstance(prim.differentiable, bool) and isinstance(prim.elementwise, bool)
    if prim.differentiable:
        if prim.nargs is None:  # variadic
            assert callable(prim.jvp_joint) and callable(prim.vjp_variadic)
            assert prim.jvp == () and prim.vjp == ()
        else:
            assert len(prim.jvp) == len(prim.vjp) == prim.nargs
            for i in range(prim.nargs):
                constant = i in prim.nondiff_args
                assert (prim.jvp[i] is None) == constant, f"{name}: jvp[{i}]"
                assert (prim.vjp[i] is None) == constant, f"{name}: vjp[{i}]"
            assert prim.saves is not None and len(prim.saves) == prim.nargs, f"{name}: saves"
    else:
        assert prim.jvp == () and prim.vjp == ()
    if prim.elementwise:
        assert prim.nargs is not None
        assert len(prim.domain) == prim.nargs
        for lo, hi in prim.domain:
            assert lo < hi
    if prim.kink is not None:
        assert isinstance(prim.kink, str) and prim.kink


@pytest.mark.parametrize("name", ELEMENTWISE + sorted(SYMPY_UNDIFFERENTIABLE) + ["where"])
def test_elementwise_has_sympy_counterpart(name: str) -> None:
    assert PRIMITIVES[name].sympy is not None


def test_kink_set_exactly_for_nonsmooth() -> None:
    differentiable = {n for n, p in PRIMITIVES.items() if p.differentiable}
    kinked = {n for n in differentiable if PRIMITIVES[n].kink is not None}
    assert NONSMOOTH <= differentiable
    assert kinked - OTHER_KINKED == set(NONSMOOTH)
    for name in NONSMOOTH:
        assert PRIMITIVES[name].at_kink is not None, name
        assert PRIMITIVES[name].complex_safe is False, name
    # piecewise-constant entries say so, too
    for name, prim in PRIMITIVES.items():
        if not prim.differentiable:
            assert prim.kink is not None, name


@pytest.mark.parametrize("name", sorted(n for n, p in PRIMITIVES.items() if p.kink_gap is not None))
def test_kink_gap_is_a_lower_bound_on_the_distance_to_a_kink(name: str) -> None:
    # |gap(a) - gap(b)| <= max|a - b| (what the numeric backend relies on), and gap is 0
    # exactly where at_kink is true; checked on random pairs, some moved across a kink
    prim = PRIMITIVES[name]
    rng = np.random.default_rng(7)
    params = {"axis": (1,), "keepdims": False} if not prim.elementwise else {}
    nargs = prim.nargs or 1
    shape = (200, 5) if params else (1000,)
    for scale in (1e-3, 1.0, 30.0):
        a = [rng.normal(size=shape) * scale for _ in range(nargs)]
        b = [x + rng.normal(size=shape) * scale * 0.1 for x in a]
        ga, gb = (np.asarray(prim.kink_gap(*v, **params)) for v in (a, b))
        moved = np.max([np.abs(x - y) for x, y in zip(a, b)], axis=0)
        if params:
            moved = moved.max(axis=1)
        assert np.all(np.abs(np.abs(ga) - np.abs(gb)) <= moved * (1 + 1e-12) + 1e-14 * max(1.0, scale)), name
    at = [np.zeros(3)] * nargs if not params else [np.array([[1.0, 2.0, 2.0]])]
    assert np.all(prim.at_kink(*at, **params) == (np.asarray(prim.kink_gap(*at, **params)) == 0))


def test_at_kink_flags_elementwise_kinks() -> None:
    assert list(PRIMITIVES["absolute"].at_kink(np.array([-1.0, 0.0, 2.0]))) == [False, True, False]
    assert list(PRIMITIVES["sign"].at_kink(np.array([-1.0, 0.0, 2.0]))) == [False, True, False]
    for name in ("maximum", "minimum"):
        assert list(PRIMITIVES[name].at_kink(np.array([1.0, 2.0]), np.array([1.0, 3.0]))) == [True, False]


@pytest.mark.parametrize("name", ["max", "min"])
def test_at_kink_flags_reduction_ties(name: str) -> None:
    at_kink = PRIMITIVES[name].at_kink
    extreme = 1.0 if name == "max" else -1.0
    assert bool(at_kink(np.array([3.0, 3.0, 3.0]), (-1,), False))
    assert bool(at_kink(np.array([0.0, extreme, extreme]), (-1,), False))


@pytest.mark.parametrize("name", ["max", "min"])  # regression: every reduction was flagged
def test_at_kink_reduction_without_tie_is_false(name: str) -> None:
    assert not bool(PRIMITIVES[name].at_kink(np.array([1.0, 3.0, 2.0]), (-1,), False))


UNSUPPORTED = {
    "numpy.histogram": lambda x: np.sum(np.histogram(x)[0] * 1.0),
    "numpy.unwrap": lambda x: np.sum(np.unwrap(x)),
    "numpy.polyfit": lambda x: np.sum(np.polyfit(np.arange(4.0), x, 1)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fname", sorted(UNSUPPORTED))
def test_function_outside_table_is_unsupported(fname: str, backend: str) -> None:
    with pytest.raises(dk.UnsupportedOperation) as info:
        dk.grad(UNSUPPORTED[fname], backend=backend)(np.array([0.3, 0.5, 0.7, 1.1]))
    msg = str(info.value)
    assert fname in msg, msg
    assert backend in msg, msg


# ---------------------------------------------------------------------------
# 7. float32
# ---------------------------------------------------------------------------

RTOL32 = 64 * EPS32
"""float32 first derivatives: NumPy's float32 kernels (SIMD sin, exp ...) are
accurate to a few float32 ulps; the rule adds a few more."""

def _f32_params() -> list[Any]:
    # regression: maximum/minimum once built float64 masks and returned float64 gradients
    return [pytest.param(n, k, id=f"{n}-d{k}") for n, k in PARTIALS]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "argnum"), _f32_params())
def test_first_derivative_float32(name: str, argnum: int, backend: str) -> None:
    """The table x backend x dtype sweep for float32: dtype kept, float32 accuracy."""
    prim = PRIMITIVES[name]
    points = sample_points(prim)
    args = [np.array([p[j] for p in points], dtype=np.float32) for j in range(prim.nargs)]
    np_fn = ufunc(name)
    g = dk.grad(lambda *a: np.sum(np_fn(*a)), argnums=argnum, backend=backend)(*args)
    assert g.dtype == np.float32, f"d{name}/dx{argnum} on {backend}: dtype {g.dtype}"
    for i in range(len(points)):
        point = tuple(float(a[i]) for a in args)  # the float32 point, exactly
        assert_close(g[i], reference(name, (argnum,), point), RTOL32, what=f"float32 d{name}/dx{argnum} at {point}")


RTOL32_STRUCT = 256 * EPS32
"""float32 Jacobians of the structural cases vs float64 at the same (rounded)
point: a few dozen float32 operations on matrices of condition O(10)."""

# regression: max/min, cholesky and eigh rules once built float64 masks and identities
_F32_CASES = {
    "sum-axis02-keepdims": None, "prod-axis1": None, "cumsum-axis0": None, "getitem-int-array": None,
    "stack-axis-1": None, "broadcast_to-inner": None, "matmul-5x1x2x3@4x3x2": None, "einsum-ij,jk->ik": None,
    "tensordot-axes2": None, "inv": None, "solve-matrix": None, "det": None, "slogdet-logabsdet": None,
    "max-axis0": None, "max-all": None, "min-axis1-keepdims": None,
    "cholesky": None, "eigh-eigenvalues": None, "eigh-vectors-squared": None,
}


def _f32_case_params() -> list[Any]:
    params = []
    for c in CASES:
        if c.id in _F32_CASES:
            reason = _F32_CASES[c.id]
            for b in BACKENDS:
                if b == "symbolic" and c.id in SYMBOLIC_UNSUPPORTED:
                    continue
                marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
                if b == "symbolic" and c.id in SYMBOLIC_SLOW:
                    marks.append(pytest.mark.slow)  # the float64 case runs by default
                params.append(pytest.param(c, b, id=f"{c.id}-{b}", marks=marks))
    return params


@pytest.mark.parametrize(("case", "backend"), _f32_case_params())
def test_structural_jacobian_float32(case: Case, backend: str) -> None:
    args32 = tuple(a.astype(np.float32) for a in case.args)
    nums = tuple(range(len(args32)))
    jacs = dk.jacobian(case.fn, argnums=nums, backend=backend)(*args32)
    ref = dk.jacobian(case.fn, argnums=nums, backend="reverse")(*(a.astype(np.float64) for a in args32))
    for k, (j, r) in enumerate(zip(jacs, ref)):
        assert j.dtype == np.float32, f"{case.id}, argument {k}, {backend}: dtype {j.dtype}"
        scale = max(1.0, float(np.max(np.abs(r))))
        np.testing.assert_allclose(j, r, rtol=0, atol=RTOL32_STRUCT * scale, err_msg=f"{case.id}, argument {k}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x", [np.ones(3, np.float32), np.array([1.0, -0.5, 2.0], np.float32)],
                         ids=["ones", "mixed"])
def test_float32_gradient_keeps_dtype_and_precision(backend: str, x: np.ndarray) -> None:
    g = dk.grad(lambda v: np.sum(np.sin(v) * v), backend=backend)(x)
    assert g.dtype == np.float32
    x64 = x.astype(np.float64)
    expected = np.sin(x64) + x64 * np.cos(x64)
    # a few float32 operations per element: a few ulps of float32
    np.testing.assert_allclose(g, expected, rtol=8 * EPS32, atol=8 * EPS32)
