"""diffkit: one function definition, differentiated by interchangeable backends.

Example:
    >>> import numpy as np, diffkit as dk
    >>> f = lambda x, y: np.sin(x) * np.exp(y) + x**2 * y
    >>> [round(float(g), 6) for g in dk.grad(f, argnums=(0, 1))(1.0, 2.0)]
    [7.992324, 7.217676]
"""

from . import numpy_api as _numpy_api  # noqa: F401  (registers NumPy's dispatch handlers)
from .backends import Forward, Reverse, Symbolic, backends, get_backend
from .backends.numeric import Numeric, NumericResult
from .backends.symbolic import precise
from .core.function import Function
from .custom import custom_jvp, custom_vjp
from .extend import primitive
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
from .operators import derivative, diff, grad, hessian, jacobian, jvp, value_and_grad, vjp
from .numeric_tools import step_sweep, taylor_test
from .graphs import Graph, graph
from .harness import Report, assert_backends_agree, crosscheck
from .primitives import PRIMITIVES

from ._version import __version__

__all__ = [
    "primitive",
    "PRIMITIVES", "Report", "assert_backends_agree", "crosscheck", "BackendMismatch", "DiffkitError", "Forward", "Function",
    "InvalidArgument", "InvalidType", "NotFound", "SizeLimitError", "TimeLimitError", "Unavailable",
    "Numeric", "NumericResult", "ParseError", "Reverse", "ShapeError", "Symbolic", "diff", "precise", "TracingError", "UnsupportedOperation", "backends",
    "custom_jvp", "custom_vjp", "derivative", "get_backend", "grad", "Graph", "graph", "hessian", "jacobian", "jvp",
    "step_sweep", "taylor_test", "value_and_grad", "vjp",
]
