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

from ..core.values import Value, new_level, pack, shape_of
from ..primitives import PRIMITIVES, P, Primitive, _has_advanced, _pad_slice
from .base import ADBackend, Diagonal, full, unbroadcast, zeros_batched


_PLAIN = (np.ndarray, float, np.float64, np.float32)
_TABLE = frozenset(PRIMITIVES.values())
"""The table's primitives: their VJPs are linear in the cotangent (a custom VJP need not be)."""
_NOTHING = object()


_PLANS: dict[tuple[Primitive, int], tuple[tuple[int, ...], tuple[int, ...], bool] | None] = {}


def _plan(prim: Primitive, mask: int, n: int) -> tuple[tuple[int, ...], tuple[int, ...], bool] | None:
    """What a record of ``prim`` keeps, for the differentiated arguments whose bits are set
    in ``mask`` (of ``n`` arguments): ``(differentiated arguments to drop, constants to
    drop, drop the output)``, from what their VJP rules read.

    ``None`` when some rule's needs are unknown (keep everything). Cached per primitive
    and pattern: the analysis runs once, not once per operation.
    """
    key = (prim, mask)
    try:
        return _PLANS[key]
    except KeyError:
        pass
    need: set[int] = set()
    result = None
    for j in range(n):
        if mask >> j & 1:
            u = prim.vjp_uses[j]
            if u is None:
                break
            need |= u
    else:
        result = (tuple(j for j in range(n) if j not in need and mask >> j & 1),
                  tuple(j for j in range(n) if j not in need and not mask >> j & 1),
                  -1 not in need)
    _PLANS[key] = result
    return result


def _shape(v: Any) -> tuple[int, ...]:
    """The shape of a recorded value, or of one the record dropped (then it is its shape)."""
    return v if type(v) is tuple else shape_of(v)


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
        # A record: (primitive, parent indices (-1 for constants), argument values, output,
        # params). Values that no VJP rule reads are dropped, so that NumPy can reuse their
        # memory: an argument's value is then replaced by its shape (a tuple, which no
        # traced value is), a constant's by None, the output by its shape.
        self.tape: list[tuple[Any, ...] | None] = []

    def leaf(self, value: Any) -> Node:
        node = Node(self, value, len(self.tape))
        self.tape.append(None)
        return node

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
        out = _NOTHING  # core.values.evaluate, inlined (a call per operation counts here)
        scalar = prim.scalar
        if scalar is not None and not params:
            for v in vals:
                if type(v) is not float and type(v) is not int:
                    break
            else:
                try:
                    out = scalar(*vals)  # Python floats: math, not NumPy
                except (ValueError, ArithmeticError):
                    pass  # NumPy gives inf or NaN (with a warning) where math raises
        if out is _NOTHING:
            out = prim.numpy(*vals, **params) if params else prim.numpy(*vals)
        if not prim.differentiable:
            return out
        if prim.nondiff_args:
            for j in prim.nondiff_args:
                parents[j] = -1
        node = Node(self, out, len(self.tape))
        if type(out) is np.ndarray and prim.vjp_uses:
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
                    vals[j] = v.shape if type(v) is np.ndarray else shape_of(v)
                for j in drop_consts:
                    vals[j] = None
                if drop_out:
                    out = out.shape
        self.tape.append((prim, parents, vals, out, params))
        return node

    def call_custom(self, fn: Any, args: tuple[Any, ...]) -> Any:
        from ..custom import custom_reverse_record

        vals = [a.primal if isinstance(a, Node) and a._trace is self else a for a in args]
        out, prim = custom_reverse_record(fn, vals)
        parents = [a.index if isinstance(a, Node) and a._trace is self else -1 for a in args]
        node = Node(self, out, len(self.tape))
        self.tape.append((prim, parents, vals, out, {}))
        return node

    def backward(self, out: Node, ct: Any, nb: int, leaves: Sequence[Node]) -> list[Any]:
        """Cotangents of ``leaves`` for the cotangent ``ct`` of ``out`` (``nb`` batch axes)."""
        cts = self.sweep(out, ct, nb)
        res = []
        for leaf in leaves:
            c = cts[leaf.index] if leaf.index < len(cts) else None
            res.append(c.dense() if type(c) is Diagonal else c)
        return res

    def sweep(self, out: Node, ct: Any, nb: int = 0, keep: bool = False) -> list[Any]:
        """The cotangent of every tape entry up to ``out`` (``None`` where unreached).

        Intermediate cotangents are freed as the sweep passes them, unless
        ``keep`` (``dk.graph`` shows every node's gradient). ``ct`` may be a
        :class:`~diffkit.backends.base.Diagonal` batch (with ``nb == 1``); the
        cotangents of the inputs may be too.
        """
        tape = self.tape
        cts: list[Any] = [None] * (out.index + 1)
        cts[out.index] = ct
        # Lazy factors: the cotangent of entry p is scale[p] * cts[p] (1 when absent). A
        # rule such as -ct or 2 * x * ct hands its factor on instead of a pass over an
        # array; VJPs are linear, so the factor passes through the next rules untouched.
        # Only float NumPy arrays carry factors.
        scale: dict[int, float] = {}
        # Arrays this sweep allocated itself may be updated in place (as autograd's
        # "mutable" gradients): a slice's cotangent is then added into its parent's
        # instead of padded with zeros, and sums need no new array.
        owned: dict[int, np.ndarray] = {}
        # Arrays a vjp_scaled rule handed on unchanged (x in (2 * ct) * x for a float ct):
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

        for i in range(out.index, -1, -1):
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
                    gj = rules[j](g, value, *vals, **params) if rules is not None else \
                        prim.vjp_rule(j)(g, value, *vals, **params)
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
            out_shape = value if type(value) is tuple else shape_of(value)
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
            scaled = prim.vjp_scaled
            if scaled and not (tg is float or tg is np.ndarray and g.dtype.kind in "fc"):
                scaled = None
            for j, p in enumerate(parents):
                if p < 0:
                    continue
                shape = vals[j]
                if type(shape) is not tuple:  # a value the record kept, not a dropped one's shape
                    shape = shape_of(shape)
                if prim is getitem and nb == 0 and tg in _PLAIN:
                    prev = cts[p]
                    idx = params["idx"]
                    if prev is None:
                        if tg is np.ndarray and g.dtype.kind in "fc" and not _has_advanced(idx):
                            padded = _pad_slice(g, idx, shape, s)  # the factor in the same pass
                            if padded is not None:
                                cts[p] = padded
                                owned[id(padded)] = padded
                                continue
                    elif id(prev) in owned and prev.shape == shape:
                        sp = scale.pop(p, 1.0) if scale else 1.0
                        if sp != 1.0:
                            np.multiply(prev, sp, out=prev)
                        gs = g * s if s != 1.0 else g
                        if _has_advanced(idx):
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
                    gj = rules[j](g, value, *vals, **params) if rules is not None else \
                        prim.vjp_rule(j)(g, value, *vals, **params)
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
    diag_rules = prim.vjp_diagonal
    res = []
    for j, p in enumerate(parents):
        if p < 0:
            continue
        shape = _shape(vals[j])
        rule = diag_rules[j] if diag_rules else None
        if rule is not None:
            gj = rule(g.factor, value, *vals, **params)
            if gj is NotImplemented:
                return None
        elif prim.elementwise and (shape == out_shape or shape == ()):
            gj = prim.vjp[j](d, value, *vals, **params)
            if type(gj) is not np.ndarray or gj.shape != out_shape:
                return None
            if shape:
                gj = Diagonal(gj)
        else:
            return None
        res.append((p, gj, shape))
    return res


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
    diagonal_seeds = True

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
                res.append(c)
            return tuple(res)

        return out_value, vjp_fn, (None if aux is None else _strip(aux, trace))

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
