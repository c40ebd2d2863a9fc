"""The backends and how a name or instance selects one.

Each backend is a thin class: it runs the user's function on its own value
type and reads the rules from :mod:`diffkit.primitives`. Backends are found
through the entry-point group ``diffkit.backends``: the built-in ones are
declared there in diffkit's own metadata, and a package that declares one
more adds it to every operator, the harness and the bench.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from typing import Any

from ..errors import InvalidArgument, InvalidType, Unavailable
from .base import ADBackend
from .forward import Forward
from .numeric import Numeric
from .reverse import Reverse
from .symbolic import Symbolic

GROUP = "diffkit.backends"
"""The entry-point group through which a package adds a backend (the built-in ones too)."""

_BUILTIN = {"symbolic": "diffkit.backends.symbolic:Symbolic", "numeric": "diffkit.backends.numeric:Numeric",
            "forward": "diffkit.backends.forward:Forward", "reverse": "diffkit.backends.reverse:Reverse",
            "compiled": "diffkit.backends.compiled:Compiled"}
"""The built-in backends' entry points, also when diffkit runs from a source tree without
its package metadata."""

DEFAULT_BACKEND = "reverse"


@functools.lru_cache(maxsize=1)
def _registry() -> dict[str, Any]:
    """Backend name -> entry point (or ``"module:attr"`` for a built-in without metadata)."""
    import importlib.metadata  # not at import: it costs more than the rest of ``import diffkit``

    found: dict[str, Any] = dict(_BUILTIN)
    for ep in importlib.metadata.entry_points(group=GROUP):
        if ep.name in _BUILTIN and ep.value != _BUILTIN[ep.name]:
            warnings.warn(f"entry point {ep.value!r} (group {GROUP!r}) tries to replace the built-in "
                          f"backend {ep.name!r}; ignored", stacklevel=2)
            continue
        found[ep.name] = ep
    return found


def _load(name: str, target: Any) -> Any:
    try:
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            obj = getattr(importlib.import_module(module), attr)
        else:
            obj = target.load()
    except Exception as e:
        where = target if isinstance(target, str) else f"{target.value} (package {_dist(target)})"
        raise Unavailable(f"backend {name!r} could not be loaded from {where}: {type(e).__name__}: {e}") from e
    if not (isinstance(obj, type) and callable(getattr(obj, "vjp", None)) and callable(getattr(obj, "jvp", None))):
        raise InvalidType(f"backend {name!r}: the entry point {target if isinstance(target, str) else target.value} "
                          f"is not a backend class (a class with vjp and jvp methods, e.g. a subclass of "
                          f"diffkit.backends.ADBackend)")
    return obj


def _dist(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return getattr(dist, "name", "?") if dist is not None else "?"


def backends() -> tuple[str, ...]:
    """Names of the available backends: the built-in ones, then those installed packages add
    through the entry-point group ``diffkit.backends``.

    Example:
        >>> import diffkit as dk
        >>> dk.backends()[:4]
        ('symbolic', 'numeric', 'forward', 'reverse')
    """
    return tuple(_BUILTIN) + tuple(sorted(n for n in _registry() if n not in _BUILTIN))


def get_backend(backend: Any = None) -> ADBackend:
    """A backend instance from ``None`` (the default), a name, or an instance."""
    if backend is None:
        backend = DEFAULT_BACKEND
    if isinstance(backend, str):
        target = _registry().get(backend)
        if target is None:
            raise InvalidArgument(f"unknown backend {backend!r}; choose one of {', '.join(backends())}")
        return _load(backend, target)()  # type: ignore[no-any-return]
    if isinstance(backend, ADBackend) or hasattr(backend, "vjp"):
        return backend  # type: ignore[no-any-return]
    raise InvalidType(f"backend= takes a name ({', '.join(backends())}) or a backend instance, "
                      f"got {type(backend).__name__}")


__all__ = ["ADBackend", "Forward", "Reverse", "Symbolic", "backends", "get_backend", "DEFAULT_BACKEND", "GROUP"]
