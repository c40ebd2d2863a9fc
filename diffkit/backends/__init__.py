"""The backends and how a name or instance selects one.

Each backend is a thin class: it runs the user's function on its own value
type and reads the rules from :mod:`diffkit.primitives`.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgument, InvalidType
from .base import ADBackend
from .forward import Forward
from .numeric import Numeric
from .reverse import Reverse
from .symbolic import Symbolic

_BACKENDS: dict[str, type[ADBackend]] = {"symbolic": Symbolic, "numeric": Numeric, "forward": Forward,
                                       "reverse": Reverse}
DEFAULT_BACKEND = "reverse"


def backends() -> tuple[str, ...]:
    """Names of the available backends.

    Example:
        >>> import diffkit as dk
        >>> "reverse" in dk.backends()
        True
    """
    order = ("symbolic", "numeric", "forward", "reverse")
    return tuple(n for n in order if n in _BACKENDS)


def get_backend(backend: Any = None) -> ADBackend:
    """A backend instance from ``None`` (the default), a name, or an instance."""
    if backend is None:
        backend = DEFAULT_BACKEND
    if isinstance(backend, str):
        cls = _BACKENDS.get(backend)
        if cls is None:
            raise InvalidArgument(f"unknown backend {backend!r}; choose one of {', '.join(backends())}")
        return cls()
    if isinstance(backend, ADBackend) or hasattr(backend, "vjp"):
        return backend  # type: ignore[no-any-return]
    raise InvalidType(f"backend= takes a name ({', '.join(backends())}) or a backend instance, "
                      f"got {type(backend).__name__}")


__all__ = ["ADBackend", "Forward", "Reverse", "Symbolic", "backends", "get_backend", "DEFAULT_BACKEND"]
