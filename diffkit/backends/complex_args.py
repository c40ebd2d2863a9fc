"""Complex arguments on every backend (JAX's conventions, docs/complex.md).

The reverse backend differentiates with respect to complex values itself: its
VJP rules are JAX's transposes, so a cotangent of a complex argument comes out
as ``jax.vjp`` gives it. The other backends see a function of real arguments
only: each complex argument ``z`` is split into ``x = Re z`` and ``y = Im z``,
the backend differentiates ``f(x + 1j*y)`` with respect to them, and the parts
are put back together the way JAX's VJP reads a real-linear map (the JAX FAQ
"Complex numbers and differentiation"): for a cotangent ``c`` of the output,

    vjp(c) = Re(c * df/dx) - 1j * Re(c * df/dy),

so ``grad`` of a real-valued ``f`` is ``df/dx - 1j * df/dy`` (``2 * conj(z)``
for ``|z|**2``, ``6 - 8j`` at ``3 + 4j`` as in the FAQ). ``holomorphic=True``
promises ``f`` holomorphic; JAX's ``grad`` then takes the VJP at a cotangent of
1, which is the gradient of ``Re f`` in the same convention, and ``f'(z)`` for a
holomorphic ``f`` (the Cauchy-Riemann equations). Differentiating ``Re f``
through the parts keeps the numeric backend on finite differences along real
directions (a complex step through ``f(x + 1j*y)`` would meet ``Re``, which is
not complex-analytic, and is refused) and the symbolic backend on real symbols.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..core.values import Value, is_complex, pack
from ..errors import InvalidType

NATIVE = "complex_arguments"
"""A backend with this attribute true differentiates complex arguments itself (the
reverse backend); the others get the real and imaginary parts."""


def complex_argnums(primals: Sequence[Any], nums: Sequence[int]) -> tuple[int, ...]:
    """The differentiated arguments that are complex."""
    found: tuple[int, ...] = ()
    for i in nums:
        p = primals[i]
        if type(p) is not float and is_complex(p):
            found += (i,)
    return found


def native(backend: Any) -> bool:
    """Whether ``backend`` takes complex arguments as they are."""
    return bool(getattr(backend, NATIVE, False))


def check_holomorphic(op: str, primals: Sequence[Any], nums: Sequence[int], cplx: tuple[int, ...],
                      names: Sequence[str]) -> None:
    """``holomorphic=True`` needs complex arguments, as JAX's."""
    for i in nums:
        if i not in cplx:
            name = names[i] if i < len(names) else f"#{i}"
            dtype = np.result_type(_concrete(primals[i])).name
            raise InvalidType(
                f"{op} with holomorphic=True differentiates with respect to complex arguments, and "
                f"argument '{name}' is {dtype} (as jax.{op}); pass it as a complex number "
                f"({name} + 0j), or drop holomorphic=True for a real argument")


def check_holomorphic_output(op: str, out: Any) -> None:
    """``holomorphic=True`` needs a complex output, as JAX's."""
    if not is_complex(out):
        raise InvalidType(
            f"{op} with holomorphic=True differentiates a complex-valued function, and the function "
            f"returned {np.result_type(_concrete(out)).name} values (as jax.{op}); drop "
            "holomorphic=True for a real-valued function of complex arguments (its gradient is "
            "then JAX's: df/dx - 1j df/dy)")


def refuse_complex(op: str, primals: Sequence[Any], cplx: tuple[int, ...], names: Sequence[str]) -> None:
    """Operators without complex arguments (second and n-th derivatives) say so."""
    if cplx:
        i = cplx[0]
        name = names[i] if i < len(names) else f"#{i}"
        raise InvalidType(
            f"{op} with respect to a complex argument ('{name}') is not supported; differentiate with "
            "respect to its real and imaginary parts (f(x + 1j*y) of real x and y), or nest "
            "dk.grad(..., holomorphic=True) for a holomorphic function")


def complex_output_error(op: str, dtype: Any) -> InvalidType:
    """The error of ``grad``/``jacobian`` of a complex-valued output without
    ``holomorphic=True``: ``jax.grad`` and ``jax.jacrev`` raise a ``TypeError`` there too
    (docs/complex.md). The operators add the function's name and the backend."""
    return InvalidType(
        f"{op} needs a real-valued output, and the function returned {np.dtype(dtype).name} values "
        "(jax.grad and jax.jacrev refuse them too); pass holomorphic=True if the function is "
        "holomorphic, or differentiate np.real(...) and np.imag(...) of the output separately "
        "(dk.jvp and dk.vjp take complex outputs on the forward and reverse backends)")


def check_output_dtype(op: str, out: Any, holomorphic: bool) -> None:
    """A complex output needs ``holomorphic=True``, and ``holomorphic=True`` a complex output."""
    if holomorphic:
        check_holomorphic_output(op, out)
    elif type(out) is not float and is_complex(out):
        raise complex_output_error(op, np.result_type(_concrete(out)))


def _concrete(x: Any) -> Any:
    while isinstance(x, Value):
        x = x.primal
    return x


def _part(take: Callable[[Any], Any], p: Any) -> Any:
    """The real or imaginary part of an argument (a Python float for a scalar)."""
    v = take(p)
    return float(v) if type(v) is np.float64 else v


def _combine(re: Any, im: Any) -> Any:
    """JAX's cotangent of ``z = x + 1j*y`` from those of ``x`` and ``y``."""
    return np.real(re) - 1j * np.real(im)


_CACHE: dict[Any, Callable[..., Any]] = {}


def _split_fn(fn: Callable[..., Any], n: int, cplx: tuple[int, ...], names: tuple[str, ...],
              real_part: bool, has_aux: bool) -> Callable[..., Any]:
    """``fn`` as a function of the real and imaginary parts of its complex arguments
    (appended after its ``n`` arguments), optionally of its output's real part.

    Cached, so that a backend that caches per function (the symbolic backend's
    compiled derivatives, the numeric backend's facts) finds it again.
    """
    key = (fn, n, cplx, names, real_part, has_aux)
    try:
        hit = _CACHE.get(key)
    except TypeError:  # an unhashable callable: not cached
        key, hit = None, None
    if hit is not None:
        return hit

    def split(*args: Any) -> Any:
        a = list(args[:n])
        for k, i in enumerate(cplx):
            a[i] = args[i] + 1j * args[n + k]
        out = fn(*a)
        if not real_part:
            return out
        if has_aux:
            return np.real(pack(out[0])), out[1]
        return np.real(pack(out))

    base = [names[i] if i < len(names) else f"arg{i}" for i in range(n)]
    split.variables = tuple(f"{v}_re" if i in cplx else v for i, v in enumerate(base)) + tuple(  # type: ignore[attr-defined]
        f"{base[i]}_im" for i in cplx)
    split.__name__ = getattr(fn, "__name__", "f")
    if key is not None:
        if len(_CACHE) > 256:
            _CACHE.clear()
        _CACHE[key] = split
    return split


class Split:
    """A call with complex arguments as one with their real and imaginary parts.

    Attributes:
        fn: the function of the parts (real arguments only).
        primals: the arguments, each complex one replaced by its real part, the
            imaginary parts appended.
        nums: the differentiated positions among ``primals``.
    """

    def __init__(self, fn: Callable[..., Any], primals: Sequence[Any], nums: Sequence[int],
                 cplx: tuple[int, ...], names: Sequence[str], real_part: bool = False,
                 has_aux: bool = False):
        n = len(primals)
        self.n = n
        self.cplx = cplx
        self.orig_nums = tuple(nums)
        self.fn = _split_fn(fn, n, cplx, tuple(names), real_part, has_aux)
        ps = list(primals)
        extra = []
        for i in cplx:
            ps[i] = _part(np.real, primals[i])
            extra.append(_part(np.imag, primals[i]))
        self.primals = ps + extra
        self.nums = tuple(nums) + tuple(range(n, n + len(cplx)))

    def tangents(self, tangents: Sequence[Any]) -> list[Any]:
        """Tangents of the original arguments (``orig_nums``) as tangents of ``nums``."""
        by = dict(zip(self.orig_nums, tangents))
        return [_part(np.real, by[i]) if i in self.cplx else by[i] for i in self.orig_nums] + \
            [_part(np.imag, by[i]) for i in self.cplx]

    def combine(self, parts: Sequence[Any]) -> tuple[Any, ...]:
        """Per original differentiated argument, its cotangent (gradient, Jacobian) from
        those of the parts (in the order of ``nums``)."""
        by = dict(zip(self.nums, parts))
        res = []
        for i in self.orig_nums:
            if i in self.cplx:
                res.append(_combine(by[i], by[self.n + self.cplx.index(i)]))
            else:
                res.append(by[i])
        return tuple(res)


def real_cotangents(cts: Sequence[Any], primals: Sequence[Any], nums: Sequence[int]) -> tuple[Any, ...]:
    """The cotangent of a real argument is real: the real part of what a backend gave
    for a complex output (JAX's transpose of the real-to-complex conversion)."""
    return tuple(np.real(c) if is_complex(c) and not is_complex(primals[i]) else c for c, i in zip(cts, nums))
