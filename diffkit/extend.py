"""New primitives from users: one declaration, every backend.

:func:`primitive` adds an elementwise function to the table with its NumPy
form, its SymPy form and its partial derivatives. The forward and reverse
backends use the partials (JVP ``t * p``, VJP ``ct * p``), the symbolic
backend the SymPy form, the numeric backend the NumPy form; the cross-check
reference differentiates the SymPy form with SymPy's own rules and never reads
the partials, so a wrong partial is caught.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from .core.primitive import OUT, PRIMITIVES, Primitive, define
from .core.values import bind
from .errors import InvalidArgument, InvalidType

_USER: set[str] = set()
"""Names registered through :func:`primitive` (they may be registered again)."""


class PrimitiveFunction:
    """A registered primitive, called like the NumPy function it wraps."""

    def __init__(self, prim: Primitive):
        self.primitive = prim
        self.__name__ = prim.name
        self.__doc__ = prim.doc or f"the user primitive {prim.name!r}"

    def __call__(self, *args: Any) -> Any:
        if len(args) != self.primitive.nargs:
            raise InvalidArgument(f"{self.primitive.name} takes {self.primitive.nargs} argument(s), "
                                  f"got {len(args)}")
        return bind(self.primitive, *args)

    def __repr__(self) -> str:
        return f"<diffkit primitive {self.primitive.name}>"

    def unregister(self) -> None:
        """Remove the primitive from the table (its function stops working)."""
        unregister(self.primitive.name)


def primitive(name: str, numpy: Callable[..., Any], *, partials: tuple[Callable[..., Any], ...],
              sympy: Callable[..., Any] | None = None, domain: tuple[tuple[float, float], ...] | None = None,
              complex_safe: bool = False, kink: str | None = None, doc: str = "") -> PrimitiveFunction:
    """Register an elementwise primitive: its NumPy form, SymPy form and partial derivatives.

    Args:
        name: the primitive's name (not one of the built-in ones).
        numpy: the function on NumPy arrays (elementwise, broadcasting).
        partials: one function ``partial_i(out, *args)`` per argument, the partial
            derivative, written with ``np.*`` so it is traced in turn (derivatives
            of any order follow).
        sympy: the same function on SymPy expressions; without it the symbolic
            backend and the symbolic reference cannot use the primitive.
        domain: per argument, the open interval where the derivative exists
            (default: the real line).
        complex_safe: the function is complex-analytic and ``numpy`` takes complex
            input, so the numeric backend may take a complex step through it.
        kink: the convention at non-differentiable points, in words, if any.
        doc: a note on the primitive.

    Returns:
        A callable that applies the primitive on every backend, and on plain
        NumPy input returns ``numpy(*args)``.

    Example:
        >>> import numpy as np, sympy, diffkit as dk
        >>> softsign = dk.primitive("softsign", lambda x: x / (1 + np.abs(x)),
        ...                         sympy=lambda x: x / (1 + sympy.Abs(x)),
        ...                         partials=(lambda out, x: 1 / (1 + np.abs(x)) ** 2,))
        >>> round(float(dk.grad(lambda x: softsign(x) * x)(0.7)), 12)   # 0.7/1.7 + 0.7/1.7**2
        0.653979238754
        >>> dk.crosscheck(lambda x: softsign(x) * x, (0.7,), "derivative").ok
        True
        >>> softsign.unregister()
    """
    if name in PRIMITIVES and name not in _USER:
        raise InvalidArgument(f"dk.primitive: {name!r} is a built-in primitive; choose another name")
    if not callable(numpy) or (sympy is not None and not callable(sympy)):
        raise InvalidType(f"dk.primitive {name!r}: numpy= and sympy= must be callables")
    if not isinstance(partials, tuple) or not partials or not all(callable(p) for p in partials):
        raise InvalidType(f"dk.primitive {name!r}: partials must be a non-empty tuple of callables "
                          "partial_i(out, *args)")
    n = len(partials)
    if domain is not None and len(domain) != n:
        raise InvalidArgument(f"dk.primitive {name!r}: domain has {len(domain)} intervals for {n} arguments")
    prim = define(
        name, numpy, partials=partials, sympy=sympy,
        # what the user's partials read is not declared: the tape keeps everything
        saves=tuple((OUT,) + tuple(range(n)) for _ in range(n)),
        domain=domain if domain is not None else ((-math.inf, math.inf),) * n,
        complex_safe=complex_safe, kink=kink, doc=doc,
    )
    _USER.add(name)
    return PrimitiveFunction(prim)


def unregister(name: str) -> None:
    """Remove a primitive registered with :func:`primitive`."""
    from .core.primitive import P

    if name not in _USER:
        raise InvalidArgument(f"{name!r} was not registered with dk.primitive")
    _USER.discard(name)
    PRIMITIVES.pop(name, None)
    if hasattr(P, name):
        delattr(P, name)
