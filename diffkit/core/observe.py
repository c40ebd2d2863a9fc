"""Traces that only observe a function: they run it once on its values and watch.

The numeric backend's complex probe, the harness's kink walk, the point probe
of the Hypothesis strategies and the testing module's absolute-derivative
bound all run the user's unchanged code through diffkit's dispatch to learn
something about it (which primitives it meets, where its kinks are, how large
its intermediates get) without differentiating it. They share this base, as
JAX's traces share ``Trace.process_primitive``: a subclass overrides
:meth:`ObservingTrace.evaluate` (how a primitive runs on the values) and
:meth:`ObservingTrace.wrap` (what the result carries on), and sees everything
else done once here.

Example:
    >>> import numpy as np
    >>> class Names(ObservingTrace):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.seen = []
    ...     def evaluate(self, prim, vals, traced, params):
    ...         self.seen.append(prim.name)
    ...         return super().evaluate(prim, vals, traced, params)
    >>> t = Names()
    >>> float(t.run(lambda x: np.sin(x) * 2.0, [0.5]))
    0.958851077208406
    >>> t.seen
    ['sin', 'multiply']
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .primitive import Primitive
from .values import Value, new_level, pack


class Observed(Value):
    """A value running through a function an :class:`ObservingTrace` watches.

    Plain Python control flow keeps working on it (``if x > 0``, ``float(x)``): an
    observer follows the branch the values take, as the user's code would.
    """

    __slots__ = ("_trace", "primal")

    def __init__(self, trace: ObservingTrace, primal: Any):
        self._trace = trace
        self.primal = primal

    def __bool__(self) -> bool:
        return bool(self.primal)

    def __float__(self) -> float:
        return float(self.primal)

    def __repr__(self) -> str:
        return f"Observed({self.primal!r}, by={self._trace.backend_name!r})"


class ObservingTrace:
    """Runs a function on its values, letting a subclass watch each primitive."""

    backend_name = "observer"
    value_type: type[Value] = Observed

    def __init__(self) -> None:
        self.level = new_level()

    def apply(self, prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        vt = self.value_type
        traced = [type(a) is vt and a._trace is self for a in args]
        vals = [a.primal if t else a for a, t in zip(args, traced)]
        out = self.evaluate(prim, vals, traced, params)
        if not prim.differentiable:
            return out  # comparisons and rounding give plain arrays, as on every backend
        return self.wrap(prim, args, vals, traced, params, out)

    def evaluate(self, prim: Primitive, vals: list[Any], traced: list[bool], params: dict[str, Any]) -> Any:
        """``prim`` on the values (by default its NumPy form)."""
        return prim.numpy(*vals, **params)

    def wrap(self, prim: Primitive, args: tuple[Any, ...], vals: list[Any], traced: list[bool],
             params: dict[str, Any], out: Any) -> Any:
        """The observed value that carries ``out`` on through the function (``args`` as the
        primitive got them, ``vals`` their values, ``traced`` which are this trace's)."""
        return self.value_type(self, out)

    def call_custom(self, fn: Any, args: tuple[Any, ...]) -> Any:
        # a custom rule's function itself: observers look at what it computes
        return fn.fun(*args)

    def run(self, fun: Callable[..., Any], args: Sequence[Any]) -> Any:
        """``fun(*args)`` with its numeric arguments observed; the result unwrapped."""
        probes = [self.value_type(self, a) if _numeric(a) else a for a in args]
        out = pack(fun(*probes))
        return self.unwrap(out)

    def unwrap(self, x: Any) -> Any:
        """``x`` with this trace's values replaced by what they carry."""
        return x.primal if isinstance(x, Value) and x._trace is self else x


def _numeric(a: Any) -> bool:
    return isinstance(a, (int, float, complex, np.number)) or (
        isinstance(a, np.ndarray) and a.dtype.kind in "fiuc")
