"""How the AD backends go fast: speed-ups keyed by primitive, apart from the math.

The table (:mod:`diffkit.primitives`) says what a primitive *is*; this module
says how the forward and reverse backends run it faster without changing the
result:

* :data:`SCALAR`: the primitive on Python floats through :mod:`math` (tens of
  nanoseconds, not the microsecond of a NumPy call), for scalar code;
* :data:`VJP_SCALED`: VJP rules that hand back a Python-number factor instead
  of a pass over an array (``-ct``, ``2 * x * ct``), which the sweep keeps as a
  lazy factor of the cotangent;
* :data:`VJP_DIAGONAL` / :data:`JVP_DIAGONAL`: rules at a Jacobian's seed
  ``diag(d)`` kept unformed (``A @ x`` against the identity is ``A``);
* :func:`sweep`: the reverse sweep that uses them, adds cotangents in place
  into arrays it allocated itself, and scatters a slice's cotangent into its
  parent's instead of padding it with zeros.

Every speed-up is optional: ``dk.Reverse(accelerate=False)`` and
``dk.Forward(accelerate=False)`` run the textbook paths of
:mod:`diffkit.backends.reverse` and :mod:`diffkit.backends.forward`, and the
tests compare the two on every fast path.

Example:
    >>> import numpy as np, diffkit as dk
    >>> f = lambda x: np.sum(-(x[1:] - x[:-1] ** 2) ** 2)
    >>> x = np.linspace(0.0, 1.0, 5)
    >>> fast = dk.grad(f, backend=dk.Reverse())(x)
    >>> plain = dk.grad(f, backend=dk.Reverse(accelerate=False))(x)
    >>> bool(np.allclose(fast, plain, rtol=1e-15, atol=0))
    True
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable

import numpy as np

from ..core.primitive import P, PRIMITIVES, Primitive
from ..primitives import has_advanced_index, matrix_ndim, pad_slice, swap_last_axes
from ..core.values import shape_of
from .base import Diagonal, Dropped, add_batches, full, rule_on_numpy, unbroadcast

Rule = Callable[..., Any]

# --------------------------------------------------------------------------
# Python floats through math
# --------------------------------------------------------------------------


def _sign(x: float) -> float:
    return float((x > 0.0) - (x < 0.0)) if x == x else x


SCALAR: dict[Primitive, Callable[..., Any]] = {
    getattr(P, name): fn for name, fn in {
        "add": operator.add, "subtract": operator.sub, "multiply": operator.mul,
        "divide": operator.truediv, "power": math.pow, "negative": operator.neg,
        "positive": operator.pos, "absolute": abs, "sign": _sign, "sqrt": math.sqrt,
        "square": lambda x: x * x, "reciprocal": lambda x: 1.0 / x,
        "exp": math.exp, "exp2": lambda x: math.pow(2.0, x), "expm1": math.expm1,
        "log": math.log, "log2": math.log2, "log10": math.log10, "log1p": math.log1p,
        "sin": math.sin, "cos": math.cos, "tan": math.tan, "arcsin": math.asin,
        "arccos": math.acos, "arctan": math.atan, "arctan2": math.atan2, "hypot": math.hypot,
        "sinh": math.sinh, "cosh": math.cosh, "tanh": math.tanh, "arcsinh": math.asinh,
        "arccosh": math.acosh, "arctanh": math.atanh,
        "greater": operator.gt, "greater_equal": operator.ge, "less": operator.lt,
        "less_equal": operator.le, "equal": operator.eq, "not_equal": operator.ne,
    }.items()
}
"""The primitive on Python floats. It may raise ``ValueError`` or ``ArithmeticError``
where NumPy returns inf or NaN; the backends then run the NumPy form on NumPy scalars
(as NumPy would have: Python's own ``**`` gives a complex number for a negative base)."""

_NOTHING = object()


def evaluate(prim: Primitive, vals: list[Any], params: dict[str, Any]) -> Any:
    """``prim`` on concrete values: through :data:`SCALAR` when every one is a Python number."""
    scalar = SCALAR.get(prim)
    if scalar is not None and not params:
        for v in vals:
            if type(v) is not float and type(v) is not int:
                break
        else:
            try:
                return scalar(*vals)
            except (ValueError, ArithmeticError):
                # math raises where NumPy gives inf or NaN (with a warning): NumPy's answer
                return prim.numpy(*[np.float64(v) for v in vals])
    return prim.numpy(*vals, **params)


# --------------------------------------------------------------------------
# Lazy factors: a rule ``c * ct`` or ``c * ct * x`` returns ``(c, ct)`` or
# ``(c, ct * x)``, and the factor rides along the sweep (VJPs are linear in the
# cotangent) until it meets another factor, a product, or an array the sweep
# must write. Each returns ``None`` where it has no shortcut (the rule runs).
# --------------------------------------------------------------------------
_WEAK = (float, int)
"""Python numbers: as factors of a float array they keep its dtype."""


def _plain_float(a: Any) -> bool:
    return type(a) is np.ndarray and a.dtype.kind in "fc"


def _negated(ct: Any, *_: Any) -> tuple[float, Any] | None:
    return (-1.0, ct) if type(ct) is np.ndarray else None


def _times_scaled(ct: Any, other: Any) -> tuple[float, Any] | None:
    """``ct * other`` as ``(c, g)``: a Python-number factor, or a float cotangent."""
    if type(other) in _WEAK and type(ct) is np.ndarray:
        return float(other), ct
    if type(ct) is float and _plain_float(other):
        return ct, other
    return None


def _square_scaled(ct: Any, out: Any, x: Any, *_: Any) -> tuple[float, Any] | None:
    """``2 * x * ct``: no pass for a float cotangent, one (``ct * x``) for an array."""
    if not _plain_float(x):
        return None
    return (ct * 2.0, x) if type(ct) is float else (2.0, ct * x)


def _divide_scaled(ct: Any, out: Any, x: Any, y: Any) -> tuple[float, Any] | None:
    if type(y) in _WEAK and y != 0 and type(ct) is np.ndarray:
        return 1.0 / y, ct  # the rule's own ct * (1.0 / y)
    return None


def _pow_scaled_base(ct: Any, out: Any, x: Any, y: Any) -> tuple[float, Any] | None:
    return _square_scaled(ct, out, x) if type(y) in _WEAK and y == 2 else None


VJP_SCALED: dict[Primitive, tuple[Rule | None, ...]] = {
    P.subtract: (None, _negated),
    P.negative: (_negated,),
    P.multiply: (lambda ct, out, x, y: _times_scaled(ct, y), lambda ct, out, x, y: _times_scaled(ct, x)),
    P.divide: (_divide_scaled, None),
    P.square: (_square_scaled,),
    P.power: (_pow_scaled_base, None),
}
"""Per argument, ``rule(ct, out, *args, **params)`` returns ``(c, g)`` with ``c`` a Python
float and ``c * g`` the table's VJP, or ``None``. Called only with a Python float or a
float NumPy array ``ct``."""

# --------------------------------------------------------------------------
# Into a buffer: the same arithmetic written into memory the caller owns (the
# compiled backend's generated code reuses its buffers across calls, so a
# partial derivative or a matrix product allocates nothing per call)
# --------------------------------------------------------------------------


def _one_minus_square_into(buf: np.ndarray, out: Any, x: Any) -> np.ndarray:
    np.multiply(out, out, out=buf)
    return np.subtract(1.0, buf, out=buf)


def _minus_sin_into(buf: np.ndarray, out: Any, x: Any) -> np.ndarray:
    np.sin(x, out=buf)
    return np.negative(buf, out=buf)


PARTIAL_INTO: dict[Primitive, Callable[[np.ndarray, Any, Any], np.ndarray]] = {
    P.tanh: _one_minus_square_into,
    P.sin: lambda buf, out, x: np.cos(x, out=buf),
    P.cos: _minus_sin_into,
    P.log: lambda buf, out, x: np.divide(1.0, x, out=buf),
    P.sqrt: lambda buf, out, x: np.divide(0.5, out, out=buf),
}
"""``partial(buf, out, x)``: the table's partial derivative of a unary elementwise primitive
(``partials[0](out, x)``, the same operations in the same order) written into ``buf``, a float
array of the output's shape. tests/test_table.py checks each against the table, bitwise."""


def matmul_vjp_into(j: int, buf: np.ndarray, ct: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The table's matmul VJP for two matrices (``ct @ b.T``, ``a.T @ ct``) into ``buf``."""
    if j == 0:
        return np.matmul(ct, swap_last_axes(b), out=buf)
    return np.matmul(swap_last_axes(a), ct, out=buf)


# --------------------------------------------------------------------------
# Diagonal seeds
# --------------------------------------------------------------------------


def _rows(d: Any, m: Any) -> Any:
    """``diag(d) @ m`` without the product: row k of ``m`` times ``d[k]``; ``m`` itself for
    the identity (``d`` is 1.0)."""
    if type(d) is float:
        return m if d == 1.0 else m * d
    return (d[:, None] if type(d) is np.ndarray else np.reshape(d, (-1, 1))) * m


def _vec_mat(a: Any, b: Any) -> bool:
    return matrix_ndim(a) == 1 and matrix_ndim(b) == 2


# The seed diag(d) of a Jacobian of a vector against a matrix (A @ x): one scaling of
# the matrix instead of an n x n x n product with the identity.
JVP_DIAGONAL: dict[Primitive, tuple[Rule | None, ...]] = {
    P.matmul: (lambda d, out, a, b: _rows(d, b) if _vec_mat(a, b) else NotImplemented,
               lambda d, out, a, b: _rows(d, swap_last_axes(a)) if _vec_mat(b, a) else NotImplemented),
}
"""Per argument, ``rule(d, out, *args, **params)``: the JVP at the batch of tangents
``diag(d)`` (``d`` the Python float 1.0 for the identity) as a dense batch, or
``NotImplemented``. Elementwise primitives need none (the backends derive it). The
result may share memory with the arguments (the backends never write into it)."""

VJP_DIAGONAL: dict[Primitive, tuple[Rule | None, ...]] = {
    P.matmul: (lambda d, out, a, b: _rows(d, swap_last_axes(b)) if _vec_mat(a, b) else NotImplemented,
               lambda d, out, a, b: _rows(d, a) if _vec_mat(b, a) else NotImplemented),
}
"""As :data:`JVP_DIAGONAL`, for the VJP at the batch of cotangents ``diag(d)``."""

_TABLE = frozenset(PRIMITIVES.values())
"""The table's primitives: their VJPs are linear in the cotangent (a custom VJP need not be)."""


def diagonal_jvp(prim: Primitive, primals: list[Any], tangents: list[Any], out: Any,
                 params: dict[str, Any]) -> Any:
    """The output's tangent when the tangents are :class:`Diagonal` batches, without
    forming them; ``None`` where they must be formed.

    A diagonal tangent belongs to a value of the batch's shape ``(n,)``. An elementwise
    rule acts on each element alone, so on ``d`` it gives the diagonal of the result
    (for an output of that same shape); :data:`JVP_DIAGONAL` rules give a dense batch.
    """
    if prim not in _TABLE or prim.jvp_joint is not None:
        return None
    diag_rules = JVP_DIAGONAL.get(prim)
    total: Any = None
    for i, t in enumerate(tangents):
        if t is None:
            continue
        if type(t) is not Diagonal:
            return None
        rule = diag_rules[i] if diag_rules else None
        if rule is not None:
            c = rule(t.factor, out, *primals, **params)
            if c is NotImplemented:
                return None
        elif prim.elementwise and shape_of(out) == t.d.shape:
            try:
                c = prim.jvp[i](t.d, out, *primals, **params)
            except ArithmeticError:  # a Python-float argument at a domain edge (x / 0.0)
                c = rule_on_numpy(prim.jvp[i], t.d, out, primals, params)
            if type(c) is not np.ndarray or c.shape != t.d.shape:
                return None
            c = Diagonal(c)
        else:
            return None
        total = c if total is None else add_batches(total, c)
    return total


def _diagonal_vjps(prim: Primitive, parents: list[int], vals: list[Any], value: Any,
                   params: dict[str, Any], g: Diagonal) -> list[tuple[int, Any, tuple[int, ...]]] | None:
    """The contributions ``(parent, cotangent, parent's shape)`` of one record for the
    cotangent ``g = diag(d)``, without forming it; ``None`` where it must be formed.

    The record's output has the batch's shape ``(n,)``. An elementwise rule acts on
    each element alone: on ``d`` it gives the diagonal of the result, for an argument of
    the output's shape, or the whole batch, for a scalar argument (a sum over one
    nonzero per row).
    """
    if prim.vjp_variadic is not None or prim not in _TABLE:
        return None
    d = g.d
    out_shape = d.shape
    diag_rules = VJP_DIAGONAL.get(prim)
    res = []
    for j, p in enumerate(parents):
        if p < 0:
            continue
        shape = vals[j]
        shape = shape.shape if type(shape) is Dropped else shape_of(shape)
        rule = diag_rules[j] if diag_rules else None
        if rule is not None:
            gj = rule(g.factor, value, *vals, **params)
            if gj is NotImplemented:
                return None
        elif prim.elementwise and (shape == out_shape or shape == ()):
            try:
                gj = prim.vjp[j](d, value, *vals, **params)
            except ArithmeticError:  # a Python-float argument at a domain edge (x / 0.0)
                gj = rule_on_numpy(prim.vjp[j], d, value, vals, params)
            if type(gj) is not np.ndarray or gj.shape != out_shape:
                return None
            if shape:
                gj = Diagonal(gj)
        else:
            return None
        res.append((p, gj, shape))
    return res


# --------------------------------------------------------------------------
# The fast reverse sweep
# --------------------------------------------------------------------------
_PLAIN = (np.ndarray, float, np.float64, np.float32)


def _shape(v: Any) -> tuple[int, ...]:
    """The shape of a recorded value, or of one the record dropped."""
    return v.shape if type(v) is Dropped else shape_of(v)


def sweep(tape: list[Any], end: int, ct: Any, nb: int = 0, keep: bool = False) -> list[Any]:
    """The cotangent of every tape entry up to ``end`` (``None`` where unreached), for
    the cotangent ``ct`` of entry ``end``: the reverse backend's sweep, accelerated.

    Intermediate cotangents are freed as the sweep passes them, unless
    ``keep`` (``dk.graph`` shows every node's gradient). ``ct`` may be a
    :class:`~diffkit.backends.base.Diagonal` batch (with ``nb == 1``); the
    cotangents of the inputs may be too.
    """
    cts: list[Any] = [None] * (end + 1)
    cts[end] = ct
    # Lazy factors: the cotangent of entry p is scale[p] * cts[p] (1 when absent). A
    # rule such as -ct or 2 * x * ct hands its factor on instead of a pass over an
    # array; VJPs are linear, so the factor passes through the next rules untouched.
    # Only float NumPy arrays carry factors.
    scale: dict[int, float] = {}
    # Arrays this sweep allocated itself may be updated in place (as autograd's
    # "mutable" gradients): a slice's cotangent is then added into its parent's
    # instead of padded with zeros, and sums need no new array.
    owned: dict[int, np.ndarray] = {}
    # Arrays a VJP_SCALED rule handed on unchanged (x in (2 * ct) * x for a float ct):
    # the user's or the tape's, never returned as they are.
    borrowed: dict[int, np.ndarray] = {}
    getitem = P.getitem
    batch = ct.batch if type(ct) is Diagonal else shape_of(ct)[:nb]

    def add(p: int, gj: Any, sj: float, shape: tuple[int, ...]) -> None:
        """Add ``sj * gj`` to the cotangent of entry ``p`` (of shape ``shape``)."""
        prev = cts[p]
        if prev is None:
            cts[p] = gj
            if sj != 1.0:
                scale[p] = sj
            return
        if type(prev) is Diagonal or type(gj) is Diagonal:
            if type(prev) is Diagonal and type(gj) is Diagonal:
                cts[p] = Diagonal(prev.d + gj.d)
                return
            if type(prev) is Diagonal:
                prev = prev.dense()
                owned[id(prev)] = prev
            else:
                gj = gj.dense()
        sp = scale.pop(p, 1.0) if scale else 1.0
        if sp != sj:  # different factors: apply them (in place where the sweep owns the array)
            if sp != 1.0:
                if id(prev) in owned:
                    np.multiply(prev, sp, out=prev)
                else:
                    prev = prev * sp
            if sj != 1.0:
                gj = gj * sj
            sj = 1.0
        if id(prev) in owned and type(gj) in _PLAIN and prev.shape == batch + shape:
            prev += gj
            cts[p] = prev
        else:
            new = prev + gj
            cts[p] = new
            if type(new) is np.ndarray:
                owned[id(new)] = new
        if sj != 1.0:
            scale[p] = sj

    for i in range(end, -1, -1):
        g = cts[i]
        if g is None:
            continue
        record = tape[i]
        if record is None:  # an input: its cotangent stays
            continue
        if not keep:
            cts[i] = None  # free it: the sweep never comes back
        prim, parents, vals, value, params = record
        tg = type(g)
        if tg is float and type(value) is float:
            # scalar code: Python floats throughout, no shapes, no factors
            rules = prim.vjp if prim.vjp_variadic is None else None
            for j, p in enumerate(parents):
                if p < 0:
                    continue
                try:
                    gj = rules[j](g, value, *vals, **params) if rules is not None else \
                        prim.vjp_rule(j)(g, value, *vals, **params)
                except ArithmeticError:  # at a domain edge (0.5 / 0.0): NumPy's inf or NaN
                    gj = rule_on_numpy(prim.vjp_rule(j), g, value, vals, params)
                if type(gj) is float:
                    prev = cts[p]
                    if prev is None:
                        cts[p] = gj
                        continue
                    if type(prev) is float:
                        cts[p] = prev + gj
                        continue
                add(p, gj if shape_of(gj)[nb:] == () else unbroadcast(gj, (), nb), 1.0, ())
            continue
        s = scale.pop(i, 1.0) if scale else 1.0
        if tg is np.ndarray:
            if owned:
                owned.pop(id(g), None)  # never update it in place again
            if s != 1.0 and (keep or prim not in _TABLE):
                g = g * s
                s = 1.0
                if keep:
                    cts[i] = g
        elif tg is Diagonal:
            contributions = _diagonal_vjps(prim, parents, vals, value, params, g)
            if contributions is not None:
                for p, gj, shape in contributions:
                    if g.identity and type(gj) is np.ndarray:
                        borrowed[id(gj)] = gj  # possibly an argument itself (A for A @ x)
                    add(p, gj, 1.0, shape)
                continue
            g = g.dense()
        # _shape, inlined (twice per record counts here)
        out_shape = value.shape if type(value) is Dropped else shape_of(value)
        gshape = g.shape if type(g) is np.ndarray else shape_of(g)
        if not prim.elementwise:  # structural rules want the exact shape
            if gshape != batch + out_shape:
                g = np.broadcast_to(g, batch + out_shape)
        else:
            if (gshape[nb:] if nb else gshape) != out_shape:
                # g is lazily small (constant along some axes). That is fine for arguments
                # of the output's shape; an argument broadcast in the forward pass needs
                # the whole cotangent, to sum it over the axes it was broadcast along.
                for j, p in enumerate(parents):
                    if p >= 0 and _shape(vals[j]) != out_shape:
                        g = full(g, batch + out_shape)
                        break
        tg = type(g)
        rules = prim.vjp if prim.vjp_variadic is None else None
        scaled = VJP_SCALED.get(prim)
        if scaled and not (tg is float or tg is np.ndarray and g.dtype.kind in "fc"):
            scaled = None
        for j, p in enumerate(parents):
            if p < 0:
                continue
            shape = vals[j]
            shape = shape.shape if type(shape) is Dropped else shape_of(shape)
            if prim is getitem and nb == 0 and tg in _PLAIN:
                prev = cts[p]
                idx = params["idx"]
                if prev is None:
                    if tg is np.ndarray and g.dtype.kind in "fc" and not has_advanced_index(idx):
                        padded = pad_slice(g, idx, shape, s)  # the factor in the same pass
                        if padded is not None:
                            cts[p] = padded
                            owned[id(padded)] = padded
                            continue
                elif id(prev) in owned and prev.shape == shape:
                    sp = scale.pop(p, 1.0) if scale else 1.0
                    if sp != 1.0:
                        np.multiply(prev, sp, out=prev)
                    gs = g * s if s != 1.0 else g
                    if has_advanced_index(idx):
                        np.add.at(prev, idx, gs)
                    else:
                        prev[idx] += gs
                    continue
            sj = s
            r = None
            if scaled:
                rule = scaled[j]
                if rule is not None:
                    r = rule(g, value, *vals, **params)
            if r is not None:
                c, gj = r
                sj = s * c
                if tg is float:
                    borrowed[id(gj)] = gj
            else:
                try:
                    gj = rules[j](g, value, *vals, **params) if rules is not None else \
                        prim.vjp_rule(j)(g, value, *vals, **params)
                except ArithmeticError:  # a Python float at a domain edge: NumPy's inf or NaN
                    gj = rule_on_numpy(prim.vjp_rule(j), g, value, vals, params)
            if type(gj) is np.ndarray:
                gshape = gj.shape
                if sj != 1.0 and gj.dtype.kind not in "fc":
                    gj = gj * sj
                    sj = 1.0
            else:
                gshape = shape_of(gj)
                if sj != 1.0:
                    gj = gj * sj
                    sj = 1.0
            if (gshape[nb:] if nb else gshape) != shape and (len(gshape) > nb + len(shape) or 1 in shape):
                gj = unbroadcast(gj, shape, nb)  # an argument broadcast in the forward pass
            if cts[p] is None:
                cts[p] = gj
                if sj != 1.0:
                    scale[p] = sj
                if prim is getitem and nb == 0 and type(gj) is np.ndarray:
                    owned[id(gj)] = gj  # the fresh zeros of a scatter
            else:
                add(p, gj, sj, shape)
    for p, sp in scale.items():  # the inputs' cotangents (and all of them when kept)
        if cts[p] is not None:
            cts[p] = cts[p] * sp
    if borrowed:
        for p, c in enumerate(cts):
            if c is not None and id(c) in borrowed and p not in scale:
                cts[p] = c.copy()
    return cts
