"""Forward mode: tagged dual numbers over NumPy arrays, with batched tangents.

A :class:`Dual` carries a primal value and a tangent. The tangent may have
leading batch axes, so the whole Jacobian of R^n -> R^m is one pass carrying
n tangents. Each dual is tagged with the trace (level) that made it; duals of
another trace are constants to it, which rules out perturbation confusion.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..core.primitive import Primitive
from ..core.values import Value, mark_argument, new_level, pack, shape_of
from ..custom import custom_forward
from . import accel
from .base import (
    ADBackend,
    Diagonal,
    check_output,
    rule_on_numpy,
    split_aux,
    zeros_batched,
)

_NOTHING = object()
_float64 = np.float64
# the math fast path's lookup, bound once: a trace is made per transformation
_FAST_SCALAR = accel.SCALAR.get
_NO_SCALAR: Any = {}.get


class Dual(Value):
    """A primal value and its tangent(s), tagged with their trace."""

    # Dual and reverse's Node spell out the same few lines rather than share a base
    # __init__: one is built per operation, and a super() call would cost more than it.

    __slots__ = ("_trace", "primal", "tangent")

    def __init__(self, trace: ForwardTrace, primal: Any, tangent: Any):
        self._trace = trace
        self.primal = primal
        self.tangent = tangent

    def __repr__(self) -> str:
        return f"Dual({self.primal!r}, tangent={self.tangent!r}, level={self._trace.level})"


class ForwardTrace:
    """One forward-mode transformation: a level and the batch shape of its tangents."""

    backend_name = "forward"

    def __init__(self, batch: tuple[int, ...] = (), accelerate: bool = True):
        self.level = new_level()
        self.batch = batch
        self.nb = len(batch)
        self.scalar = _FAST_SCALAR if accelerate else _NO_SCALAR

    def apply(self, prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        primals = []
        tangents: list[Any] = []
        diagonal = False
        for a in args:
            if type(a) is Dual and a._trace is self:
                primals.append(a.primal)
                t = a.tangent
                tangents.append(t)
                if type(t) is Diagonal:
                    diagonal = True
            else:
                primals.append(a)
                tangents.append(None)
        out = _NOTHING  # accel.evaluate, deliberately inlined (also in the other AD backend): a call per op counts
        if not params:
            for v in primals:
                if type(v) is not float and type(v) is not int:
                    break
            else:  # Python floats: math, not NumPy
                scalar = self.scalar(prim)
                if scalar is not None:
                    try:
                        out = scalar(*primals)
                    except (ValueError, ArithmeticError):
                        # math raises where NumPy gives inf or NaN (with a warning): NumPy's answer
                        out = prim.numpy(*[_float64(v) for v in primals])
        if out is _NOTHING:
            out = prim.numpy(*primals, **params) if params else prim.numpy(*primals)
        if not prim.differentiable:
            return out
        for j in prim.nondiff_args:
            tangents[j] = None
        if diagonal:
            t_diag = accel.diagonal_jvp(prim, primals, tangents, out, params)
            if t_diag is not None:
                return Dual(self, out, t_diag)
            tangents = [t.dense() if type(t) is Diagonal else t for t in tangents]
        if type(out) is float and not self.nb and prim.jvp_joint is None:
            # scalar code: no batch axes, no broadcasting, nothing to align
            t_out: Any = None
            for i, t in enumerate(tangents):
                if t is not None:
                    try:
                        c = prim.jvp[i](t, out, *primals, **params)
                    except ArithmeticError:  # Python floats at a domain edge (0.5 / 0.0): NumPy's inf
                        c = rule_on_numpy(prim.jvp[i], t, out, primals, params)
                    t_out = c if t_out is None else t_out + c
            return out if t_out is None else Dual(self, out, t_out)
        if prim.jvp_joint is not None:
            t_out = prim.jvp_joint(tuple(tangents), out, *primals, **params)
        else:
            t_out = None
            out_nd = len(shape_of(out)) if prim.elementwise and self.nb else 0
            for i, t in enumerate(tangents):
                if t is None:
                    continue
                if out_nd:
                    # align a broadcast argument's tangent behind the batch axes
                    missing = out_nd - len(shape_of(primals[i]))
                    if missing > 0:
                        ts = np.shape(t)
                        t = np.reshape(t, ts[:self.nb] + (1,) * missing + ts[self.nb:])
                try:
                    c = prim.jvp[i](t, out, *primals, **params)
                except ArithmeticError:  # Python floats at a domain edge: NumPy's inf or NaN
                    c = rule_on_numpy(prim.jvp[i], t, out, primals, params)
                t_out = c if t_out is None else t_out + c
        if t_out is None:
            return out
        want = self.batch + shape_of(out)
        if (t_out.shape if type(t_out) is np.ndarray else shape_of(t_out)) != want:
            t_out = np.broadcast_to(t_out, want)
        return Dual(self, out, t_out)

    def call_custom(self, fn: Any, args: tuple[Any, ...]) -> Any:
        primals = [a.primal if isinstance(a, Dual) and a._trace is self else a for a in args]
        tangents = [_dense(a.tangent) if isinstance(a, Dual) and a._trace is self else None for a in args]
        out, t_out = custom_forward(fn, primals, tangents, self.batch)
        return Dual(self, out, t_out)


def _dense(t: Any) -> Any:
    return t.dense() if type(t) is Diagonal else t


class Forward(ADBackend):
    """Forward-mode automatic differentiation with batched, tagged duals.

    Example:
        >>> import numpy as np, diffkit as dk
        >>> dk.jacobian(lambda x: np.sin(x) * 2, backend=dk.Forward())(np.zeros(2))
        array([[2., 0.],
               [0., 2.]])
    """

    name = "forward"
    prefers_reverse = False

    def __init__(self, accelerate: bool = True):
        self.accelerate = accelerate
        self.diagonal_seeds = accelerate

    def __repr__(self) -> str:
        return "Forward()" if self.accelerate else "Forward(accelerate=False)"

    def hessian(self, fun: Callable[..., Any], primals: Sequence[Any],
                argnums: Sequence[int]) -> tuple[tuple[Any, ...], ...]:
        """Second derivatives ``H[i][j]``: forward over forward."""
        return forward_over(self, fun, primals, argnums)

    def jvp(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
            tangents: Sequence[Any], nb: int = 0) -> tuple[Any, Any]:
        t0 = tangents[0] if nb else None
        batch = (t0.batch if type(t0) is Diagonal else shape_of(t0)[:nb]) if nb else ()
        trace = ForwardTrace(batch, self.accelerate)
        args = list(primals)
        for i, t in zip(argnums, tangents):
            args[i] = mark_argument(Dual(trace, args[i], t))  # (refused as x[i] = v: as on the other backends)
        out = pack(fun(*args))
        if isinstance(out, Dual) and out._trace is trace:
            return out.primal, _dense(out.tangent)
        check_output(out, self.name)  # None, a bool, an integer: no derivative, not a zero one
        return out, zeros_batched(batch, out)

    def vjp(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
            has_aux: bool = False) -> tuple[Any, Callable[..., tuple[Any, ...]], Any]:
        # Forward mode has no transpose: build the Jacobian in one batched pass,
        # then contract it with each cotangent.
        f, aux_box = split_aux(fun, has_aux)
        out, jacs = self._jacobian_fwd(f, primals, argnums)
        ond = int(np.ndim(out))

        def vjp_fn(ct: Any, nb: int = 0) -> tuple[Any, ...]:
            res = []
            for jac in jacs:
                # ct: batch + out.shape; jac: out.shape + in.shape
                res.append(np.tensordot(ct, jac, axes=(list(range(nb, nb + ond)), list(range(ond)))))
            return tuple(res)

        return out, vjp_fn, (aux_box[0] if aux_box else None)


def forward_over(inner: ADBackend, fun: Callable[..., Any], primals: Sequence[Any],
                 argnums: Sequence[int]) -> tuple[tuple[Any, ...], ...]:
    """Second derivatives ``H[i][j]``: forward mode over ``inner``'s Jacobian.

    For a scalar function on the reverse backend that is forward-over-reverse: one
    forward pass with a batch of tangents through the gradient.
    """
    outer = Forward()
    rows = []
    for i in range(len(argnums)):
        def jac_i(*args: Any, _i: int = i) -> Any:
            return inner.jacobian(fun, args, argnums)[1][_i]

        rows.append(outer.jacobian(jac_i, primals, argnums)[1])
    return tuple(rows)
