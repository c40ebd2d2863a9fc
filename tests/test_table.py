"""The table states its mathematics explicitly, and what it states is true.

* ``saves``: every VJP rule runs with everything it does not declare replaced
  by a value that refuses to be read (so the reverse tape may drop those).
* ``linearity``: a "linear" primitive is additive and homogeneous in its
  differentiated arguments jointly; a "multilinear" one in each alone.
* ``symbol`` and ``infix``: the names graphs and expression strings use.
* The table is declared, never inferred: no module of diffkit reads bytecode.
"""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest

import diffkit  # noqa: F401 (fills the table)
from diffkit.backends.base import Dropped
from diffkit.core.primitive import OUT, PRIMITIVES
from diffkit.errors import TracingError

RNG = np.random.default_rng(7)
PACKAGE = pathlib.Path(diffkit.__file__).parent


def _sample(lo, hi, shape=(3,)):
    lo, hi = max(lo, -2.0), min(hi, 2.0)
    return RNG.uniform(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo), size=shape)


# A point for each structural primitive: (args, params).
STRUCTURAL = {
    "sum": ((RNG.normal(size=(2, 3)),), dict(axis=(-1,), keepdims=False)),
    "prod": ((RNG.normal(size=(2, 3)),), dict(axis=(-1,), keepdims=False)),
    "max": ((RNG.normal(size=(2, 3)),), dict(axis=(-1,), keepdims=False)),
    "min": ((RNG.normal(size=(2, 3)),), dict(axis=(-1,), keepdims=False)),
    "cumsum": ((RNG.normal(size=(2, 3)),), dict(axis=-1)),
    "reshape": ((RNG.normal(size=(2, 3)),), dict(shape=(3, 2))),
    "transpose": ((RNG.normal(size=(2, 3)),), dict(axes=(1, 0))),
    "getitem": ((RNG.normal(size=(4, 3)),), dict(idx=(slice(1, 3),))),
    "scatter": ((RNG.normal(size=(2, 3)),), dict(idx=(slice(1, 3),), shape=(4, 3), nb=0)),
    "index_update": ((RNG.normal(size=(4, 3)), RNG.normal(size=(3,))), dict(idx=(slice(1, 3),))),
    "broadcast_to": ((RNG.normal(size=(1, 3)),), dict(shape=(2, 3))),
    "matmul": ((RNG.normal(size=(2, 3)), RNG.normal(size=(3, 2))), {}),
    "inv": ((np.eye(3) + 0.1 * RNG.normal(size=(3, 3)),), {}),
    "solve": ((np.eye(3) + 0.1 * RNG.normal(size=(3, 3)), RNG.normal(size=3)), {}),
    "det": ((np.eye(3) + 0.1 * RNG.normal(size=(3, 3)),), {}),
    "logabsdet": ((np.eye(3) + 0.1 * RNG.normal(size=(3, 3)),), {}),
    "cholesky": ((np.eye(3) * 2.0 + 0.1 * np.ones((3, 3)),), {}),
    "eigh_packed": ((np.diag([1.0, 2.0, 3.0]) + 0.1 * np.ones((3, 3)),), {}),
    "to_complex": ((RNG.normal(size=(2, 3)),), {}),
    "svd_packed": ((RNG.normal(size=(4, 3)),), {}),
    "svd_values": ((RNG.normal(size=(4, 3)),), {}),
    "pinv": ((RNG.normal(size=(4, 3)),), {}),
    "qr_packed": ((RNG.normal(size=(4, 3)),), {}),
    "eigvals": ((np.diag([1.0, 2.0, 4.0]) + 0.1 * RNG.normal(size=(3, 3)),), {}),
    "fftn": ((RNG.normal(size=(2, 4)) + 1j * RNG.normal(size=(2, 4)),), dict(axes=(-2, -1), norm=None, inverse=False)),
    "rfft": ((RNG.normal(size=(2, 5)),), dict(norm="ortho")),
    "irfft": ((RNG.normal(size=(2, 3)) + 1j * RNG.normal(size=(2, 3)),), dict(n=4, norm=None)),
}


def _point(prim):
    if prim.name in STRUCTURAL:
        return STRUCTURAL[prim.name]
    if prim.name == "where":
        return (RNG.normal(size=3) > 0, RNG.normal(size=3), RNG.normal(size=3)), {}
    return tuple(_sample(lo, hi) for lo, hi in prim.domain), {}


DECLARED = sorted(n for n, p in PRIMITIVES.items() if p.differentiable and p.saves is not None)


def test_every_differentiable_fixed_arity_primitive_declares_saves():
    missing = [n for n, p in PRIMITIVES.items()
               if p.differentiable and p.nargs is not None and p.saves is None]
    assert missing == []


@pytest.mark.parametrize("name", DECLARED)
def test_rules_read_only_what_saves_declares(name):
    prim = PRIMITIVES[name]
    if prim.name not in STRUCTURAL and not prim.elementwise:
        pytest.skip(f"no sample point for {name}")
    args, params = _point(prim)
    out = prim.numpy(*args, **params)
    ct = np.ones_like(np.asarray(out, dtype=float))
    for j, saved in enumerate(prim.saves):
        if j in prim.nondiff_args:
            continue
        full = prim.vjp_rule(j)(ct, out, *args, **params)
        kept = [a if k in saved else Dropped(np.shape(a)) for k, a in enumerate(args)]
        o = out if OUT in saved else Dropped(np.shape(out))
        got = prim.vjp_rule(j)(ct, o, *kept, **params)  # raises if the rule reads a dropped value
        np.testing.assert_allclose(got, full, rtol=1e-15, atol=0)


def test_a_dropped_value_refuses_to_be_read():
    d = Dropped((3,))
    for use in (lambda: np.sin(d), lambda: np.asarray(d) + 1.0, lambda: d * 2.0):
        with pytest.raises((TracingError, TypeError)):
            use()


@pytest.mark.parametrize("name", sorted(n for n, p in PRIMITIVES.items() if p.linearity != "nonlinear"))
def test_declared_linearity_holds(name):
    prim = PRIMITIVES[name]
    if name in ("einsum", "concatenate", "stack"):
        args, params = (RNG.normal(size=(2, 3)), RNG.normal(size=(3, 2))), (
            {"subscripts": "ij,jk->ik"} if name == "einsum" else {"axis": 0})
        if name != "einsum":
            args = (RNG.normal(size=(2, 3)), RNG.normal(size=(2, 3)))
    else:
        args, params = _point(prim)
    diff = [j for j in range(len(args)) if j not in prim.nondiff_args]
    other = [RNG.normal(size=np.shape(a)) if j in diff else a for j, a in enumerate(args)]
    f = lambda *a: np.asarray(prim.numpy(*a, **params), dtype=float)  # noqa: E731
    if prim.linearity == "linear":  # f(a + 2b) = f(a) + 2 f(b), jointly
        both = [a + 2.0 * b if j in diff else a for j, (a, b) in enumerate(zip(args, other))]
        np.testing.assert_allclose(f(*both), f(*args) + 2.0 * f(*other), rtol=1e-12, atol=1e-12)
    else:  # in each argument alone
        for j in diff:
            both = list(args)
            both[j] = args[j] + 2.0 * other[j]
            alone = list(args)
            alone[j] = other[j]
            np.testing.assert_allclose(f(*both), f(*args) + 2.0 * f(*alone), rtol=1e-12, atol=1e-12)


def test_infix_operators_parse_back_to_their_primitive():
    infix = {n: p.infix for n, p in PRIMITIVES.items() if p.infix is not None}
    assert infix == {"add": ("+", 1), "subtract": ("-", 1), "multiply": ("*", 2), "divide": ("/", 2)}
    for name, (op, _) in infix.items():
        tree = ast.parse(f"x {op} y", mode="eval").body
        assert type(tree.op).__name__.lower() in {"add": "add", "subtract": "sub", "multiply": "mult",
                                                  "divide": "div"}[name]


def test_no_module_reads_bytecode():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("co_code", "get_instructions"):
                offenders.append(f"{path.name}:{node.lineno}")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if "dis" in names:
                    offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
