"""Reverse mode: a tape over NumPy arrays and one iterative backward sweep.

Running the user's function on :class:`Node` values appends one record per
primitive to the trace's tape. A backward sweep walks the tape once, from the
output to the inputs, calling each primitive's VJP rule from the table. The
sweep is a loop over a list, not a recursive graph walk, so depth is
unlimited. Cotangents may carry leading batch dimensions: a Jacobian of a
function with m outputs is one sweep with m cotangents.

The tape keeps the primal values the rules read (each primitive declares them,
``saves``); cotangents live in a list local to each sweep, so a ``vjp_fn`` can
be called any number of times. The sweep below is reverse mode as a textbook
writes it; :mod:`diffkit.backends.accel` holds the faster one that
``Reverse(accelerate=True)``, the default, runs instead.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..core.primitive import OUT, P, Primitive
from ..core.values import Value, is_complex, new_level, pack, shape_of
from ..custom import custom_reverse_record
from . import accel
from .base import (
    ADBackend,
    Diagonal,
    Dropped,
    check_output,
    full,
    rule_on_numpy,
    unbroadcast,
    zeros_batched,
)
from .forward import forward_over

_NOTHING = object()
_float64 = np.float64
# the math fast path's lookup, bound once: a trace is made per transformation
_FAST_SCALAR = accel.SCALAR.get
_NO_SCALAR: Any = {}.get


_PLANS: dict[tuple[Primitive, int], tuple[tuple[int, ...], tuple[int, ...], bool] | None] = {}


def _plan(prim: Primitive, mask: int, n: int) -> tuple[tuple[int, ...], tuple[int, ...], bool] | None:
    """What a record of ``prim`` keeps, for the differentiated arguments whose bits are set
    in ``mask`` (of ``n`` arguments): ``(differentiated arguments to drop, constants to
    drop, drop the output)``, from what their VJP rules read (the table's ``saves``).

    ``None`` when the primitive declares nothing (keep everything). Cached per primitive
    and pattern.
    """
    key = (prim, mask)
    try:
        return _PLANS[key]
    except KeyError:
        pass
    result = None
    if prim.saves is not None:
        need = {k for j in range(n) if mask >> j & 1 for k in prim.saves[j]}
        result = (tuple(j for j in range(n) if j not in need and mask >> j & 1),
                  tuple(j for j in range(n) if j not in need and not mask >> j & 1),
                  OUT not in need)
    _PLANS[key] = result
    return result


def _shape(v: Any) -> tuple[int, ...]:
    """The shape of a recorded value, or of one the record dropped."""
    return v.shape if type(v) is Dropped else shape_of(v)


class Node(Value):
    """A value recorded on a reverse-mode tape."""

    __slots__ = ("_trace", "primal", "index")

    def __init__(self, trace: ReverseTrace, primal: Any, index: int):
        self._trace = trace
        self.primal = primal
        self.index = index

    def __repr__(self) -> str:
        return f"Node({self.primal!r}, backend='reverse', level={self._trace.level})"


class ReverseTrace:
    """One reverse-mode transformation: a level and its tape."""

    backend_name = "reverse"

    def __init__(self, accelerate: bool = True) -> None:
        self.level = new_level()
        self.accelerate = accelerate
        self.scalar = _FAST_SCALAR if accelerate else _NO_SCALAR
        # A record: (primitive, parent indices (-1 for constants), argument values, output,
        # params). Values that no VJP rule reads are dropped, so that NumPy can reuse their
        # memory: an argument's value or the output is then a Dropped (its shape only), a
        # constant's is None.
        self.tape: list[tuple[Any, ...] | None] = []
        self.arguments: set[int] = set()  # ids of the leaves (mark_argument)

    def leaf(self, value: Any) -> Node:
        node = Node(self, value, len(self.tape))
        self.tape.append(None)
        self.arguments.add(id(node))  # (the sweep reads the leaves after the function returns:
        return node                   # node[i] = v inside the function is refused, core/values.py)

    def apply(self, prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        # This runs once per operation of the user's code: written for speed.
        vals = []
        parents = []
        for a in args:
            if type(a) is Node and a._trace is self:
                vals.append(a.primal)
                parents.append(a.index)
            else:
                vals.append(a)
                parents.append(-1)
        out = _NOTHING  # accel.evaluate, deliberately inlined (also in the other AD backend): a call per op counts
        if not params:
            for v in vals:
                if type(v) is not float and type(v) is not int:
                    break
            else:  # Python floats: math, not NumPy
                scalar = self.scalar(prim)
                if scalar is not None:
                    try:
                        out = scalar(*vals)
                    except (ValueError, ArithmeticError):
                        # math raises where NumPy gives inf or NaN (with a warning): NumPy's answer
                        out = prim.numpy(*[_float64(v) for v in vals])
        if out is _NOTHING:
            out = prim.numpy(*vals, **params) if params else prim.numpy(*vals)
        if not prim.differentiable:
            return out
        if prim.nondiff_args:
            for j in prim.nondiff_args:
                parents[j] = -1
        to = type(out)
        if to is not float and (out.dtype.kind == "c" if to is np.ndarray else is_complex(out)):
            self._promote(parents, vals)
        node = Node(self, out, len(self.tape))
        if type(out) is np.ndarray and prim.saves is not None:
            # keep only what the rules of the differentiated arguments read
            n = len(parents)
            if n == 1:
                mask = 1
            elif n == 2:
                mask = (parents[0] >= 0) + 2 * (parents[1] >= 0)
            else:
                mask = 0
                for j, p in enumerate(parents):
                    if p >= 0:
                        mask |= 1 << j
            plan = _PLANS.get((prim, mask), _NOTHING)
            if plan is _NOTHING:
                plan = _plan(prim, mask, n)
            if plan is not None:
                drop_args, drop_consts, drop_out = plan
                for j in drop_args:
                    v = vals[j]
                    vals[j] = Dropped(v.shape if type(v) is np.ndarray else shape_of(v))
                for j in drop_consts:
                    vals[j] = None
                if drop_out:
                    out = Dropped(out.shape)
        self.tape.append((prim, parents, vals, out, params))
        return node

    def _promote(self, parents: list[int], vals: list[Any]) -> None:
        """A complex result of real values: each real parent is recorded as entering
        complex arithmetic (``to_complex``, whose VJP keeps the real part), so that the
        cotangent of a real value stays real (JAX's convention, docs/complex.md)."""
        for j, p in enumerate(parents):
            if p < 0:
                continue
            v = vals[j]
            if is_complex(v):
                continue
            kept = Dropped(v.shape) if type(v) is np.ndarray else v  # the rule reads neither
            parents[j] = len(self.tape)
            self.tape.append((P.to_complex, [p], [kept], kept, {}))

    def call_custom(self, fn: Any, args: tuple[Any, ...]) -> Any:
        vals = [a.primal if isinstance(a, Node) and a._trace is self else a for a in args]
        out, prim = custom_reverse_record(fn, vals, lambda: ReverseTrace(self.accelerate))
        parents = [a.index if isinstance(a, Node) and a._trace is self else -1 for a in args]
        node = Node(self, out, len(self.tape))
        self.tape.append((prim, parents, vals, out, {}))
        return node

    def backward(self, out: Node, ct: Any, nb: int, leaves: Sequence[Node]) -> list[Any]:
        """Cotangents of ``leaves`` for the cotangent ``ct`` of ``out`` (``nb`` batch axes)."""
        cts = accel.sweep(self.tape, out.index, ct, nb) if self.accelerate else self.sweep(out, ct, nb)
        res = []
        for leaf in leaves:
            c = cts[leaf.index] if leaf.index < len(cts) else None
            res.append(c.dense() if type(c) is Diagonal else c)
        return res

    def sweep(self, out: Node, ct: Any, nb: int = 0, keep: bool = False) -> list[Any]:
        """The cotangent of every tape entry up to ``out`` (``None`` where unreached).

        Intermediate cotangents are freed as the sweep passes them, unless ``keep``
        (``dk.graph`` shows every node's gradient). Accelerated, ``ct`` may be a
        :class:`~diffkit.backends.base.Diagonal` batch (with ``nb == 1``), and so may the
        cotangents of the inputs.
        """
        if self.accelerate:
            return accel.sweep(self.tape, out.index, ct, nb, keep)
        tape = self.tape
        cts: list[Any] = [None] * (out.index + 1)
        cts[out.index] = ct
        batch = shape_of(ct)[:nb]
        for i in range(out.index, -1, -1):
            g = cts[i]
            record = tape[i]
            if g is None or record is None:  # unreached, or an input (its cotangent stays)
                continue
            if not keep:
                cts[i] = None  # the sweep never comes back
            prim, parents, vals, value, params = record
            # a cotangent may come back smaller than its value (constant along the axes
            # a reduction removed): the rules get it whole
            g = full(g, batch + _shape(value))
            for j, p in enumerate(parents):
                if p < 0:
                    continue
                shape = batch + _shape(vals[j])
                rule = prim.vjp_rule(j)
                try:
                    gj = rule(g, value, *vals, **params)
                except ArithmeticError:  # Python floats at a domain edge (0.5 / 0.0): NumPy's inf
                    gj = rule_on_numpy(rule, g, value, vals, params)
                gj = full(unbroadcast(gj, shape[nb:], nb), shape)  # an argument broadcast forward
                cts[p] = gj if cts[p] is None else cts[p] + gj
        return cts


class Reverse(ADBackend):
    """Reverse-mode automatic differentiation (the default backend).

    Gradients cost one forward pass plus one backward sweep, whatever the
    number of inputs; Jacobians use one sweep with a batch of cotangents.

    Example:
        >>> import numpy as np, diffkit as dk
        >>> float(dk.grad(lambda x: np.sin(x) * x, backend=dk.Reverse())(2.0))
        0.077...
    """

    name = "reverse"
    prefers_reverse = True
    complex_arguments = True
    """Differentiates with respect to complex arguments itself: its VJP rules are JAX's
    transposes (the other backends get the real and imaginary parts, see
    :mod:`diffkit.backends.complex_args`)."""

    def __init__(self, accelerate: bool = True):
        self.accelerate = accelerate
        self.diagonal_seeds = accelerate

    def __repr__(self) -> str:
        return "Reverse()" if self.accelerate else "Reverse(accelerate=False)"

    def hessian(self, fun: Callable[..., Any], primals: Sequence[Any],
                argnums: Sequence[int]) -> tuple[tuple[Any, ...], ...]:
        """Second derivatives ``H[i][j]``: forward over reverse (one forward pass with a
        batch of tangents through the gradient)."""
        return forward_over(self, fun, primals, argnums)

    def vjp(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
            has_aux: bool = False) -> tuple[Any, Callable[..., tuple[Any, ...]], Any]:
        trace = ReverseTrace(self.accelerate)
        args = list(primals)
        leaves = []
        for i in argnums:
            leaf = trace.leaf(args[i])
            leaves.append(leaf)
            args[i] = leaf
        complex_leaves = any(is_complex(primals[i]) for i in argnums)
        result = fun(*args)
        out, aux = (result[0], result[1]) if has_aux else (result, None)
        out = pack(out)
        traced = isinstance(out, Node) and out._trace is trace
        if not traced:
            check_output(out, self.name)  # None, a bool, an integer: no derivative, not a zero one
        out_value = out.primal if traced else out

        def vjp_fn(ct: Any, nb: int = 0) -> tuple[Any, ...]:
            batch = ct.batch if type(ct) is Diagonal else shape_of(ct)[:nb]
            if not traced:
                return tuple(zeros_batched(batch, primals[i]) for i in argnums)
            cts = trace.backward(out, ct, nb, leaves)
            res = []
            for c, i in zip(cts, argnums):
                want = batch + shape_of(primals[i])
                if c is None:
                    c = zeros_batched(batch, primals[i])
                elif shape_of(c) != want:
                    c = full(unbroadcast(c, want[nb:], nb), want)
                if complex_leaves and not is_complex(c) and is_complex(primals[i]):
                    c = P.real.vjp[0](c, None, None)  # as a complex number, as JAX gives it
                res.append(c)
            return tuple(res)

        return out_value, vjp_fn, (None if aux is None else _strip(aux, trace))

    def jvp(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
            tangents: Sequence[Any], nb: int = 0) -> tuple[Any, Any]:
        # The "double vjp" trick: vjp_fn is linear in its cotangent, and the vjp of
        # that linear map, taken at the tangent, is J @ tangent. Reverse over reverse.
        out, vjp_fn, _ = self.vjp(fun, primals, argnums)
        ct0 = np.zeros(np.shape(out), dtype=np.result_type(out, float))
        inner = ReverseTrace(self.accelerate)
        c = inner.leaf(ct0)
        cts = vjp_fn(c)
        # <J^T c, t> summed over the primal axes only: batch axes of t stay.
        total: Any = 0.0
        for g, t in zip(cts, tangents):
            axes = tuple(range(nb, nb + int(np.ndim(g))))
            total = total + np.sum(g * t, axis=axes)
        # <vjp_fn(c), t> is Re<c, J t> (JAX's pairing: complex arguments or outputs):
        # its gradient with respect to c is J t, also where J is only real-linear
        total = np.real(pack(total))
        batch = tuple(np.shape(tangents[0])[:nb]) if tangents else ()
        if not (isinstance(total, Node) and total._trace is inner):
            return out, zeros_batched(batch, ct0)
        seed = np.ones(batch, dtype=ct0.dtype)
        (jt,) = inner.backward(total, seed, 0, [c]) if not nb else self._batched_seed(inner, total, c, batch)
        return out, (zeros_batched(batch, ct0) if jt is None else jt)

    @staticmethod
    def _batched_seed(inner: ReverseTrace, total: Node, c: Node, batch: tuple[int, ...]) -> list[Any]:
        # total has shape batch; seeding it with the identity over batch gives one
        # cotangent per tangent: d total[k] / d c, stacked along the batch axes.
        size = int(np.prod(batch, dtype=np.int64))
        eye = np.eye(size).reshape(batch + batch)
        return inner.backward(total, eye, len(batch), [c])


def _strip(aux: Any, trace: ReverseTrace) -> Any:
    """Auxiliary outputs as plain values (this trace's nodes unwrapped)."""
    if isinstance(aux, Node) and aux._trace is trace:
        return aux.primal
    if isinstance(aux, (list, tuple)):
        return type(aux)(_strip(a, trace) for a in aux)
    if isinstance(aux, dict):
        return {k: _strip(v, trace) for k, v in aux.items()}
    return aux
