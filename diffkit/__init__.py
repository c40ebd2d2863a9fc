"""diffkit: one function definition, differentiated by interchangeable backends.

Example:
    >>> import numpy as np, diffkit as dk
    >>> f = lambda x, y: np.sin(x) * np.exp(y) + x**2 * y
    >>> [round(float(g), 6) for g in dk.grad(f, argnums=(0, 1))(1.0, 2.0)]
    [7.992324, 7.217676]
"""

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

# Eager: the primitive table and NumPy's dispatch handlers (every traced value needs
# them) and the exceptions. Everything else is imported on first use (PEP 562), so
# ``import diffkit`` never imports SymPy, mpmath, the backends or the harness.
from . import numpy_api as _numpy_api  # noqa: F401  (registers NumPy's dispatch handlers)
from ._version import __version__
from .errors import (
    BackendMismatch,
    DiffkitError,
    InvalidArgument,
    InvalidType,
    NotFound,
    ParseError,
    ShapeError,
    SizeLimitError,
    TimeLimitError,
    TracingError,
    Unavailable,
    UnsupportedOperation,
)
from .primitives import PRIMITIVES

if TYPE_CHECKING:
    from .backends import Forward, Reverse, Symbolic, backends, get_backend
    from .backends.compiled import Compiled, source
    from .backends.numeric import Numeric, NumericResult
    from .backends.symbolic import precise
    from .core.function import Function
    from .custom import custom_jvp, custom_vjp
    from .extend import primitive
    from .graphs import Graph, graph
    from .harness import Report, assert_backends_agree, crosscheck
    from .numeric_tools import step_sweep, taylor_test
    from .operators import derivative, diff, grad, hessian, jacobian, jvp, value_and_grad, vjp
    from .pytree import PyTreeDef, register_pytree_node, tree_flatten, tree_leaves, tree_map, tree_structure, \
        tree_unflatten

_LAZY = {
    **dict.fromkeys(("Forward", "Reverse", "Symbolic", "backends", "get_backend"), ".backends"),
    **dict.fromkeys(("Numeric", "NumericResult"), ".backends.numeric"),
    **dict.fromkeys(("Compiled", "source"), ".backends.compiled"),
    "precise": ".backends.symbolic",
    "Function": ".core.function",
    **dict.fromkeys(("custom_jvp", "custom_vjp"), ".custom"),
    "primitive": ".extend",
    **dict.fromkeys(("Graph", "graph"), ".graphs"),
    **dict.fromkeys(("Report", "assert_backends_agree", "crosscheck"), ".harness"),
    **dict.fromkeys(("step_sweep", "taylor_test"), ".numeric_tools"),
    **dict.fromkeys(("derivative", "diff", "grad", "hessian", "jacobian", "jvp", "value_and_grad", "vjp"),
                    ".operators"),
    **dict.fromkeys(("PyTreeDef", "register_pytree_node", "tree_flatten", "tree_leaves", "tree_map",
                     "tree_structure", "tree_unflatten"), ".pytree"),
}
"""Public name -> the module it is imported from when first read."""

# submodules that ``import diffkit`` used to import, still reachable as attributes
_SUBMODULES = frozenset({"core", "harness", "operators", "numeric_tools", "graphs", "custom", "extend",
                         "limits", "numpy_api", "primitives", "errors", "pytree"})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module, __name__), name)
        if name != "backends":
            globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """``diffkit.backends`` is the function :func:`~diffkit.backends.backends`, also after
    the subpackage of that name is imported (the import system then binds the
    subpackage on its parent; this ignores that binding, as the eager
    ``from .backends import backends`` used to overwrite it)."""

    @property
    def backends(self) -> Any:
        if "_backends" not in globals():
            globals()["_backends"] = __getattr__("backends")
        return globals()["_backends"]

    @backends.setter
    def backends(self, value: Any) -> None:
        if not isinstance(value, types.ModuleType):  # a user's replacement (monkeypatch) stands
            globals()["_backends"] = value


sys.modules[__name__].__class__ = _Package

__all__ = [
    "primitive", "Compiled", "source",
    "PRIMITIVES", "Report", "assert_backends_agree", "crosscheck", "BackendMismatch", "DiffkitError", "Forward", "Function",
    "InvalidArgument", "InvalidType", "NotFound", "SizeLimitError", "TimeLimitError", "Unavailable",
    "Numeric", "NumericResult", "ParseError", "Reverse", "ShapeError", "Symbolic", "diff", "precise", "TracingError", "UnsupportedOperation", "backends",
    "custom_jvp", "custom_vjp", "derivative", "get_backend", "grad", "Graph", "graph", "hessian", "jacobian", "jvp",
    "step_sweep", "taylor_test", "value_and_grad", "vjp",
    "PyTreeDef", "register_pytree_node", "tree_flatten", "tree_leaves", "tree_map", "tree_structure", "tree_unflatten",
]
