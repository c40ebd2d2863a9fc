"""The one exception hierarchy of diffkit.

Every error diffkit raises on purpose is a :class:`DiffkitError`; each subclass
also derives from the built-in exception a user would expect, so
``except TypeError`` or ``except ValueError`` keeps working:

* a wrong value of an argument (an unknown backend name, a bad option, an
  empty point): :class:`InvalidArgument`, a ``ValueError``; a failed lookup by
  name or label, :class:`NotFound`, is one too and also a ``KeyError``;
* a wrong type of an argument (a number where a callable is needed, a string
  where a sequence is needed), or a function whose output has no derivative
  (None, a bool, an integer, a comparison): :class:`InvalidType`, a ``TypeError``;
* an operation with no rule on a backend: :class:`UnsupportedOperation`;
  a traced value used as a concrete number: :class:`TracingError`; a function
  or argument of the wrong shape: :class:`ShapeError` (all ``TypeError``);
* an expression string the parser rejects: :class:`ParseError`;
  a symbolic trace over the size limit: :class:`SizeLimitError` (``ValueError``);
  a call over its time limit (``timeout=``, ``--timeout``): :class:`TimeLimitError`
  (``TimeoutError``);
* a tool or optional package that is not installed: :class:`Unavailable`
  (``RuntimeError``);
* backends that disagree in ``assert_backends_agree``:
  :class:`BackendMismatch` (``AssertionError``).

A point outside a function's domain is not an error: diffkit answers as NumPy
does (NaN or inf), and :func:`diffkit.crosscheck` reports such a row with the
cause ``domain``.

Example:
    >>> import diffkit as dk
    >>> try:
    ...     dk.get_backend("sympy")
    ... except dk.DiffkitError as e:
    ...     print(type(e).__name__, isinstance(e, ValueError))
    InvalidArgument True
"""

from __future__ import annotations


class DiffkitError(Exception):
    """Base class of every error diffkit raises on purpose."""


class InvalidArgument(DiffkitError, ValueError):
    """An argument has the wrong value for a diffkit call.

    For example an unknown backend name, a bad option, an empty point or a
    suite file without cases. A ``ValueError``. An argument of the wrong
    *type* is an :class:`InvalidType` (a ``TypeError``) instead: the two are
    kept apart so that ``except TypeError`` and ``except ValueError`` catch
    what they always caught.

    Example:
        >>> import diffkit as dk
        >>> try:
        ...     dk.get_backend("sympy")
        ... except ValueError as e:
        ...     print(type(e).__name__, "-", str(e).split(";")[0])
        InvalidArgument - unknown backend 'sympy'
    """


class NotFound(InvalidArgument, KeyError):
    """A lookup by name or label found nothing.

    Raised by lookups that read like a mapping's: ``Report.row(backend)``,
    ``Graph.node(label)``, a function missing from the table given to
    ``Expression.to_sympy``. Both a ``KeyError`` (as a mapping would raise) and
    an :class:`InvalidArgument`; unlike a plain ``KeyError`` its message is
    printed without quotes.

    Example:
        >>> import diffkit as dk
        >>> try:
        ...     dk.graph("x*y", 1.0, 2.0).node("z")
        ... except KeyError as e:
        ...     print(type(e).__name__, "-", str(e).split(";")[0])
        NotFound - graph of x*y: no node labelled 'z'
    """

    __str__ = BaseException.__str__  # KeyError's would quote the message


class InvalidType(DiffkitError, TypeError):
    """An argument has the wrong type for a diffkit call.

    For example a number where a function is expected, a string where a
    sequence of names is expected, a non-numeric argument to differentiate
    with respect to, or a function that returns what has no derivative (None,
    a bool, an integer, an integer or boolean array such as ``x > 0``; as in
    JAX, an integer constant too) on any operator and backend. A ``TypeError``;
    a wrong *value* is an :class:`InvalidArgument`.

    Example:
        >>> import diffkit as dk
        >>> try:
        ...     dk.get_backend(3)
        ... except TypeError as e:
        ...     print(type(e).__name__, "-", str(e).split(" (")[0])
        InvalidType - backend= takes a name
    """


class UnsupportedOperation(DiffkitError, TypeError):
    """An operation has no rule on the backend that met it.

    Example:
        >>> import numpy as np, diffkit as dk
        >>> try:
        ...     dk.grad(lambda x: np.histogram(x)[1].sum())(np.ones(3))
        ... except dk.UnsupportedOperation as e:
        ...     print(str(e).split(";")[0])
        numpy.histogram is not supported by diffkit (backend 'reverse')
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


class SizeLimitError(DiffkitError, ValueError):
    """A symbolic computation would be larger than a limit: the message names the limit
    and how to raise it.

    The limits: ``Symbolic(size_limit=...)`` (2000 scalar symbols by default;
    past a few thousand elements the AD backends are the right tool),
    ``Symbolic(op_limit=...)`` and ``dk.diff(..., op_limit=...)`` (SymPy
    operations a trace and its derivative may build), the size of a symbolic
    matrix that ``det``, ``inv`` or ``solve`` expands, and the nesting depth
    SymPy's recursive algorithms reach. Also importable from
    :mod:`diffkit.backends.symbolic`.

    Example:
        >>> import numpy as np, diffkit as dk
        >>> try:
        ...     dk.grad(lambda x: x.sum(), backend=dk.Symbolic(size_limit=3))(np.ones(5))
        ... except dk.SizeLimitError as e:
        ...     print(str(e).split(";")[0])
        symbolic backend: the arguments have 5 elements ('x' (5,)), more than the limit of 3 symbols
    """


class TimeLimitError(DiffkitError, TimeoutError):
    """A call ran past its time limit and was stopped.

    Raised by the calls that take ``timeout=`` (``dk.diff``, ``dk.crosscheck``,
    ``Symbolic(timeout=...)``) and by the command line's ``--timeout``. The work
    runs in a child process that is killed at the limit, so nothing of it is left
    running and the interpreter's state is untouched. A ``TimeoutError``.

    Attributes:
        limit: the limit, in seconds.

    Example:
        >>> import diffkit as dk
        >>> try:
        ...     dk.diff("exp(sin(x))", order=14, timeout=0.5)
        ... except dk.TimeLimitError as e:
        ...     print(str(e).split(";")[0])
        diff of exp(sin(x)): no result within the time limit of 0.5 s
    """

    def __init__(self, message: str, limit: float = 0.0):
        super().__init__(message)
        self.limit = limit


class TracingError(DiffkitError, TypeError):
    """A traced value was used where a concrete number is needed.

    Raised, for example, by ``float(x)`` on a traced value or by an in-place
    assignment into a traced array.
    """


class ShapeError(DiffkitError, TypeError):
    """An operator got a function or argument of the wrong shape.

    For example ``grad`` of a function that does not return a scalar.
    """


class Unavailable(DiffkitError, RuntimeError):
    """A tool or optional package that a call needs is not installed.

    The message names what to install (an extra such as ``diffkit[graph]``).
    A ``RuntimeError``: raised when the tool is used, not when diffkit is
    imported. (Only matplotlib for :mod:`diffkit.plots` stays a plain
    ``ImportError``, as importing a missing package would.)

    Example:
        >>> from diffkit.bench import peers
        >>> class Missing(peers.Tool):
        ...     name = "missing"
        ...     def _load(self):
        ...         raise ImportError("No module named 'missing'")
        >>> try:
        ...     Missing()._need()
        ... except RuntimeError as e:
        ...     print(type(e).__name__, "-", e)
        Unavailable - missing is not available (ImportError: No module named 'missing')
    """


class BackendMismatch(DiffkitError, AssertionError):
    """Raised by ``assert_backends_agree`` when backends disagree."""
