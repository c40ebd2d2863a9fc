"""The one exception hierarchy of diffkit.

Every error diffkit raises on purpose is a :class:`DiffkitError`; each subclass
also derives from the built-in exception a user would expect, so
``except TypeError`` or ``except ValueError`` keeps working.
"""

from __future__ import annotations


class DiffkitError(Exception):
    """Base class of every error diffkit raises on purpose."""


class UnsupportedOperation(DiffkitError, TypeError):
    """An operation has no rule on the backend that met it.

    Example:
        >>> import numpy as np, diffkit as dk
        >>> try:
        ...     dk.grad(lambda x: np.fft.fft(x).real.sum())(np.ones(3))
        ... except dk.UnsupportedOperation as e:
        ...     print(str(e).split(";")[0])
        numpy.fft.fft is not supported by diffkit (backend 'reverse')
    """


class ParseError(DiffkitError, ValueError):
    """An expression string was rejected by the safe parser.

    Attributes:
        text: the whole expression.
        token: the offending part, as written.
        column: 1-based column of the offending part (0 when unknown).
    """

    def __init__(self, message: str, text: str = "", token: str = "", column: int = 0):
        super().__init__(message)
        self.text = text
        self.token = token
        self.column = column


class DomainError(DiffkitError, ValueError):
    """A point lies outside a primitive's domain."""


class TracingError(DiffkitError, TypeError):
    """A traced value was used where a concrete number is needed.

    Raised, for example, by ``float(x)`` on a traced value or by an in-place
    assignment into a traced array.
    """


class ShapeError(DiffkitError, TypeError):
    """An operator got a function or argument of the wrong shape.

    For example ``grad`` of a function that does not return a scalar.
    """


class BackendMismatch(DiffkitError, AssertionError):
    """Raised by ``assert_backends_agree`` when backends disagree."""
