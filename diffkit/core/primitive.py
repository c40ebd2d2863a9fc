"""What a primitive is, and the registry every backend reads.

:class:`Primitive` is the record type of the table; :func:`define` registers
one. The table's contents live in :mod:`diffkit.primitives`, which calls
:func:`define` once per entry: this module only holds the registry, so
``core`` needs nothing above it to look a primitive up (``P.add`` for the
``+`` of a traced value).

A record states mathematics only: the NumPy and SymPy forms, the partials or
JVP/VJP rules, what those rules read (``saves``), domain, kinks, linearity and
the printed name. How a backend goes fast on a primitive (scalar ``math``
implementations, lazily scaled or diagonal cotangents, in-place updates) is
kept apart, in :mod:`diffkit.backends.accel`.

Example:
    >>> import diffkit
    >>> from diffkit.core.primitive import P, OUT
    >>> P.multiply.saves      # d/dx (x*y) reads y; d/dy reads x
    ((1,), (0,))
    >>> P.exp.saves == ((OUT,),)   # d/dx exp(x) is the output itself
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

from ..errors import InvalidArgument
from .lazy import LazySympy

Rule = Callable[..., Any]

OUT = -1
"""In ``saves``: the primitive's output (arguments are 0, 1, ...)."""

LINEARITIES = ("nonlinear", "linear", "multilinear")


class _SympyForm:
    """The ``sympy`` field: a :class:`~diffkit.core.lazy.LazySympy` given to
    :func:`define` is resolved (SymPy imported) the first time the field is read,
    so building the table does not import SymPy."""

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return None  # the field's default
        value = obj.__dict__["_sympy_form"]
        if isinstance(value, LazySympy):
            value = obj.__dict__["_sympy_form"] = value.resolve()
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__["_sympy_form"] = value


@dataclass(frozen=True, eq=False)
class Primitive:
    """One entry of the table.

    Attributes:
        name: the NumPy name (``"sin"``, ``"matmul"``, ``"getitem"`` ...).
        numpy: implementation on NumPy arrays.
        sympy: counterpart on SymPy scalars (elementwise primitives) or on
            object arrays of SymPy expressions; ``None`` where SymPy has none.
        nargs: number of array arguments, ``None`` for variadic ones.
        jvp: per-argument linear maps ``jvp[i](t, out, *args, **params)``.
        vjp: per-argument maps ``vjp[i](ct, out, *args, **params)``.
        partials: of a primitive declared by its partial derivatives, those
            functions ``partial_i(out, *args)`` (its JVP and VJP rules are
            ``t * partial`` and ``ct * partial``); the compiled backend multiplies
            cotangents by them without calling the rule.
        jvp_joint: for variadic primitives, ``jvp_joint(tangents, out, *args,
            **params)`` with ``None`` for the tangents of constants.
        vjp_variadic: for variadic primitives, ``vjp_variadic(i, ct, out, *args,
            **params)``.
        saves: per argument, what its VJP rule reads besides the cotangent:
            :data:`OUT` for the output, ``0, 1, ...`` for the arguments.
            Declared, never inferred; a test runs every rule with everything
            else replaced by a value that refuses to be read. The reverse
            backend keeps only these on its tape, so intermediates no rule
            needs are freed as soon as the user's code drops them. ``None``
            (variadic primitives) keeps everything.
        elementwise: broadcasts like a ufunc (the forward backend aligns
            batched tangents, the reverse backend sums broadcast axes).
        differentiable: ``False`` for comparisons and other piecewise-constant
            operations; their results are plain arrays, never traced.
        nondiff_args: indices of arguments that are never differentiated
            (the condition of ``where``).
        linearity: ``"linear"`` (jointly linear in the differentiated
            arguments: sums, reshapes, indexing), ``"multilinear"`` (linear in
            each argument alone: products, matmul, einsum) or ``"nonlinear"``.
        symbol: how graphs print the operation (``"+"``, ``"×"``); the name
            when ``None``.
        infix: ``(operator, precedence)`` when expression strings write the
            primitive as an infix operator (``("+", 1)``, ``("*", 2)``).
        domain: per argument, the open interval inside which the derivative
            exists; tests and strategies sample there.
        complex_safe: analytic, so the complex-step derivative is exact.
        kink: the convention at non-differentiable points, in words.
        at_kink: ``at_kink(*args)`` is a boolean array, true where a point is a
            kink; the harness uses it to explain disagreements. Defaults to
            ``kink_gap(*args) == 0``.
        kink_gap: ``kink_gap(*args)``, a real array that is 0 exactly at the
            kinks and changes no faster than the arguments (by at most
            ``max |change of an argument|``), so ``|kink_gap|`` is a lower
            bound on how far the arguments are from a kink. The numeric
            backend keeps its stencils inside that distance: a finite
            difference across a kink averages two different slopes.
        structure: where the rules assume an input structure NumPy does not
            read (``eigh`` takes its matrix as symmetric and gives the symmetric
            gradient; NumPy reads one triangle), the convention in words.
        doc: a note on the entry.
        aliases: other names expression strings may use.
    """

    name: str
    numpy: Callable[..., Any]
    sympy: Callable[..., Any] | None = _SympyForm()  # type: ignore[assignment]
    nargs: int | None = 1
    jvp: tuple[Rule, ...] = ()
    vjp: tuple[Rule, ...] = ()
    partials: tuple[Callable[..., Any], ...] | None = None
    jvp_joint: Rule | None = None
    vjp_variadic: Rule | None = None
    saves: tuple[tuple[int, ...], ...] | None = None
    elementwise: bool = False
    differentiable: bool = True
    nondiff_args: frozenset[int] = frozenset()
    linearity: str = "nonlinear"
    symbol: str | None = None
    infix: tuple[str, int] | None = None
    domain: tuple[tuple[float, float], ...] = ()
    complex_safe: bool = True
    kink: str | None = None
    at_kink: Callable[..., Any] | None = None
    kink_gap: Callable[..., Any] | None = None
    structure: str | None = None
    doc: str = ""
    aliases: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        gap = self.kink_gap
        if gap is not None and self.at_kink is None:
            object.__setattr__(self, "at_kink", lambda *args, **params: np.equal(gap(*args, **params), 0))
        if self.linearity not in LINEARITIES:
            raise InvalidArgument(f"primitive {self.name}: linearity must be one of {LINEARITIES}, "
                             f"not {self.linearity!r}")
        if self.saves is not None and self.vjp and len(self.saves) != len(self.vjp):
            raise InvalidArgument(f"primitive {self.name}: saves declares {len(self.saves)} arguments, "
                             f"the VJP has {len(self.vjp)}")

    def jvp_rule(self, i: int) -> Rule:
        """The JVP rule of argument ``i``."""
        return self.jvp[i]

    def vjp_rule(self, i: int) -> Rule:
        """The VJP rule of argument ``i``."""
        if self.vjp_variadic is not None:
            rule = self.vjp_variadic
            return lambda ct, out, *args, **params: rule(i, ct, out, *args, **params)
        return self.vjp[i]

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


PRIMITIVES: dict[str, Primitive] = {}
"""Every primitive, keyed by its NumPy name."""

P = SimpleNamespace()
"""The table as attributes: ``P.sin``, ``P.matmul`` ..."""


def define(
    name: str,
    numpy: Callable[..., Any],
    *,
    partials: tuple[Callable[..., Any], ...] | None = None,
    **fields: Any,
) -> Primitive:
    """Declare a primitive once, with all of its rules, and register it.

    For an elementwise primitive it is enough to give ``partials``: one
    function ``partial_i(out, *args)`` per argument, the partial derivative.
    Both the JVP (``t * partial``) and the VJP (``ct * partial``) follow from
    it, so the two modes agree by construction.
    """
    if partials is not None:
        if "jvp" not in fields and "vjp" not in fields:  # the rules are the partials' own
            fields["partials"] = partials
        fields.setdefault("jvp", tuple(jvp_from_partial(p) for p in partials))
        fields.setdefault("vjp", tuple(vjp_from_partial(p) for p in partials))
        fields.setdefault("elementwise", True)
        fields.setdefault("nargs", len(partials))
    prim = Primitive(name, numpy, **fields)
    PRIMITIVES[name] = prim
    setattr(P, name, prim)
    return prim


def jvp_from_partial(partial: Callable[..., Any]) -> Rule:
    """The JVP rule ``t * partial(out, *args)``."""
    return lambda t, out, *args: t * partial(out, *args)


def vjp_from_partial(partial: Callable[..., Any]) -> Rule:
    """The VJP rule ``ct * partial(out, *args)``."""
    return lambda ct, out, *args: ct * partial(out, *args)
