"""Reverse mode: a tape over NumPy arrays and one iterative backward sweep.

Running the user's function on :class:`Node` values appends one record per
primitive to the trace's tape. A backward sweep walks the tape once, from the
output to the inputs, calling each primitive's VJP rule from the table. The
sweep is a loop over a list, not a recursive graph walk, so depth is
unlimited. Cotangents may carry leading batch dimensions: a Jacobian of a
function with m outputs is one sweep with m cotangents.

The tape keeps the primal values the rules need; cotangents live in a list
local to each sweep, so a ``vjp_fn`` can be called any number of times.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..core.values import Value, evaluate, new_level, pack, shape_of
from ..primitives import P, Primitive, _has_advanced
from .base import ADBackend, full, unbroadcast, zeros_batched


_PLAIN = (np.ndarray, float, np.float64, np.float32)


_KEEP: dict[tuple[Primitive, tuple[bool, ...]], tuple[bool, ...] | None] = {}


def _keep(prim: Primitive, differentiated: tuple[bool, ...]) -> tuple[bool, ...] | None:
    """Which arguments (and, last, the output) the VJP rules of ``differentiated`` read.

    ``None`` when some rule's needs are unknown (keep everything). Cached per
    primitive and pattern: the analysis runs once, not once per operation.
    """
    key = (prim, differentiated)
    try:
        return _KEEP[key]
    except KeyError:
        pass
    need: set[int] = set()
    result: tuple[bool, ...] | None = None
    for j, d in enumerate(differentiated):
        if d:
            u = prim.vjp_uses[j]
            if u is None:
                break
            need |= u
    else:
        result = tuple(j in need for j in range(len(differentiated))) + (-1 in need,)
    _KEEP[key] = result
    return result


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

    def __init__(self) -> None:
        self.level = new_level()
        # A record: (primitive, parent indices (-1 for constants), argument values, output, params).
        self.tape: list[tuple[Any, ...] | None] = []

    def leaf(self, value: Any) -> Node:
        node = Node(self, value, len(self.tape))
        self.tape.append(None)
        return node

    def apply(self, prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        vals = []
        parents = []
        for a in args:
            if type(a) is Node and a._trace is self:
                vals.append(a.primal)
                parents.append(a.index)
            else:
                vals.append(a)
                parents.append(-1)
        out = evaluate(prim, vals, params)
        if not prim.differentiable:
            return out
        for j in prim.nondiff_args:
            parents[j] = -1
        node = Node(self, out, len(self.tape))
        shapes = None
        if prim.vjp_uses and type(out) is np.ndarray:
            # keep only what the rules of the differentiated arguments read
            keep = _keep(prim, tuple(p >= 0 for p in parents))
            if keep is not None:
                shapes = [shape_of(v) for v in vals] + [shape_of(out)]
                vals = [v if k else None for v, k in zip(vals, keep)]
                if not keep[-1]:
                    out = None
        self.tape.append((prim, parents, vals, out, params, shapes))
        return node

    def call_custom(self, fn: Any, args: tuple[Any, ...]) -> Any:
        from ..custom import custom_reverse_record

        vals = [a.primal if isinstance(a, Node) and a._trace is self else a for a in args]
        out, prim = custom_reverse_record(fn, vals)
        parents = [a.index if isinstance(a, Node) and a._trace is self else -1 for a in args]
        node = Node(self, out, len(self.tape))
        self.tape.append((prim, parents, vals, out, {}, None))
        return node

    def backward(self, out: Node, ct: Any, nb: int, leaves: Sequence[Node]) -> list[Any]:
        """Cotangents of ``leaves`` for the cotangent ``ct`` of ``out`` (``nb`` batch axes)."""
        cts = self.sweep(out, ct, nb)
        return [cts[leaf.index] if leaf.index < len(cts) else None for leaf in leaves]

    def sweep(self, out: Node, ct: Any, nb: int = 0, keep: bool = False) -> list[Any]:
        """The cotangent of every tape entry up to ``out`` (``None`` where unreached).

        Intermediate cotangents are freed as the sweep passes them, unless
        ``keep`` (``dk.graph`` shows every node's gradient).
        """
        tape = self.tape
        cts: list[Any] = [None] * (out.index + 1)
        cts[out.index] = ct
        # Arrays this sweep allocated itself may be updated in place (as autograd's
        # "mutable" gradients): a slice's cotangent is then added into its parent's
        # instead of padded with zeros, and sums need no new array.
        owned: dict[int, np.ndarray] = {}
        getitem = P.getitem
        batch = shape_of(ct)[:nb]
        for i in range(out.index, -1, -1):
            g = cts[i]
            record = tape[i]
            if g is None or record is None:  # unreached, or an input (its cotangent stays)
                continue
            if not keep:
                cts[i] = None  # free it: the sweep never comes back
            owned.pop(id(g), None)  # and never update it in place again
            prim, parents, vals, value, params, shapes = record
            out_shape = shapes[-1] if shapes is not None else shape_of(value)
            if not prim.elementwise:  # structural rules want the exact shape
                g = full(g, batch + out_shape)
            elif shape_of(g)[nb:] != out_shape:
                # g is lazily small (constant along some axes). That is fine for arguments
                # of the output's shape; an argument broadcast in the forward pass needs
                # the whole cotangent, to sum it over the axes it was broadcast along.
                for j, p in enumerate(parents):
                    if p >= 0 and (shapes[j] if shapes is not None else shape_of(vals[j])) != out_shape:
                        g = full(g, batch + out_shape)
                        break
            rules = prim.vjp if prim.vjp_variadic is None else None
            for j, p in enumerate(parents):
                if p < 0:
                    continue
                prev = cts[p]
                if type(g) is float and prev is None and rules is not None:
                    # scalar code: a float cotangent needs no shape bookkeeping
                    gj = rules[j](g, value, *vals, **params)
                    if type(gj) is float:
                        cts[p] = gj
                        continue
                else:
                    gj = None
                shape = shapes[j] if shapes is not None else shape_of(vals[j])
                if (prim is getitem and nb == 0 and prev is not None and id(prev) in owned
                        and type(g) in _PLAIN and prev.shape == shape):
                    idx = params["idx"]
                    if _has_advanced(idx):
                        np.add.at(prev, idx, g)
                    else:
                        prev[idx] += g
                    continue
                if gj is None:
                    gj = rules[j](g, value, *vals, **params) if rules is not None else \
                        prim.vjp_rule(j)(g, value, *vals, **params)
                if shape_of(gj)[nb:] != shape:
                    gj = unbroadcast(gj, shape, nb)
                if prev is None:
                    cts[p] = gj
                    if prim is getitem and nb == 0 and type(gj) is np.ndarray:
                        owned[id(gj)] = gj  # the fresh zeros of a scatter
                elif id(prev) in owned and type(gj) in _PLAIN and prev.shape == batch + shape:
                    prev += gj
                else:
                    new = prev + gj
                    cts[p] = new
                    if type(new) is np.ndarray:
                        owned[id(new)] = new
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

    def vjp(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
            has_aux: bool = False) -> tuple[Any, Callable[..., tuple[Any, ...]], Any]:
        trace = ReverseTrace()
        args = list(primals)
        leaves = []
        for i in argnums:
            leaf = trace.leaf(args[i])
            leaves.append(leaf)
            args[i] = leaf
        result = fun(*args)
        out, aux = (result[0], result[1]) if has_aux else (result, None)
        out = pack(out)
        traced = isinstance(out, Node) and out._trace is trace
        out_value = out.primal if traced else out

        def vjp_fn(ct: Any, nb: int = 0) -> tuple[Any, ...]:
            batch = tuple(np.shape(ct)[:nb])
            if not traced:
                return tuple(zeros_batched(batch, primals[i]) for i in argnums)
            cts = trace.backward(out, ct, nb, leaves)
            return tuple(zeros_batched(batch, primals[i]) if c is None else full(unbroadcast(
                c, shape_of(primals[i]), nb), batch + shape_of(primals[i])) for c, i in zip(cts, argnums))

        return out_value, vjp_fn, _strip(aux, trace)

    def jvp(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
            tangents: Sequence[Any], nb: int = 0) -> tuple[Any, Any]:
        # The "double vjp" trick: vjp_fn is linear in its cotangent, and the vjp of
        # that linear map, taken at the tangent, is J @ tangent. Reverse over reverse.
        out, vjp_fn, _ = self.vjp(fun, primals, argnums)
        ct0 = np.zeros(np.shape(out), dtype=np.result_type(out, float))
        inner = ReverseTrace()
        c = inner.leaf(ct0)
        cts = vjp_fn(c)
        # <J^T c, t> summed over the primal axes only: batch axes of t stay.
        total: Any = 0.0
        for g, t in zip(cts, tangents):
            axes = tuple(range(nb, nb + int(np.ndim(g))))
            total = total + np.sum(g * t, axis=axes)
        total = pack(total)
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
