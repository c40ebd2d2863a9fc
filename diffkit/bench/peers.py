"""Adapters: diffkit's AD backends and its peers behind one small interface.

Each benchmark case is written ONCE as ``fn(xp, *args)`` against an array
module ``xp`` -- NumPy, ``autograd.numpy``, ``jax.numpy``, or :data:`TORCH_SHIM`
for PyTorch -- so every tool differentiates the same code. An adapter turns a
:class:`Case` into a zero-argument callable that computes the gradient (or a
Jacobian) with that tool, on the tool's own arrays:

* inputs are converted once, when the callable is built, not when it is timed;
* the callable waits for its result (``jax.block_until_ready``; PyTorch's CPU
  tensors are synchronous);
* peers are imported lazily, the first time ``available`` (or anything else
  that needs them) is asked -- never by ``import diffkit`` nor by importing
  this module.

The tools (gradient; Jacobian modes):

* ``diffkit reverse``: ``dk.grad`` (the tape); reverse.
* ``diffkit forward``: ``dk.grad(..., backend="forward")``, one tangent per
  input, so gradients only up to ``max_grad_inputs`` inputs; forward.
* ``diffkit numeric``: no gradient rows; ``dk.jacobian(..., backend="numeric")``.
* ``diffkit compiled``: ``dk.grad(..., backend="compiled")``, the gradient
  written as Python source once and compiled (the first call, which traces and
  compiles, is the setup); Jacobians in mode ``auto``: the backend runs forward
  mode where the arguments are fewer than the outputs, else reverse mode.
* ``autograd``: ``autograd.grad``; reverse (``autograd.jacobian``) and forward
  (``autograd.core.make_jvp``, one JVP per column).
* ``jax``: ``jax.jit(jax.grad)`` in float64 with synchronous CPU dispatch
  (``jax_cpu_enable_async_dispatch`` off: one thread, like the others);
  ``jax.jacrev`` and ``jax.jacfwd``, jit-compiled (compiling is the setup,
  timed apart).
* ``torch``: eager ``torch.autograd.grad`` in float64;
  ``torch.func.jacrev`` and ``torch.func.jacfwd``.

Example:
    >>> import numpy as np
    >>> case = Case("square", lambda xp, x: xp.sum(x * x), (np.arange(3.0),))
    >>> tool = get_tool("diffkit reverse")
    >>> tool.available, tool.to_numpy(tool.grad(case)())
    (True, array([0., 2., 4.]))
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InvalidArgument, Unavailable

__all__ = ["TOOLS", "TORCH_SHIM", "Case", "Tool", "available_tools", "get_tool", "tool_info", "tools"]


@dataclass(frozen=True)
class Case:
    """One function to differentiate: ``fn(xp, *args)`` with respect to ``args[argnums]``.

    ``args`` are NumPy arrays or Python floats; ``argnums`` is an int (the
    result is one array) or a tuple (a tuple of arrays), as in ``dk.grad``.
    """

    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    argnums: int | tuple[int, ...] = 0
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def n_inputs(self) -> int:
        """Number of scalar inputs differentiated (what forward mode pays for)."""
        nums = (self.argnums,) if isinstance(self.argnums, int) else self.argnums
        return int(sum(np.size(self.args[i]) for i in nums))

    def numpy_f(self) -> Callable[[], Any]:
        """The plain NumPy function at ``args``, as a zero-argument callable."""
        f, args = functools.partial(self.fn, np), self.args
        return lambda: f(*args)


class _TorchShim:
    """The part of NumPy's namespace the cases use, on PyTorch tensors.

    ``sum``, ``max`` and ``mean`` take NumPy's ``axis``/``keepdims``; ``max`` is
    ``torch.amax`` (gradient split evenly among ties, like NumPy-based tools).
    Elementwise functions are PyTorch's own, looked up once (then plain attributes),
    so the shim adds no cost per operation beyond an attribute read.
    """

    _ELEMENTWISE = ("tanh", "exp", "log", "sin", "cos", "sqrt", "abs")

    def __getattr__(self, name: str) -> Any:
        if name in self._ELEMENTWISE:
            import torch

            fn = getattr(torch, name)
            setattr(self, name, fn)
            return fn
        raise AttributeError(f"the torch shim has no {name!r}; add it to diffkit.bench.peers._TorchShim")

    @staticmethod
    def sum(x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        return x.sum() if axis is None else x.sum(dim=axis, keepdim=keepdims)

    @staticmethod
    def max(x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        return x.amax() if axis is None else x.amax(dim=axis, keepdim=keepdims)

    @staticmethod
    def mean(x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        return x.mean() if axis is None else x.mean(dim=axis, keepdim=keepdims)


#: NumPy-like namespace for PyTorch tensors (``sum``, ``max``, ``mean``, ``tanh``, ``exp``, ``log``, ``sin``, ...).
TORCH_SHIM = _TorchShim()


def _argnum_tuple(argnums: int | tuple[int, ...]) -> tuple[int, ...]:
    return (argnums,) if isinstance(argnums, int) else tuple(argnums)


class Tool:
    """An AD tool: its name, version, availability and how to build derivatives with it.

    Subclasses set ``name``, ``modes`` (the Jacobian modes they offer),
    ``max_grad_inputs`` (``None``: no limit; forward mode pays one pass per
    input) and implement ``_load`` (import, return the version string),
    ``grad`` and ``jacobian``.
    """

    name: str = ""
    modes: tuple[str, ...] = ()
    gradient: bool = True  # offers gradients (the cheap-gradient, scalar-chain and scaling sections)
    max_grad_inputs: int | None = None
    note: str = ""  # said on every row of this tool (e.g. "jit-compiled")

    def __init__(self) -> None:
        self._loaded = False
        self._version: str | None = None
        self._reason: str | None = None

    def _ensure(self) -> bool:
        if not self._loaded:
            self._loaded = True
            try:
                self._version = self._load()
            except Exception as e:  # ImportError, or a broken installation
                self._reason = f"{type(e).__name__}: {e}"
        return self._reason is None

    def _load(self) -> str:
        raise NotImplementedError

    @property
    def available(self) -> bool:
        """Whether the tool can be imported (imports it the first time)."""
        return self._ensure()

    @property
    def reason(self) -> str | None:
        """Why the tool is not available (``None`` when it is)."""
        self._ensure()
        return self._reason

    @property
    def version(self) -> str | None:
        """The tool's version (``None`` when it is not available)."""
        self._ensure()
        return self._version

    def _need(self) -> None:
        if not self._ensure():
            raise Unavailable(f"{self.name} is not available ({self._reason})")

    def grad(self, case: Case) -> Callable[[], Any]:
        """A zero-argument callable computing the gradient of ``case`` with this tool."""
        raise NotImplementedError(f"{self.name} offers no gradient")

    def jacobian(self, case: Case, mode: str) -> Callable[[], Any]:
        """A zero-argument callable computing the Jacobian of ``case`` in ``mode`` (one of ``modes``)."""
        raise NotImplementedError

    def _check_mode(self, mode: str) -> None:
        if mode not in self.modes:
            raise InvalidArgument(f"{self.name} has no {mode!r} Jacobian; modes: {', '.join(self.modes)}")

    def to_numpy(self, result: Any) -> Any:
        """The result of a built callable as NumPy (a tuple stays a tuple)."""
        if isinstance(result, (tuple, list)):
            return tuple(self.to_numpy(r) for r in result)
        return np.asarray(result)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} version={self.version!r} reason={self.reason!r}>"


class _Diffkit(Tool):
    backend = ""

    def _load(self) -> str:
        from .._version import __version__

        return __version__

    def grad(self, case: Case) -> Callable[[], Any]:
        from .. import operators as dk

        self._need()
        g = dk.grad(functools.partial(case.fn, np), argnums=case.argnums, backend=self.backend)
        args = case.args
        return lambda: g(*args)

    def jacobian(self, case: Case, mode: str) -> Callable[[], Any]:
        from .. import operators as dk

        self._need()
        self._check_mode(mode)
        j = dk.jacobian(functools.partial(case.fn, np), argnums=case.argnums, backend=self.backend)
        args = case.args
        return lambda: j(*args)


class DiffkitReverse(_Diffkit):
    name, backend, modes = "diffkit reverse", "reverse", ("reverse",)


class DiffkitForward(_Diffkit):
    name, backend, modes = "diffkit forward", "forward", ("forward",)
    max_grad_inputs = 2000


class DiffkitNumeric(_Diffkit):
    name, backend, modes = "diffkit numeric", "numeric", ("numeric",)
    gradient = False


class DiffkitCompiled(_Diffkit):
    name, backend, modes = "diffkit compiled", "compiled", ("auto",)
    note = "source transformation; setup is trace + compile"

    def grad(self, case: Case) -> Callable[[], Any]:
        return _no_fallback(super().grad(case))

    def jacobian(self, case: Case, mode: str) -> Callable[[], Any]:
        return _no_fallback(super().jacobian(case, mode))


def _no_fallback(call: Callable[[], Any]) -> Callable[[], Any]:
    """``call``, whose first run raises :class:`~diffkit.errors.Unavailable` if the compiled
    backend handed the function to the reverse backend (its warning): a row timed
    then would be the reverse backend's, under the compiled backend's name."""
    import warnings

    first = [True]

    def run() -> Any:
        if not first[0]:
            return call()
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", RuntimeWarning)
            out = call()
        fell = [w for w in seen if "differentiated by the reverse backend" in str(w.message)]
        if fell:
            raise Unavailable(f"diffkit compiled: {fell[0].message}")
        first[0] = False
        return out

    return run


class Autograd(Tool):
    name, modes = "autograd", ("reverse", "forward")

    def _load(self) -> str:
        from importlib.metadata import version

        importlib.import_module("autograd")
        importlib.import_module("autograd.numpy")
        return version("autograd")

    def grad(self, case: Case) -> Callable[[], Any]:
        self._need()
        import autograd
        import autograd.numpy as anp

        g = autograd.grad(functools.partial(case.fn, anp), case.argnums)
        args = case.args
        return lambda: g(*args)

    def jacobian(self, case: Case, mode: str) -> Callable[[], Any]:
        self._need()
        self._check_mode(mode)
        import autograd
        import autograd.numpy as anp
        from autograd.core import make_jvp

        if not isinstance(case.argnums, int):
            raise InvalidArgument(f"{self.name}: the Jacobian of case {case.name!r} needs one argument "
                                  f"(an int argnums), got argnums={case.argnums!r}")
        f, args, k = functools.partial(case.fn, anp), case.args, case.argnums
        if mode == "reverse":
            j = autograd.jacobian(f, k)
            return lambda: j(*args)
        # Forward mode: autograd has JVPs (``autograd.core.make_jvp``) but no Jacobian
        # built from them; one JVP per column, stacked as out.shape + in.shape.
        x = args[k]
        shape = np.shape(x)
        basis = list(np.eye(int(np.prod(shape))).reshape((-1,) + shape)) if shape else [1.0]

        def f1(v: Any) -> Any:
            return f(*args[:k], v, *args[k + 1:])

        def jac() -> Any:
            jvp = make_jvp(f1, x)
            cols = [jvp(e)[1] for e in basis]
            return np.stack(cols, axis=-1).reshape(np.shape(cols[0]) + shape)

        return jac


class Jax(Tool):
    name, modes = "jax", ("reverse", "forward")
    note = "jit-compiled, synchronous CPU dispatch; setup is trace + compile"

    def _load(self) -> str:
        if "jax" not in sys.modules:  # XLA reads these when its CPU client starts
            from .timing import ENV

            os.environ.setdefault("XLA_FLAGS", ENV["XLA_FLAGS"])
            os.environ.setdefault("JAX_PLATFORMS", "cpu")
        jax = importlib.import_module("jax")
        importlib.import_module("jax.numpy")
        jax.config.update("jax_enable_x64", True)  # float64, like NumPy and the other tools
        try:
            # Run on the calling thread, like every other tool: with asynchronous dispatch
            # each call pays a hand-off to XLA's worker thread and back (about 40 us on a
            # busy 2-core machine, most of a small gradient's time).
            jax.config.update("jax_cpu_enable_async_dispatch", False)
        except (AttributeError, KeyError, ValueError):  # an older JAX without the option
            pass
        return str(jax.__version__)

    def _convert(self, args: Sequence[Any]) -> tuple[Any, ...]:
        import jax.numpy as jnp

        return tuple(jnp.asarray(a, dtype=jnp.float64) for a in args)

    def grad(self, case: Case) -> Callable[[], Any]:
        self._need()
        import jax
        import jax.numpy as jnp

        g = jax.jit(jax.grad(functools.partial(case.fn, jnp), argnums=case.argnums))
        args = self._convert(case.args)
        block = jax.block_until_ready
        return lambda: block(g(*args))

    def jacobian(self, case: Case, mode: str) -> Callable[[], Any]:
        self._need()
        self._check_mode(mode)
        import jax
        import jax.numpy as jnp

        op = jax.jacrev if mode == "reverse" else jax.jacfwd
        j = jax.jit(op(functools.partial(case.fn, jnp), argnums=case.argnums))
        args = self._convert(case.args)
        block = jax.block_until_ready
        return lambda: block(j(*args))


class Torch(Tool):
    name, modes = "torch", ("reverse", "forward")
    note = "eager"

    def _load(self) -> str:
        torch = importlib.import_module("torch")
        importlib.import_module("torch.func")
        torch.set_num_threads(1)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # only possible before the first parallel work
            pass
        return str(torch.__version__)

    def _convert(self, args: Sequence[Any], requires_grad: Sequence[int] = ()) -> tuple[Any, ...]:
        import torch

        out = []
        for i, a in enumerate(args):
            t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)) if isinstance(a, np.ndarray) \
                else torch.tensor(float(a), dtype=torch.float64)
            if i in requires_grad:
                t.requires_grad_(True)
            out.append(t)
        return tuple(out)

    def grad(self, case: Case) -> Callable[[], Any]:
        self._need()
        import torch

        nums = _argnum_tuple(case.argnums)
        args = self._convert(case.args, requires_grad=nums)
        inputs = [args[i] for i in nums]
        f = functools.partial(case.fn, TORCH_SHIM)
        autograd_grad = torch.autograd.grad
        if isinstance(case.argnums, int):
            return lambda: autograd_grad(f(*args), inputs)[0]
        return lambda: autograd_grad(f(*args), inputs)

    def jacobian(self, case: Case, mode: str) -> Callable[[], Any]:
        self._need()
        self._check_mode(mode)
        import torch.func

        op = torch.func.jacrev if mode == "reverse" else torch.func.jacfwd
        j = op(functools.partial(case.fn, TORCH_SHIM), argnums=case.argnums)
        args = self._convert(case.args)
        return lambda: j(*args)

    def to_numpy(self, result: Any) -> Any:
        if isinstance(result, (tuple, list)):
            return tuple(self.to_numpy(r) for r in result)
        return result.detach().numpy() if hasattr(result, "detach") else np.asarray(result)


#: Every tool, in the order of the tables: diffkit's backends first, then the peers.
TOOLS: tuple[str, ...] = ("diffkit reverse", "diffkit forward", "diffkit numeric", "diffkit compiled", "autograd",
                          "jax", "torch")
_CLASSES: dict[str, type[Tool]] = {c.name: c for c in (DiffkitReverse, DiffkitForward, DiffkitNumeric,
                                                        DiffkitCompiled, Autograd, Jax, Torch)}
_INSTANCES: dict[str, Tool] = {}


def _plugin_tools() -> dict[str, type[Tool]]:
    """A tool per backend a package adds through the ``diffkit.backends`` entry points:
    gradients and one Jacobian mode, named after the backend."""
    from ..backends import _BUILTIN, backends as names

    out: dict[str, type[Tool]] = {}
    for b in names():
        if b in _BUILTIN:
            continue
        cls = type(f"Plugin_{b}", (_Diffkit,), {"name": f"diffkit {b}", "backend": b, "modes": (b,)})
        out[cls.name] = cls
    return out


def get_tool(name: str) -> Tool:
    """The adapter called ``name`` (one of :data:`TOOLS`, or ``"diffkit NAME"`` for a plug-in
    backend NAME); one instance per process."""
    classes = {**_CLASSES, **_plugin_tools()} if name not in _CLASSES else _CLASSES
    if name not in classes:
        raise InvalidArgument(f"unknown tool {name!r}; choose from {', '.join(all_tool_names())}")
    if name not in _INSTANCES:
        _INSTANCES[name] = classes[name]()
    return _INSTANCES[name]


def all_tool_names() -> tuple[str, ...]:
    """:data:`TOOLS` and, after diffkit's own, one ``"diffkit NAME"`` per plug-in backend."""
    plugins = tuple(_plugin_tools())
    return TOOLS[:4] + plugins + TOOLS[4:]


def tools(names: Sequence[str] | None = None) -> list[Tool]:
    """The adapters called ``names`` (all tools, plug-in backends included, by default),
    available or not."""
    return [get_tool(n) for n in (all_tool_names() if names is None else names)]


def available_tools(include_peers: bool = True) -> list[Tool]:
    """diffkit's backends, and (``include_peers``) every peer that can be imported, in :data:`TOOLS` order."""
    return [t for t in tools() if t.name.startswith("diffkit") or (include_peers and t.available)]


def tool_info(names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Name, version, availability and reason of each tool, JSON-able (imports the peers)."""
    return [{"tool": t.name, "version": t.version, "available": t.available, "reason": t.reason}
            for t in tools(names)]
