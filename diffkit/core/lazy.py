"""Heavy dependencies imported on first use, so ``import diffkit`` stays fast.

SymPy takes about half a second to import and most programs never touch the
symbolic backend. Modules that use it write ``from ..core.lazy import sympy``:
the name is a stand-in that imports SymPy the first time one of its
attributes is read (then copies the module's namespace into itself, so later
reads cost what a module attribute costs). The primitive table names SymPy
forms with :func:`lazy_sympy`, which resolves when the table entry is read.

Example:
    >>> from diffkit.core.lazy import lazy_sympy, sympy
    >>> form = lazy_sympy("sin")
    >>> form
    lazy_sympy('sin')
    >>> form.resolve() is sympy.sin
    True
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["LazyModule", "LazySympy", "lazy_sympy", "mpmath", "resolve", "sympy"]


class LazyModule:
    """A module imported when one of its attributes is first read.

    Example:
        >>> m = LazyModule("fractions")
        >>> m.Fraction(1, 3)
        Fraction(1, 3)
    """

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_lazy_name", name)

    def _load(self) -> ModuleType:
        module = importlib.import_module(self._lazy_name)
        # later reads find the attribute in the instance dict, without __getattr__
        self.__dict__.update({k: v for k, v in vars(module).items() if k != "__class__"})
        return module

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__") and attr not in ("__version__", "__file__", "__path__"):
            raise AttributeError(attr)
        return getattr(self._load(), attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        setattr(self._load(), attr, value)
        self.__dict__[attr] = value

    def __repr__(self) -> str:
        return f"<lazy module {self._lazy_name!r}>"


sympy: Any = LazyModule("sympy")
mpmath: Any = LazyModule("mpmath")


class LazySympy:
    """A SymPy attribute named by a dotted path, looked up on first use.

    Calling it calls the SymPy object; :func:`resolve` returns the object
    itself (the primitive table resolves its entries when they are read).

    Example:
        >>> LazySympy("Abs")(-2)
        2
    """

    __slots__ = ("path", "_value")

    def __init__(self, path: str) -> None:
        self.path = path
        self._value: Any = None

    def resolve(self) -> Any:
        """The SymPy object the path names (imports SymPy the first time)."""
        if self._value is None:
            obj: Any = sympy
            for part in self.path.split("."):
                obj = getattr(obj, part)
            self._value = obj
        return self._value

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"lazy_sympy({self.path!r})"


def lazy_sympy(path: str) -> LazySympy:
    """The SymPy object at ``path`` (``"sin"``, ``"Max"``), imported on first use.

    Example:
        >>> lazy_sympy("cos")(0)
        1
    """
    return LazySympy(path)


def resolve(value: Any) -> Any:
    """``value`` itself, or the SymPy object a :class:`LazySympy` names.

    Example:
        >>> resolve(lazy_sympy("pi")) is sympy.pi, resolve(3)
        (True, 3)
    """
    return value.resolve() if isinstance(value, LazySympy) else value
