"""Coverage at least HIPS autograd's: every NumPy function autograd differentiates.

The names below are, one for one, the functions autograd's ``numpy_vjps.py`` and
``numpy_jvps.py`` give derivative rules (as of autograd 1.7), plus the
functions it declares constant (``nograd_functions``: comparisons, rounding,
index queries), which must run on traced values inside a differentiated function.
Each is called the way users call it, on the forward and reverse backends, and
the gradient of a real scalar made from its result is compared with central
differences of the same plain NumPy code (no diffkit involved), at points away
from kinks. The linear algebra, FFT and SciPy lists have their own inventories
(tests/test_linalg_more.py, tests/test_scipy_more.py).

autograd's private helpers (``array_from_args``, ``concatenate_args``,
``make_diagonal``, ``untake``, the dot and tensordot adjoints) are its own
plumbing behind ``np.array``, ``np.concatenate``, ``np.diag``, indexing,
``np.dot`` and ``np.tensordot``: those are checked under the public names
(``SPELLED``); ``np.msort`` left NumPy in 2.0.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
import pytest

import diffkit as dk

BACKENDS = ("forward", "reverse", "compiled")

rng = np.random.default_rng(20261206)
V = np.array([0.3, -0.7, 0.55, 0.9, -0.2, 0.45])  # distinct, away from 0 and +-1
M = rng.uniform(0.2, 0.9, size=(3, 4)) * np.array([1, -1, 1, -1])
C = V[:4] + 1j * np.array([0.4, -0.3, 0.8, 0.25])  # a complex constant to mix in
POS = np.array([0.4, 1.3, 2.2, 0.7])
BIG = np.array([1.3, 2.2, 1.7, 3.1])  # > 1 (arccosh)
CUBE = rng.uniform(-1, 1, size=(2, 3, 4))

# name -> (function of one array, the point). The function returns anything; the
# test differentiates sum(weights * real(result)) with fixed weights.
CASES: dict[str, tuple[Callable[[Any], Any], np.ndarray]] = {
    # elementwise, unary
    "abs": (np.abs, V), "absolute": (np.absolute, V), "fabs": (np.fabs, V),
    "negative": (np.negative, V), "reciprocal": (np.reciprocal, V), "square": (np.square, V),
    "sqrt": (np.sqrt, POS), "exp": (np.exp, V), "exp2": (np.exp2, V), "expm1": (np.expm1, V),
    "log": (np.log, POS), "log2": (np.log2, POS), "log10": (np.log10, POS), "log1p": (np.log1p, V),
    "sin": (np.sin, V), "cos": (np.cos, V), "tan": (np.tan, V),
    "arcsin": (np.arcsin, V), "arccos": (np.arccos, V), "arctan": (np.arctan, V),
    "sinh": (np.sinh, V), "cosh": (np.cosh, V), "tanh": (np.tanh, V),
    "arcsinh": (np.arcsinh, V), "arccosh": (np.arccosh, BIG), "arctanh": (np.arctanh, V),
    "deg2rad": (np.deg2rad, V), "rad2deg": (np.rad2deg, V), "degrees": (np.degrees, V),
    "radians": (np.radians, V), "sinc": (np.sinc, V),
    "real": (lambda x: np.real(x * C[0]), V), "imag": (lambda x: np.imag(x * C[0]), V),
    "conj": (lambda x: np.real(np.conj(x * C[0]) * C[1]), V),
    "conjugate": (lambda x: np.imag(np.conjugate(x * C[0])), V),
    "angle": (lambda x: np.angle(x[:4] + C), V),
    "real_if_close": (lambda x: np.real_if_close(x + 0j), V),
    "nan_to_num": (lambda x: np.nan_to_num(x + np.array([0, 0, np.nan, np.inf, 0, -np.inf]), posinf=5.0, neginf=-5.0), V),
    # elementwise, binary
    "add": (lambda x: np.add(x[:3], x[3:]), V), "subtract": (lambda x: np.subtract(x[:3], x[3:]), V),
    "multiply": (lambda x: np.multiply(x[:3], x[3:]), V),
    "divide": (lambda x: np.divide(x[:3], x[3:]), V),
    "true_divide": (lambda x: np.true_divide(x[:3], x[3:]), V),
    "power": (lambda x: np.power(np.abs(x[:3]), x[3:]), V),
    "maximum": (lambda x: np.maximum(x[:3], x[3:]), V), "minimum": (lambda x: np.minimum(x[:3], x[3:]), V),
    "fmax": (lambda x: np.fmax(x[:3], x[3:]), V), "fmin": (lambda x: np.fmin(x[:3], x[3:]), V),
    "logaddexp": (lambda x: np.logaddexp(x[:3], x[3:]), V),
    "logaddexp2": (lambda x: np.logaddexp2(x[:3], x[3:]), V),
    "arctan2": (lambda x: np.arctan2(x[:3], x[3:] + 2.0), V),
    "hypot": (lambda x: np.hypot(x[:3], x[3:]), V),
    "mod": (lambda x: np.mod(x[:3] * 3.0, 0.8), V), "remainder": (lambda x: np.remainder(x[3:], 0.4), V),
    "where": (lambda x: np.where(x > 0, x ** 2, np.sin(x)), V),
    "clip": (lambda x: np.clip(x, -0.5, 0.5), V),
    # reductions
    "sum": (lambda x: np.sum(x.reshape(2, 3), axis=1), V), "prod": (lambda x: np.prod(x.reshape(3, 2), axis=0), V),
    "mean": (lambda x: np.mean(x.reshape(2, 3), axis=0), V), "var": (lambda x: np.var(x, ddof=1), V),
    "std": (lambda x: np.std(x.reshape(2, 3), axis=1), V),
    "max": (lambda x: np.max(x.reshape(2, 3), axis=1), V), "min": (lambda x: np.min(x.reshape(2, 3), axis=0), V),
    "amax": (lambda x: np.amax(x), V), "amin": (lambda x: np.amin(x), V),
    "cumsum": (lambda x: np.cumsum(x.reshape(2, 3), axis=1), V),
    "trace": (lambda x: np.trace(x.reshape(2, 3, 4), axis1=1, axis2=2), CUBE.ravel()),
    # shape and manipulation
    "reshape": (lambda x: np.reshape(x, (3, 2)) * np.arange(6.0).reshape(3, 2), V),
    "ravel": (lambda x: np.ravel(x.reshape(2, 3).T) * np.arange(6.0), V),
    "squeeze": (lambda x: np.squeeze(x.reshape(1, 6, 1)) ** 2, V),
    "expand_dims": (lambda x: np.expand_dims(x, 1) * np.ones((6, 2)), V),
    "transpose": (lambda x: np.transpose(x.reshape(2, 3, 4), (2, 0, 1)) ** 3, CUBE.ravel()),
    "swapaxes": (lambda x: np.swapaxes(x.reshape(2, 3, 4), 0, 2) ** 3, CUBE.ravel()),
    "moveaxis": (lambda x: np.moveaxis(x.reshape(2, 3, 4), 0, -1) ** 3, CUBE.ravel()),
    "rollaxis": (lambda x: np.rollaxis(x.reshape(2, 3, 4), 2) ** 3, CUBE.ravel()),
    "broadcast_to": (lambda x: np.broadcast_to(x, (2, 6)) * np.arange(12.0).reshape(2, 6), V),
    "atleast_1d": (lambda x: np.atleast_1d(x[0]) ** 2, V), "atleast_2d": (lambda x: np.atleast_2d(x) ** 2, V),
    "atleast_3d": (lambda x: np.atleast_3d(x.reshape(2, 3)) ** 2, V),
    "array": (lambda x: np.array([x[0] * x[1], x[2]]) ** 2, V),
    "astype": (lambda x: x.astype(np.float64) ** 2, V),
    "concatenate": (lambda x: np.concatenate([x[:2] ** 2, x[3:]]), V),
    "array_split": (lambda x: np.array_split(x, 4)[1] ** 2, V),
    "split": (lambda x: np.split(x, 3)[2] ** 2, V),
    "hsplit": (lambda x: np.hsplit(x.reshape(2, 3), [1])[1] ** 2, V),
    "vsplit": (lambda x: np.vsplit(x.reshape(2, 3), 2)[0] ** 2, V),
    "dsplit": (lambda x: np.dsplit(x.reshape(2, 3, 4), [1, 3])[1] ** 2, CUBE.ravel()),
    "repeat": (lambda x: np.repeat(x, [1, 2, 0, 3, 1, 1]) ** 2, V),
    "tile": (lambda x: np.tile(x.reshape(2, 3), (2, 2)) * np.arange(24.0).reshape(4, 6), V),
    "roll": (lambda x: np.roll(x, 2) * np.arange(6.0), V),
    "flipud": (lambda x: np.flipud(x.reshape(2, 3)) * np.arange(6.0).reshape(2, 3), V),
    "fliplr": (lambda x: np.fliplr(x.reshape(2, 3)) * np.arange(6.0).reshape(2, 3), V),
    "rot90": (lambda x: np.rot90(x.reshape(2, 3)) * np.arange(6.0).reshape(3, 2), V),
    "pad": (lambda x: np.pad(x.reshape(2, 3), ((1, 0), (0, 2)), mode="reflect") ** 2, V),
    "diff": (lambda x: np.diff(x ** 2, n=2), V),
    "gradient": (lambda x: np.gradient(x ** 2, 0.5), V),
    "diag": (lambda x: np.diag(x.reshape(2, 3), k=1) ** 2 + np.diag(x[:3], -1).sum(), V),
    "diagonal": (lambda x: np.diagonal(x.reshape(2, 3, 4), 1, 0, 2) ** 2, CUBE.ravel()),
    "tril": (lambda x: np.tril(x.reshape(2, 3), -1) ** 2, V), "triu": (lambda x: np.triu(x.reshape(2, 3), 1) ** 2, V),
    "sort": (lambda x: np.sort(x) * np.arange(6.0), V),
    "partition": (lambda x: np.partition(x, 2)[:3].sum() * np.partition(x, 2)[2], V),
    "full": (lambda x: np.full((2, 2), x[0]) * x[1], V),
    "linspace": (lambda x: np.linspace(x[0], x[1], 5) ** 2, V),
    "getitem": (lambda x: x[np.array([0, 2, 2])] * x[1:4:2].sum() + x[x > 0].sum(), V),
    # products
    "dot": (lambda x: np.dot(x.reshape(2, 3), M[:, :2]), V),
    "matmul": (lambda x: np.matmul(M.T, x.reshape(3, 2)), V),
    "inner": (lambda x: np.inner(x.reshape(2, 3), x.reshape(2, 3)), V),
    "outer": (lambda x: np.outer(x[:2], x[2:]), V),
    "tensordot": (lambda x: np.tensordot(x.reshape(2, 3), M, axes=([1], [0])), V),
    "einsum": (lambda x: np.einsum("ij,jk->ik", x.reshape(2, 3), M), V),
    "kron": (lambda x: np.kron(x.reshape(2, 3), x[:2]), V),
    "cross": (lambda x: np.cross(x[:3], x[3:]), V),
}

def _quiet(fn: Callable[[Any], Any], x: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return fn(x)


# autograd's nograd_functions: constant in continuous inputs. Inside a differentiated
# function they act on traced values and contribute derivative 0: f = x * g(x).
CONSTANT: dict[str, Callable[[Any], Any]] = {
    "floor": np.floor, "ceil": np.ceil, "round": np.round, "rint": np.rint, "around": np.around,
    "fix": lambda x: _quiet(np.fix, x),  # (deprecated in NumPy 2.5: NumPy warns, as without diffkit)
    "trunc": np.trunc, "sign": np.sign,
    "floor_divide": lambda x: np.floor_divide(x, 0.37),  # (not at a jump: x / 0.37 not an integer)
    "all": lambda x: np.all(x > -1.0), "any": lambda x: np.any(x > 0.8),
    "argmax": lambda x: np.argmax(x), "argmin": lambda x: np.argmin(x),
    "argpartition": lambda x: np.argpartition(x, 2)[2], "argsort": lambda x: np.argsort(x)[0],
    "argwhere": lambda x: np.argwhere(x > 0).shape[0], "nonzero": lambda x: np.nonzero(x > 0)[0][0],
    "flatnonzero": lambda x: np.flatnonzero(x > 0)[1], "count_nonzero": lambda x: np.count_nonzero(x > 0),
    "searchsorted": lambda x: np.searchsorted(np.array([-1.0, 0.0, 1.0]), x),
    "ndim": lambda x: np.ndim(x), "shape": lambda x: np.shape(x)[0], "size": lambda x: np.size(x),
    "logical_and": lambda x: np.logical_and(x > 0, x < 0.5),
    "logical_or": lambda x: np.logical_or(x > 0.5, x < -0.5),
    "logical_not": lambda x: np.logical_not(x > 0), "logical_xor": lambda x: np.logical_xor(x > 0, x > 0.5),
    "isfinite": np.isfinite, "isinf": np.isinf, "isnan": np.isnan,
    "isneginf": np.isneginf, "isposinf": np.isposinf,
    "allclose": lambda x: np.allclose(x, V), "isclose": lambda x: np.isclose(x, V),
    "array_equal": lambda x: np.array_equal(x, V), "array_equiv": lambda x: np.array_equiv(x, V),
    "greater": lambda x: np.greater(x, 0.1), "greater_equal": lambda x: np.greater_equal(x, 0.1),
    "less": lambda x: np.less(x, 0.1), "less_equal": lambda x: np.less_equal(x, 0.1),
    "equal": lambda x: np.equal(x, 0.3), "not_equal": lambda x: np.not_equal(x, 0.3),
    "iscomplexobj": np.iscomplexobj, "iscomplex": np.iscomplex, "isreal": np.isreal,
    "isscalar": np.isscalar,
    "zeros_like": np.zeros_like, "ones_like": np.ones_like,
    "empty_like": lambda x: np.empty_like(x) * 0.0, "full_like": lambda x: np.full_like(x, 2.0),
    "result_type": lambda x: np.ones(1, dtype=np.result_type(x, 1.0))[0],
}


# On the symbolic backend: what depends on the order or the values of its input
# refuses (a compiled expression would hold at one point only), with a clear error
SYMBOLIC_REFUSES = {"sort", "partition", "real_if_close", "getitem"}  # getitem: the boolean mask x[x > 0]
SYMBOLIC_CONSTANTS = {  # elementwise: SymPy relationals and roundings, 0/1 in arithmetic
    "floor", "ceil", "trunc", "sign", "floor_divide", "logical_and", "logical_or", "logical_not",
    "logical_xor", "greater", "greater_equal", "less", "less_equal", "equal", "not_equal",
    "ndim", "shape", "size", "iscomplexobj", "isscalar", "zeros_like", "ones_like", "empty_like",
    "full_like", "result_type"}


def _weights(out: Any) -> np.ndarray:
    """Fixed weights of the result's shape (distinct, so a permuted rule is caught)."""
    n = int(np.size(out))
    return np.cos(np.arange(1, n + 1) * 0.9).reshape(np.shape(out))


def _scalar(f: Callable[[Any], Any], w: np.ndarray) -> Callable[[Any], Any]:
    return lambda x: np.sum(w * np.real(f(x)))


def _central(g: Callable[[Any], Any], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    out = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = h
        out.flat[i] = (g(x + e) - g(x - e)) / (2 * h)
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_autograd_differentiates_it_and_so_does_diffkit(name: str, backend: str) -> None:
    f, x0 = CASES[name]
    with np.errstate(all="ignore"):
        g = _scalar(f, _weights(f(x0)))
        expected = _central(g, x0)
    got = dk.grad(g, backend=backend)(x0)
    assert np.asarray(got).dtype.kind == "f"
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7, err_msg=f"{name} on {backend}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(CONSTANT))
def test_constant_functions_run_on_traced_values(name: str, backend: str) -> None:
    # f = sum(x * c(x)) with c constant near x0: the gradient is c(x0), broadcast
    c = CONSTANT[name]
    with np.errstate(all="ignore"):
        expected = np.broadcast_to(np.asarray(c(V), dtype=float), V.shape)
    got = dk.grad(lambda x: np.sum(x * c(x)), backend=backend)(V)
    np.testing.assert_array_equal(got, expected)


# The names autograd's numpy_vjps.py and numpy_jvps.py define rules for, as they
# are spelled there; each maps to a case above, or to what users write instead.
AUTOGRAD_NAMES = (
    '__getitem__', '_array_from_scalar_or_array', '_astype', '_primitive_mean', '_primitive_std',
    '_primitive_var', 'abs', 'absolute', 'add', 'amax', 'amin', 'angle', 'arccos', 'arccosh',
    'arcsin', 'arcsinh', 'arctan', 'arctan2', 'arctanh', 'array_from_args', 'array_split',
    'atleast_1d', 'atleast_2d', 'atleast_3d', 'broadcast_to', 'clip', 'concatenate_args', 'conj',
    'conjugate', 'cos', 'cosh', 'cross', 'cumsum', 'deg2rad', 'degrees', 'diag', 'diagonal', 'diff',
    'divide', 'dot', 'dot_adjoint_0', 'dot_adjoint_1', 'dsplit', 'einsum', 'exp', 'exp2',
    'expand_dims', 'expm1', 'fabs', 'fliplr', 'flipud', 'fmax', 'fmin', 'full', 'gradient',
    'hsplit', 'hypot', 'imag', 'inner', 'kron', 'linspace', 'log', 'log10', 'log1p', 'log2',
    'logaddexp', 'logaddexp2', 'make_diagonal', 'matmul', 'max', 'maximum', 'min', 'minimum', 'mod',
    'moveaxis', 'msort', 'multiply', 'nan_to_num', 'negative', 'outer', 'pad', 'partition', 'power',
    'prod', 'rad2deg', 'radians', 'ravel', 'real', 'real_if_close', 'reciprocal', 'remainder',
    'repeat', 'reshape', 'roll', 'rollaxis', 'rot90', 'sin', 'sinc', 'sinh', 'sort', 'split',
    'sqrt', 'square', 'squeeze', 'subtract', 'sum', 'swapaxes', 'tan', 'tanh', 'tensordot',
    'tensordot_adjoint_0', 'tensordot_adjoint_1', 'tile', 'trace', 'transpose', 'tril', 'triu',
    'true_divide', 'untake', 'vsplit', 'where',
)
# autograd's internal names -> the NumPy call users write (a case above), or None:
# its adjoint helpers are rules of dot and tensordot, msort left NumPy in 2.0
SPELLED = {
    "_array_from_scalar_or_array": "array", "array_from_args": "array", "_astype": "astype",
    "_primitive_mean": "mean", "_primitive_std": "std", "_primitive_var": "var",
    "concatenate_args": "concatenate", "make_diagonal": "diag", "untake": "getitem",
    "__getitem__": "getitem", "dot_adjoint_0": "dot", "dot_adjoint_1": "dot",
    "tensordot_adjoint_0": "tensordot", "tensordot_adjoint_1": "tensordot", "msort": None,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_symbolic_agrees_or_refuses(name: str) -> None:
    f, x0 = CASES[name]
    with np.errstate(all="ignore"):
        g = _scalar(f, _weights(f(x0)))
        expected = _central(g, x0)
    if name in SYMBOLIC_REFUSES:
        with pytest.raises((dk.UnsupportedOperation, dk.TracingError), match="symbolic"):
            dk.grad(g, backend="symbolic")(x0)
        return
    with np.errstate(all="ignore"):
        got = dk.grad(g, backend="symbolic")(x0)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7, err_msg=f"{name} on symbolic")


@pytest.mark.parametrize("name", sorted(CONSTANT))
def test_constant_functions_on_symbolic(name: str) -> None:
    c = CONSTANT[name]
    f = lambda x: np.sum(x * c(x))  # noqa: E731
    if name not in SYMBOLIC_CONSTANTS:
        with pytest.raises(dk.UnsupportedOperation, match="symbolic"):
            dk.grad(f, backend="symbolic")(V)
        return
    with np.errstate(all="ignore"):
        expected = np.broadcast_to(np.asarray(c(V), dtype=float), V.shape)
    np.testing.assert_array_equal(dk.grad(f, backend="symbolic")(V), expected)


def test_every_autograd_name_has_a_case() -> None:
    missing = [n for n in AUTOGRAD_NAMES if n not in CASES and SPELLED.get(n, "?") not in CASES
               and not (n in SPELLED and SPELLED[n] is None)]
    assert missing == []
    assert len(CONSTANT) == 51  # autograd's nograd_functions, one for one
