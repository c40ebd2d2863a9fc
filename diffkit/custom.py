"""Custom differentiation rules, in JAX's style.

``@custom_jvp`` gives a function its own JVP rule; reverse mode transposes
that rule (it is linear in the tangents) by running it on a fresh tape.
``@custom_vjp`` gives a function a forward pass that saves residuals and a
backward pass; forward mode builds the Jacobian from the backward pass. Where
no AD backend is involved (plain NumPy, the symbolic and numeric backends),
the function itself runs, which is how a wrong rule gets caught by a
cross-check.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np

from .core.values import concrete, pack, top_trace
from .errors import DiffkitError
from .core.primitive import Primitive


class custom_jvp:
    """A function with a user-supplied JVP rule.

    Example:
        >>> import numpy as np, diffkit as dk
        >>> @dk.custom_jvp
        ... def softplus(x):
        ...     return np.log1p(np.exp(x))
        >>> @softplus.defjvp
        ... def softplus_jvp(primals, tangents):
        ...     (x,), (t,) = primals, tangents
        ...     return softplus(x), t / (1 + np.exp(-x))
        >>> round(float(dk.grad(softplus)(0.0)), 6)
        0.5
    """

    def __init__(self, fun: Callable[..., Any]):
        self.fun = fun
        self.jvp_rule: Callable[..., Any] | None = None
        functools.update_wrapper(self, fun)

    def defjvp(self, rule: Callable[[tuple[Any, ...], tuple[Any, ...]], tuple[Any, Any]]) -> Any:
        """Set the rule: ``rule(primals, tangents) -> (out, tangent_out)``."""
        self.jvp_rule = rule
        return rule

    def __call__(self, *args: Any) -> Any:
        trace = top_trace(args)
        if trace is None or _symbolic(args):
            return self.fun(*args)
        if self.jvp_rule is None:
            raise DiffkitError(f"custom_jvp function {self.__name__!r} has no rule: call .defjvp first")
        return trace.call_custom(self, args)


class custom_vjp:
    """A function with a user-supplied VJP (forward pass with residuals, backward pass).

    Example:
        >>> import numpy as np, diffkit as dk
        >>> @dk.custom_vjp
        ... def square(x):
        ...     return x * x
        >>> square.defvjp(lambda x: (x * x, x), lambda x, g: (2 * x * g,))
        >>> float(dk.grad(square)(3.0))
        6.0
    """

    def __init__(self, fun: Callable[..., Any]):
        self.fun = fun
        self.fwd: Callable[..., Any] | None = None
        self.bwd: Callable[..., Any] | None = None
        functools.update_wrapper(self, fun)

    def defvjp(self, fwd: Callable[..., tuple[Any, Any]], bwd: Callable[[Any, Any], tuple[Any, ...]]) -> None:
        """``fwd(*args) -> (out, residuals)``; ``bwd(residuals, ct) -> tuple of cotangents``."""
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args: Any) -> Any:
        trace = top_trace(args)
        if trace is None or _symbolic(args):
            return self.fun(*args)
        if self.fwd is None or self.bwd is None:
            raise DiffkitError(f"custom_vjp function {self.__name__!r} has no rule: call .defvjp first")
        return trace.call_custom(self, args)


def _symbolic(args: tuple[Any, ...]) -> bool:
    """Whether the innermost values are SymPy expressions (the symbolic backend).

    The symbolic backend differentiates a custom function itself, even where it
    runs the AD backends over symbolic values: a cross-check must compare the
    rule with the function, not with itself.
    """
    for a in args:
        base = concrete(a)
        if isinstance(base, np.ndarray) and base.dtype == object:
            return True
        if base is not a and type(base).__module__.startswith("sympy"):
            return True
    return False


def _bwd_tuple(fn: custom_vjp, res: Any, ct: Any, args: Sequence[Any]) -> tuple[Any, ...]:
    """The user's bwd at one cotangent, checked: one cotangent per argument, shaped like it."""
    assert fn.bwd is not None
    cts = fn.bwd(res, ct)
    if not isinstance(cts, (tuple, list)) or len(cts) != len(args):
        raise DiffkitError(
            f"custom_vjp {fn.__name__!r}: bwd must return a tuple with one cotangent per argument "
            f"({len(args)}), got {type(cts).__name__}")
    for i, (c, a) in enumerate(zip(cts, args)):
        _check_shape(fn, "bwd", f"cotangent {i}", c, np.shape(a), f"argument {i}")
    return tuple(cts)


def _check_shape(fn: Any, rule: str, what: str, value: Any, shape: tuple[int, ...], like: str) -> None:
    got = tuple(np.shape(value))
    try:
        fits = np.broadcast_shapes(got, shape) == tuple(shape)
    except ValueError:
        fits = False
    if not fits:
        raise DiffkitError(f"{type(fn).__name__} {fn.__name__!r}: {rule} returned {what} of shape {got}; "
                           f"expected the shape of {like}, {tuple(shape)}")


def custom_reverse_record(fn: Any, vals: Sequence[Any], new_tape: Callable[[], Any]) -> tuple[Any, Primitive]:
    """Output and a one-off table entry whose VJP rule is the user's (reverse mode);
    ``new_tape()`` opens the reverse trace that transposes a custom JVP rule."""
    n = len(vals)
    if isinstance(fn, custom_vjp):
        assert fn.fwd is not None
        out, res = fn.fwd(*vals)
        out = pack(out)

        def vjp_i(i: int, ct: Any, value: Any, *args: Any) -> Any:
            nb = int(np.ndim(ct)) - int(np.ndim(value))
            if nb == 0:
                return _bwd_tuple(fn, res, ct, args)[i]
            # the user's bwd sees one cotangent at a time
            batch = tuple(np.shape(ct)[:nb])
            flat = np.reshape(ct, (-1,) + tuple(np.shape(value)))
            rows = [_bwd_tuple(fn, res, flat[k], args)[i] for k in range(flat.shape[0])]
            return np.reshape(np.stack([np.broadcast_to(r, np.shape(args[i])) * 1.0 for r in rows]),
                              batch + tuple(np.shape(args[i])))

        return out, Primitive(f"custom_vjp:{fn.__name__}", fn.fun, nargs=n, vjp_variadic=vjp_i)

    assert fn.jvp_rule is not None
    zeros = tuple(np.zeros(np.shape(v)) for v in vals)
    out, _ = fn.jvp_rule(tuple(vals), zeros)
    out = pack(out)

    def transpose_i(i: int, ct: Any, value: Any, *args: Any) -> Any:
        # The JVP rule is linear in the tangents: its transpose is the gradient of
        # <ct, jvp(t)> with respect to t, taken on a fresh tape.
        # (imported here: the backends import this module, and importing
        # diffkit.custom first must not run the backends' package half-way)
        from .backends.base import unbroadcast

        inner = new_tape()
        leaves = [inner.leaf(z) for z in zeros]
        _, t_out = fn.jvp_rule(tuple(args), tuple(leaves))
        nb = int(np.ndim(ct)) - int(np.ndim(value))
        t_out = pack(t_out)
        _check_shape(fn, "the JVP rule", "a tangent", t_out, np.shape(value), "its output")
        if not (hasattr(t_out, "_trace") and t_out._trace is inner):
            return np.zeros(tuple(np.shape(ct))[:nb] + np.shape(args[i]))
        g = inner.backward(t_out, ct, nb, [leaves[i]])[0]
        if g is None:
            return np.zeros(tuple(np.shape(ct))[:nb] + np.shape(args[i]))
        return unbroadcast(g, np.shape(args[i]), nb)

    return out, Primitive(f"custom_jvp:{fn.__name__}", fn.fun, nargs=n, vjp_variadic=transpose_i)


def custom_forward(fn: Any, primals: Sequence[Any], tangents: Sequence[Any],
                   batch: tuple[int, ...]) -> tuple[Any, Any]:
    """Output and tangent of a custom function under forward mode."""
    full = tuple(np.zeros(batch + np.shape(p)) if t is None else t for p, t in zip(primals, tangents))
    if isinstance(fn, custom_jvp):
        assert fn.jvp_rule is not None
        if not batch:
            out, t_out = fn.jvp_rule(tuple(primals), full)
            out = pack(out)
            _check_shape(fn, "the JVP rule", "a tangent", pack(t_out), np.shape(out), "its output")
            return out, np.broadcast_to(pack(t_out), tuple(np.shape(out)))
        # the user's rule is written for one tangent, as in JAX: call it once per batch element
        k = int(np.prod(batch, dtype=np.int64))
        flat = [np.reshape(t, (k,) + tuple(np.shape(p))) for t, p in zip(full, primals)]
        outs = [fn.jvp_rule(tuple(primals), tuple(t[j] for t in flat)) for j in range(k)]
        out = pack(outs[0][0])
        oshape = tuple(np.shape(out))
        for o in outs:
            _check_shape(fn, "the JVP rule", "a tangent", pack(o[1]), oshape, "its output")
        t_out = np.stack([np.broadcast_to(pack(o[1]), oshape) for o in outs])
        return out, np.reshape(t_out, batch + oshape)
    # custom_vjp under forward mode: J from the backward pass, one output element at a time.
    assert fn.fwd is not None
    out, res = fn.fwd(*primals)
    out = pack(out)
    oshape = tuple(np.shape(out))
    m = int(np.prod(oshape, dtype=np.int64))
    nb = len(batch)
    cols = []
    for k in range(m):
        e = np.zeros(m)
        e[k] = 1.0
        cts = _bwd_tuple(fn, res, e.reshape(oshape), primals)
        acc: Any = np.zeros(batch)
        for c, t in zip(cts, full):
            axes = tuple(range(nb, int(np.ndim(t))))
            acc = acc + np.sum(t * c, axis=axes)
        cols.append(acc)
    t_out = np.reshape(np.stack(cols, axis=-1), batch + oshape)
    return out, t_out
