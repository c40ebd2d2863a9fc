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

from ..errors import ShapeError


def zeros_batched(batch: tuple[int, ...], like: Any) -> Any:
    """Zeros of shape ``batch + shape(like)`` in ``like``'s floating dtype."""
    return np.zeros(batch + tuple(np.shape(like)), dtype=_float_dtype(like))


def _float_dtype(x: Any) -> Any:
    from ..core.values import concrete

    dt = np.result_type(concrete(x))
    return dt if dt.kind in "fc" else np.dtype(np.float64)


def unbroadcast(g: Any, shape: tuple[int, ...], nb: int) -> Any:
    """Sum ``g`` (``nb`` batch axes, then broadcast axes) down to ``batch + shape``."""
    gs = tuple(np.shape(g))
    if gs[nb:] == shape:
        return g
    extra = len(gs) - nb - len(shape)
    if extra < 0:  # a rule returned a smaller, broadcastable value
        return np.broadcast_to(np.reshape(g, gs[:nb] + (1,) * -extra + gs[nb:]), gs[:nb] + shape)
    axes = tuple(range(nb, nb + extra)) + tuple(
        nb + extra + i for i, d in enumerate(shape) if d == 1 and gs[nb + extra + i] != 1)
    if axes:
        g = np.sum(g, axis=axes, keepdims=True)
    g = np.reshape(g, gs[:nb] + shape)
    return g


class ADBackend:
    """Operators derived from ``jvp`` and ``vjp``; subclasses implement those two."""

    name = "?"
    prefers_reverse = True

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
            return out, vjp_fn(np.ones((), dtype=_float_dtype(out))), aux
        aux_box: list[Any] = []

        def f_noaux(*a: Any) -> Any:
            r = fun(*a)
            if has_aux:
                aux_box.append(r[1])
                return r[0]
            return r

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
        oshape = tuple(np.shape(out))
        m = int(np.prod(oshape, dtype=np.int64))
        seed = np.eye(m, dtype=_float_dtype(out)).reshape((m,) + oshape)
        cts = vjp_fn(seed, 1)
        return out, tuple(np.reshape(c, oshape + tuple(np.shape(primals[i])))
                          for c, i in zip(cts, argnums))

    def _jacobian_fwd(self, fun: Callable[..., Any], primals: Sequence[Any],
                      argnums: Sequence[int]) -> tuple[Any, tuple[Any, ...]]:
        sizes = [int(np.size(primals[i])) if not hasattr(primals[i], "_trace") else
                 int(np.prod(np.shape(primals[i]), dtype=np.int64)) for i in argnums]
        k = sum(sizes)
        tangents = []
        start = 0
        for i, n in zip(argnums, sizes):
            t = np.zeros((k, n), dtype=_float_dtype(primals[i]))
            t[start:start + n] = np.eye(n, dtype=t.dtype)
            tangents.append(t.reshape((k,) + tuple(np.shape(primals[i]))))
            start += n
        out, tout = self.jvp(fun, primals, argnums, tangents, nb=1)
        oshape = tuple(np.shape(out))
        # tout: (k,) + out.shape  ->  out.shape + (k,), then split per argument
        moved = np.moveaxis(tout, 0, -1) if oshape else tout
        jacs = []
        start = 0
        for i, n in zip(argnums, sizes):
            part = moved[..., start:start + n]
            jacs.append(np.reshape(part, oshape + tuple(np.shape(primals[i]))))
            start += n
        return out, tuple(jacs)

    def hessian(self, fun: Callable[..., Any], primals: Sequence[Any],
                argnums: Sequence[int]) -> tuple[tuple[Any, ...], ...]:
        """Second derivatives: forward mode over this backend's gradient."""
        from .forward import Forward

        def grad_fn(*args: Any) -> Any:
            return self.value_and_grad(fun, args, argnums)[1]

        outer = Forward()
        rows = []
        for j in range(len(argnums)):
            def grad_j(*args: Any, _j: int = j) -> Any:
                return grad_fn(*args)[_j]

            rows.append(outer.jacobian(grad_j, primals, argnums)[1])
        return tuple(rows)

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


def _check_scalar(out: Any, name: str, backend: str) -> None:
    if np.shape(out) != ():
        raise ShapeError(
            f"grad of {name} (backend '{backend}'): the function must return a scalar, "
            f"got shape {np.shape(out)}; use dk.jacobian for array outputs")
