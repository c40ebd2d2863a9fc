"""What every backend provides, and the operators built on JVPs and VJPs.

A backend implements two transformations on a function of positional
arguments (the operators in :mod:`diffkit.operators` have already chosen the
differentiated arguments and promoted them to floating point):

* ``vjp(fun, primals, argnums)`` returns ``(out, vjp_fn, aux)``;
  ``vjp_fn(ct, nb)`` maps a cotangent with ``nb`` leading batch axes to one
  cotangent per differentiated argument;
* ``jvp(fun, primals, argnums, tangents, nb)`` returns ``(out, tangent_out)``.

Everything else (gradients, Jacobians, Hessians, n-th derivatives) is
derived here, in the mode the backend prefers: a reverse backend builds a
Jacobian from one batched VJP, a forward backend from one batched JVP.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..core.values import Value, concrete, shape_of, structure
from ..errors import InvalidType, ShapeError, TracingError


def rule_on_numpy(rule: Callable[..., Any], g: Any, out: Any, vals: Sequence[Any],
                  params: dict[str, Any]) -> Any:
    """``rule(g, out, *vals, **params)`` with every Python number made a NumPy scalar.

    The backends call it where a rule raised ``ArithmeticError`` on Python floats
    (their scalar fast paths): Python's ``0.5 / 0.0`` raises ``ZeroDivisionError``
    and ``1e200 ** 2`` ``OverflowError`` where NumPy float64 gives inf (with a
    RuntimeWarning). Redone on NumPy scalars the rule gives NumPy's answer, so a
    derivative at a domain edge (``sqrt`` at 0, ``arccos`` at 1) is inf or NaN, as
    NumPy's evaluation of it is, on every path. The scalars take the precision of
    the rule's NumPy operands (a Python float is "weak": ``float32 / 0.0`` stays
    float32), float64 when there are none. Costs nothing until a rule raises.
    """
    args = (g, out, *vals)
    dtype = None
    for v in args:
        c = concrete(v)  # (a traced value's NumPy value; SymPy's have no dtype)
        if isinstance(c, (np.ndarray, np.generic)) and c.dtype.kind in "fc":
            dtype = c.dtype if dtype is None else np.promote_types(dtype, c.dtype)
    real = np.float64 if dtype is None else np.finfo(dtype).dtype.type
    cplx = np.result_type(real, np.complex64).type

    def scalar(v: Any) -> Any:
        t = type(v)
        if t is float or t is int:
            return real(v)
        return cplx(v) if t is complex else v

    return rule(*[scalar(v) for v in args], **params)


def _is_expression(e: Any) -> bool:
    """A SymPy expression that is not a condition (the symbolic backend's exact values)."""
    return hasattr(e, "free_symbols") and not (getattr(e, "is_Boolean", False)
                                               or getattr(e, "is_Relational", False))


def _is_entry(e: Any) -> bool:
    t = type(e)
    return t is int or t is float or t is complex or isinstance(e, np.number) or _is_expression(e)


def check_output(out: Any, backend: str) -> None:
    """Refuse an output that has no derivative: anything but a floating-point (or complex)
    number or array, or a traced value.

    ``None`` (a forgotten ``return``), a string, a dict, a bool, an integer, an integer or
    boolean array (a comparison such as ``x > 0``): answering with a zero derivative would
    hide the mistake. JAX refuses them too (``grad requires real-valued outputs``). A float
    that does not depend on the arguments is fine: its derivative is zero. The backends
    call this only for an output their trace did not reach, so the common case pays nothing.
    """
    if isinstance(out, Value) or type(out) is float or type(out) is complex:
        return
    if isinstance(out, (np.ndarray, np.generic)):
        kind = out.dtype.kind
        if kind in "fc" or kind == "O" and all(_is_entry(e) for e in out.flat):
            return  # (object arrays: the symbolic backend's, SymPy expressions and exact zeros)
    elif _is_expression(out):
        return
    refuse_output(describe_output(out), backend, _output_hint(out))


def refuse_output(what: str, backend: str, hint: str) -> None:
    """Raise the :class:`~diffkit.errors.InvalidType` of :func:`check_output`; the
    operators add the function's name and the operator."""
    raise InvalidType(f"the function returned {what}, not a floating-point number or array "
                      f"(backend '{backend}'), and has no derivative; {hint}")


def describe_output(out: Any) -> str:
    """What a function returned, in a few words (for error messages)."""
    if out is None:
        return "None"
    if isinstance(out, (np.ndarray, np.generic)) and getattr(out, "ndim", 0):
        return f"an array of dtype {out.dtype} and shape {out.shape}"
    text = repr(out)
    text = text if len(text) <= 40 else text[:37] + "..."
    if isinstance(out, np.generic):
        return f"a NumPy {out.dtype} ({text})"
    name = type(out).__name__
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name} ({text})"


BOOLEAN_HINT = ("integer and boolean results are not differentiable (as in JAX), and a comparison "
                "such as x > 0 is one: return floats, e.g. np.where(x > 0, 1.0, 0.0)")


def _output_hint(out: Any) -> str:
    if out is None:
        return "does it miss a `return`?"
    dtype = getattr(out, "dtype", None)
    if isinstance(out, (bool, int)) or dtype is not None and dtype.kind in "biu":
        return BOOLEAN_HINT
    return "return a float or an array of floats"


def zeros_batched(batch: tuple[int, ...], like: Any) -> Any:
    """Zeros of shape ``batch + shape(like)`` in ``like``'s floating dtype."""
    return _zeros(batch + tuple(np.shape(like)), _float_dtype(like))


def _zeros(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Zeros; for SymPy (object) values exact SymPy zeros, as :func:`identity` makes them
    (a Python int 0 would read as an integer output, which has no derivative)."""
    if dtype.kind == "O":
        import sympy

        return np.full(shape, sympy.S.Zero, dtype=object)
    return np.zeros(shape, dtype=dtype)


def _float_dtype(x: Any) -> Any:
    dt = x.dtype if type(x) is np.ndarray else np.asarray(structure(x)).dtype
    # object: SymPy expressions, whose seeds stay exact integers (no 1.0* factors)
    return dt if dt.kind in "fcO" else np.dtype(np.float64)


def identity(n: int, dtype: Any) -> np.ndarray:
    """The n x n identity; for SymPy (object) values made of exact SymPy integers."""
    if np.dtype(dtype) == object:
        import sympy

        eye = np.full((n, n), sympy.S.Zero, dtype=object)
        np.fill_diagonal(eye, sympy.S.One)
        return eye
    return np.eye(n, dtype=dtype)


class Diagonal:
    """The batch of (co)tangents ``diag(d)``, kept unformed: a Jacobian's seed.

    For a value of shape ``(n,)`` it stands for the ``n x n`` batch whose
    k-th (co)tangent is ``d[k]`` times the k-th unit vector (the identity
    when ``d`` is all ones). Elementwise rules keep it diagonal (they act on
    ``d`` alone) and the table's ``vjp_diagonal``/``jvp_diagonal`` rules turn
    it into a dense batch without a product with the identity; everything
    else sees :meth:`dense`. ``d`` is a 1-D float NumPy array, never
    modified in place (the identity's is shared and read-only).
    """

    __slots__ = ("d", "identity")

    def __init__(self, d: np.ndarray, identity: bool = False):
        self.d = d
        self.identity = identity  # d is all ones: the table's diagonal rules get 1.0

    @property
    def factor(self) -> Any:
        """What the table's ``vjp_diagonal``/``jvp_diagonal`` rules get: ``d``, or 1.0 for the identity."""
        return 1.0 if self.identity else self.d

    @property
    def batch(self) -> tuple[int, ...]:
        return self.d.shape

    def dense(self) -> np.ndarray:
        d = self.d
        n = d.shape[0]
        m = np.zeros((n, n), dtype=d.dtype)
        m.flat[::n + 1] = d
        return m

    __array_ufunc__ = None  # no silent object arrays: NumPy refuses to mix it with arrays

    def __repr__(self) -> str:
        return f"Diagonal({self.d!r})"


class Dropped:
    """A value the reverse tape did not keep, because no VJP rule of its record reads it
    (the primitive's declared ``saves``): only its shape stays.

    It refuses every use as a number, so a rule that reads what it did not declare fails
    loudly instead of computing with a stand-in.
    """

    __slots__ = ("shape",)
    __array_ufunc__ = None  # NumPy refuses it in every ufunc

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TracingError("a value the reverse tape dropped was read: a VJP rule reads more than "
                           "its primitive's `saves` declares")

    def __repr__(self) -> str:
        return f"Dropped(shape={self.shape})"


def dense(t: Any) -> Any:
    """``t``, a :class:`Diagonal` formed."""
    return t.dense() if type(t) is Diagonal else t


def add_batches(a: Any, b: Any) -> Any:
    """``a + b`` for (co)tangents that may be :class:`Diagonal`."""
    if type(a) is Diagonal:
        if type(b) is Diagonal:
            return Diagonal(a.d + b.d)
        a = a.dense()
    elif type(b) is Diagonal:
        b = b.dense()
    return a + b


_ONES: dict[tuple[int, Any], np.ndarray] = {}


def diagonal_seed(x: Any) -> Diagonal | None:
    """The identity seed of a Jacobian with respect to (or of) ``x``, unformed; ``None``
    unless ``x`` is a 1-D float NumPy array."""
    if type(x) is np.ndarray and x.ndim == 1 and x.dtype.kind == "f":
        key = (x.shape[0], x.dtype)
        ones = _ONES.get(key)
        if ones is None:
            if len(_ONES) > 64:
                _ONES.clear()
            ones = _ONES[key] = np.ones(x.shape, dtype=x.dtype)
            ones.flags.writeable = False  # shared: d is never written in place
        return Diagonal(ones, identity=True)
    return None


def _one(out: Any) -> Any:
    """The seed cotangent 1 in the output's type (a Python float keeps scalar code fast)."""
    if type(out) is float or type(out) is np.float64:
        return 1.0
    dtype = _float_dtype(out)
    if dtype.kind == "O":  # SymPy values: an exact SymPy one, as identity() makes it
        import sympy

        return sympy.S.One
    return np.ones((), dtype=dtype)[()]


def unbroadcast(g: Any, shape: tuple[int, ...], nb: int) -> Any:
    """Sum the axes along which ``g`` was broadcast, so that it fits ``batch + shape``.

    ``g`` has ``nb`` leading batch axes. The result may stay *smaller* than
    ``batch + shape`` (a cotangent that is constant along some axes, such as
    the one ``sum`` sends back): it broadcasts to the full shape wherever it
    is used, which saves materializing it. :func:`full` materializes it.
    """
    gs = shape_of(g)
    start = len(gs) - len(shape)  # where the argument's own axes begin
    if start < nb:
        return g
    axes = list(range(nb, start))
    for i, d in enumerate(shape):
        if d == 1 and gs[start + i] != 1:
            axes.append(start + i)
    if not axes:
        return g
    if type(g) is np.ndarray:  # methods skip NumPy's dispatch layer: this runs once per broadcast
        g = g.sum(axis=tuple(axes), keepdims=True)
    else:
        g = np.sum(g, axis=tuple(axes), keepdims=True)
    if start == nb:
        return g
    new = gs[:nb] + shape_of(g)[start:]  # without the leading axes summed over
    return g.reshape(new) if type(g) is np.ndarray else np.reshape(g, new)


def full(g: Any, shape: tuple[int, ...]) -> Any:
    """``g`` broadcast to exactly ``shape`` (a view where it was smaller)."""
    return g if shape_of(g) == shape else np.broadcast_to(g, shape)


def split_aux(fun: Callable[..., Any], has_aux: bool) -> tuple[Callable[..., Any], list[Any]]:
    """``fun`` without its auxiliary output, and the list that collects that output."""
    box: list[Any] = []
    if not has_aux:
        return fun, box

    def main_output(*args: Any) -> Any:
        out, aux = fun(*args)
        box.append(aux)
        return out

    return main_output, box


_SCALAR_PASSES = 4
"""Up to this many scalar inputs, forward mode makes one unbatched pass per input."""


class ADBackend:
    """Operators derived from ``jvp`` and ``vjp``; subclasses implement those two."""

    name = "?"
    prefers_reverse = True
    diagonal_seeds = False
    """Whether ``vjp_fn`` and ``jvp`` take a :class:`Diagonal` batch (a Jacobian's seed)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # Subclasses implement these two --------------------------------------------
    def vjp(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
            has_aux: bool = False) -> tuple[Any, Callable[..., tuple[Any, ...]], Any]:
        raise NotImplementedError

    def jvp(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
            tangents: Sequence[Any], nb: int = 0) -> tuple[Any, Any]:
        raise NotImplementedError

    # Derived operators -------------------------------------------------------------
    def value_and_grad(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
                       has_aux: bool = False, name: str = "f") -> tuple[Any, tuple[Any, ...], Any]:
        if self.prefers_reverse:
            out, vjp_fn, aux = self.vjp(fun, primals, argnums, has_aux)
            _check_scalar(out, name, self.name)
            return out, vjp_fn(_one(out)), aux
        f_noaux, aux_box = split_aux(fun, has_aux)
        out, jacs = self.jacobian(f_noaux, primals, argnums)
        _check_scalar(out, name, self.name)
        return out, jacs, (aux_box[0] if aux_box else None)

    def jacobian(self, fun: Callable[..., Any], primals: Sequence[Any],
                 argnums: Sequence[int]) -> tuple[Any, tuple[Any, ...]]:
        """``(out, jacobians)``; each Jacobian has shape ``out.shape + arg.shape``."""
        if self.prefers_reverse:
            return self._jacobian_rev(fun, primals, argnums)
        return self._jacobian_fwd(fun, primals, argnums)

    def _jacobian_rev(self, fun: Callable[..., Any], primals: Sequence[Any],
                      argnums: Sequence[int]) -> tuple[Any, tuple[Any, ...]]:
        out, vjp_fn, _ = self.vjp(fun, primals, argnums)
        oshape = shape_of(out)
        dtype = _float_dtype(out)
        if not oshape and dtype.kind == "f":
            # a scalar output: the gradient, one unbatched sweep (no batch axis to carry)
            cts = vjp_fn(_one(out))
        else:
            seed = diagonal_seed(out) if self.diagonal_seeds else None
            if seed is None:
                m = int(np.prod(oshape, dtype=np.int64))
                seed = identity(m, dtype).reshape((m,) + oshape)
            cts = vjp_fn(seed, 1)
        jacs = []
        for c, i in zip(cts, argnums):
            jacs.append(_reshaped(c, oshape + shape_of(primals[i])))
        return out, tuple(jacs)

    def _jacobian_fwd(self, fun: Callable[..., Any], primals: Sequence[Any],
                      argnums: Sequence[int]) -> tuple[Any, tuple[Any, ...]]:
        sizes = [_size(primals[i]) for i in argnums]
        k = sum(sizes)
        if k <= _SCALAR_PASSES and all(type(primals[i]) is float for i in argnums):
            return self._jacobian_fwd_scalar(fun, primals, argnums)
        seed = diagonal_seed(primals[argnums[0]]) if self.diagonal_seeds and len(argnums) == 1 else None
        if seed is not None:
            tangents = [seed]
        else:
            tangents = []
            start = 0
            for i, n in zip(argnums, sizes):
                t = _zeros((k, n), _float_dtype(primals[i]))
                t[start:start + n] = identity(n, t.dtype)
                tangents.append(t.reshape((k,) + tuple(np.shape(primals[i]))))
                start += n
        out, tout = self.jvp(fun, primals, argnums, tangents, nb=1)
        oshape = shape_of(out)
        # tout: (k,) + out.shape  ->  out.shape + (k,), then split per argument
        moved = tout.transpose(tuple(range(1, len(oshape) + 1)) + (0,)) if oshape else tout
        jacs = []
        start = 0
        for i, n in zip(argnums, sizes):
            part = moved if n == k else moved[..., start:start + n]
            jacs.append(_reshaped(part, oshape + shape_of(primals[i])))
            start += n
        return out, tuple(jacs)

    def _jacobian_fwd_scalar(self, fun: Callable[..., Any], primals: Sequence[Any],
                             argnums: Sequence[int]) -> tuple[Any, tuple[Any, ...]]:
        # A few scalar inputs: one unbatched pass each keeps the tangents Python
        # floats (the table's math fast path) instead of length-k arrays.
        out = None
        jacs = []
        for i in argnums:
            tangents = [1.0 if j == i else 0.0 for j in argnums]
            out, t = self.jvp(fun, primals, argnums, tangents, nb=0)
            jacs.append(t)
        return out, tuple(jacs)

    def derivative(self, fun: Callable[..., Any], x: Any, order: int) -> Any:
        """The ``order``-th derivative of a function of one scalar, by nesting."""
        g = fun
        for _ in range(order):
            g = _nest_derivative(self, g)
        return g(x)


def _nest_derivative(backend: ADBackend, g: Callable[..., Any]) -> Callable[..., Any]:
    def d(x: Any) -> Any:
        return backend.jacobian(g, [x], [0])[1][0]

    return d


def _size(x: Any) -> int:
    if type(x) is np.ndarray:
        return x.size
    return int(np.prod(shape_of(x), dtype=np.int64))


def _reshaped(c: Any, shape: tuple[int, ...]) -> Any:
    # no view of an array that already has the shape (a view would be copied again)
    return c if shape_of(c) == shape else np.reshape(c, shape)


def _check_scalar(out: Any, name: str, backend: str) -> None:
    if shape_of(out) != ():
        raise ShapeError(
            f"grad of {name} (backend '{backend}'): the function must return a scalar, "
            f"got shape {np.shape(out)}; use dk.jacobian for array outputs")
