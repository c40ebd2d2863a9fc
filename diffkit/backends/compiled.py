"""Source transformation: trace once, write the derivative as Python, compile it, cache it.

The fourth classic family of differentiation, next to operator overloading
(:mod:`~diffkit.backends.forward`, :mod:`~diffkit.backends.reverse`), symbolic
and numeric: the function runs once on :class:`CNode` values, which record each
primitive of the table into a straight-line program (the IR: one :class:`Op`
per primitive, the table's entries and nothing else). From the IR the backend
*writes* Python source for the forward pass and the backward pass (NumPy calls
for arrays, the :mod:`math` module for Python floats), compiles it once and
caches it per argument shapes, dtypes and branch guards. Calling a gradient
again runs the generated code only: no tracing, no tape, no dispatch per
operation.

What the code generator does, as a compiler would:

* **dead-code and unused-cotangent elimination**: only operations on a path from
  the differentiated arguments to the output get cotangents; operations the
  output does not read are not emitted;
* **common-subexpression elimination** while tracing (the same primitive on the
  same operands is one value);
* **constant folding** of Python-number operands into the source (``x * 2.0``);
* **lazy broadcasting**: the cotangent of ``np.sum`` stays a Python number until a
  rule needs an array, and a slice's cotangent is written into its parent's
  buffer (``g[1:] += ...``) instead of being padded with zeros;
* **in-place accumulation** into cotangent arrays the generated code allocated;
* **straight-line scalar code**: a function of Python floats becomes ``math``
  calls and arithmetic on floats.

Python control flow on a traced value (``if x > 0``) becomes a *guard*: the
generated code checks the condition and, when a call takes another branch, the
function is traced again and the cache holds both variants. A function that
cannot be traced this way (it reads a traced value's number, calls a custom rule)
is differentiated by the reverse backend instead, with a one-time warning that
says why. Calls inside another transformation (the inner derivative of a
Hessian), complex arguments and arguments that are neither Python floats nor
float arrays (a NumPy float32 scalar) go to the reverse backend directly.
:func:`diffkit.source` shows the generated code.

Example:
    >>> import numpy as np, diffkit as dk
    >>> f = lambda x: np.sum(np.sin(x) * x)
    >>> x = np.array([0.5, 1.0, 2.0])
    >>> g = dk.grad(f, backend="compiled")(x)
    >>> bool(np.allclose(g, np.cos(x) * x + np.sin(x)))
    True
"""

from __future__ import annotations

import functools
import inspect
import itertools
import keyword
import math
import re
import sys
import threading
import warnings
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..core.primitive import P, Primitive
from ..core.values import TracedDType, Value, is_complex, new_level, pack, shape_of
from ..errors import DiffkitError, TracingError
from . import accel
from .base import ADBackend, check_output, full, unbroadcast
from .reverse import Reverse

__all__ = ["CNode", "Compiled", "source"]


class Untraceable(DiffkitError):
    """The function cannot be compiled from one trace (the reverse backend takes it)."""


class GuardFailed(Exception):
    """A call took another branch than the one a compiled variant was traced on."""


# ---------------------------------------------------------------------------
# Tracing into the IR
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One primitive of the program: ``values[out] = prim(*args, **params)``. An
    argument is ``("v", k)`` (the value ``k``) or ``("c", k)`` (the constant ``k``)."""

    prim: Primitive
    args: tuple[tuple[str, int], ...]
    params: dict[str, Any]
    out: int


class CNode(Value):
    """A value of a compile trace: its number (to run the function once) and the
    program variable that computes it. Reading the number (``float(x)``, NumPy
    code outside the table) makes the trace unusable for other points."""

    __slots__ = ("_trace", "_val", "var")

    def __init__(self, trace: CompileTrace, val: Any, var: int) -> None:
        self._trace = trace
        self._val = val
        self.var = var

    @property
    def primal(self) -> Any:
        self._trace.peek(_reader(sys._getframe(1)))
        return self._val

    @property
    def shape(self) -> tuple[int, ...]:
        return shape_of(self._val)

    @property
    def dtype(self) -> TracedDType:
        return TracedDType(np.result_type(self._val))

    @property
    def is_complex(self) -> bool:
        return is_complex(self._val)

    def _structure(self) -> Any:
        return self._val

    def __bool__(self) -> bool:
        return self._trace.guard(self)

    def __repr__(self) -> str:
        return f"CNode({self._val!r}, var=v{self.var}, backend='compiled')"


def _reader(frame: Any) -> str:
    """Who read a traced value's number: the NumPy handler or user function above the
    value protocol's helpers (for the fallback's warning)."""
    while frame is not None and frame.f_code.co_name in ("concrete", "pack", "<genexpr>", "<listcomp>",
                                                         "shape_of", "is_complex", "handler"):
        frame = frame.f_back
    if frame is None:
        return "?"
    name = frame.f_code.co_name
    module = frame.f_globals.get("__name__", "")
    if module == "diffkit.numpy_api" and name.startswith("_"):
        return f"numpy.{name.lstrip('_')}"
    return name


def _params_key(params: dict[str, Any]) -> Any:
    if not params:
        return ()
    try:
        key = tuple(sorted(params.items()))
        hash(key)
        return key
    except TypeError:
        return repr(sorted(params.items(), key=lambda kv: kv[0]))


def _const_key(v: Any) -> Any:
    """A hashable identity for a constant operand (CSE), or ``None``."""
    if type(v) in (float, int, bool, complex) or v is None:
        return (type(v), v)
    if isinstance(v, np.ndarray):
        return ("id", id(v))
    return None


class CompileTrace:
    """One run of the function on :class:`CNode` values, recording the IR."""

    backend_name = "compiled"

    def __init__(self) -> None:
        self.level = new_level()
        self.values: list[Any] = []        # the number of each variable at the traced point
        self.ops: list[Op] = []
        self.consts: list[Any] = []
        self.inputs: list[int] = []        # variables that are arguments
        self.guards: list[tuple[int, bool]] = []
        self.peeked: str | None = None
        self.arguments: set[int] = set()
        self._memo: dict[Any, int] = {}
        self._const_ids: dict[Any, int] = {}
        self._keep: list[Any] = []         # constants CSE keys refer to by id

    def leaf(self, value: Any) -> CNode:
        var = len(self.values)
        self.values.append(value)
        self.inputs.append(var)
        node = CNode(self, value, var)
        self.arguments.add(id(node))
        return node

    def peek(self, where: str) -> None:
        if self.peeked is None:
            self.peeked = where

    def guard(self, node: CNode) -> bool:
        v = node._val
        if np.size(v) != 1:
            raise TracingError(f"the truth value of a traced array of {np.size(v)} elements is ambiguous "
                               "(as in NumPy); use np.all, np.any or np.where")
        taken = bool(v)
        self.guards.append((node.var, taken))
        return taken

    def const(self, v: Any) -> tuple[str, int]:
        key = _const_key(v)
        if key is not None:
            k = self._const_ids.get(key)
            if k is not None:
                return ("c", k)
        k = len(self.consts)
        self.consts.append(v)
        if key is not None:
            self._const_ids[key] = k
            self._keep.append(v)
        return ("c", k)

    def apply(self, prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        vals = []
        refs = []
        for a in args:
            if type(a) is CNode and a._trace is self:
                vals.append(a._val)
                refs.append(("v", a.var))
            elif isinstance(a, Value):
                raise Untraceable(f"a value of the enclosing backend '{a._trace.backend_name}' reached "
                                  "the compiled trace (it runs inside another transformation)")
            else:
                vals.append(a)
                refs.append(self.const(a))
        key = (prim, tuple(refs), _params_key(params))
        var = self._memo.get(key)
        if var is not None:  # common subexpression
            return CNode(self, self.values[var], var)
        out = accel.evaluate(prim, vals, params)
        if isinstance(out, tuple):
            raise Untraceable(f"numpy.{prim.name} returns several values")
        if prim.differentiable and is_complex(out):
            # a real value entering complex arithmetic, as the reverse backend records it:
            # its cotangent stays real (docs/complex.md)
            for j, (kind, k) in enumerate(refs):
                if kind == "v" and not is_complex(self.values[k]):
                    refs[j] = ("v", self._record(P.to_complex, [("v", k)], {}, self.values[k]))
        var = len(self.values)
        self.values.append(out)
        self.ops.append(Op(prim, tuple(refs), dict(params), var))
        self._memo[key] = var
        return CNode(self, out, var)

    def _record(self, prim: Primitive, refs: list[tuple[str, int]], params: dict[str, Any], out: Any) -> int:
        var = len(self.values)
        self.values.append(out)
        self.ops.append(Op(prim, tuple(refs), dict(params), var))
        return var

    def call_custom(self, fn: Any, args: tuple[Any, ...]) -> Any:
        raise Untraceable(f"the custom rule {getattr(fn, '__name__', fn)!r} (custom rules run on the "
                          "reverse backend)")


# ---------------------------------------------------------------------------
# The program: what is reachable, and a reference interpreter
# ---------------------------------------------------------------------------


@dataclass
class Program:
    """A traced function: the IR, its constants, inputs, output and guards."""

    ops: list[Op]
    consts: list[Any]
    inputs: list[int]
    diff: list[int]                 # the differentiated inputs (variables)
    output: tuple[str, int]         # ("v", var) or ("c", k): a constant output
    guards: list[tuple[int, bool]]
    values: list[Any]               # the numbers at the traced point (shapes, dtypes)
    aux: Any = None                 # (treedef, leaves as refs) of an auxiliary output
    names: dict[int, str] = field(default_factory=dict)  # inputs named as the function's arguments
    live: set[int] = field(default_factory=set)      # variables the output needs
    complex_ct: set[int] = field(default_factory=set)  # real values whose cotangent is complex
    active: set[int] = field(default_factory=set)    # on a path from a differentiated input to the output

    def analyse(self) -> None:
        needs: set[int] = set()
        if self.output[0] == "v":
            needs.add(self.output[1])
        needs.update(v for v, _ in self.guards)
        if self.aux is not None:
            needs.update(k for kind, k in self.aux[1] if kind == "v")
        for op in reversed(self.ops):
            if op.out in needs:
                needs.update(k for kind, k in op.args if kind == "v")
        self.live = needs
        self.complex_ct = {op.out for op in self.ops if op.prim is P.to_complex}
        depends: set[int] = set(self.diff)
        for op in self.ops:
            if op.prim.differentiable and any(kind == "v" and k in depends and j not in op.prim.nondiff_args
                                              for j, (kind, k) in enumerate(op.args)):
                depends.add(op.out)
        self.active = depends & needs if self.output[0] == "v" else set()
        # the differentiated inputs stay active even when unused (their cotangent is zero)


# ---------------------------------------------------------------------------
# Code generation
# ---------------------------------------------------------------------------

_INFIX = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/"}
_UFUNC_OF = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.divide}


class _Writer:
    """Source lines, the namespace the generated code reads, and its buffers."""

    def __init__(self, prog: Program) -> None:
        self.prog = prog
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {"np": np, "math": math, "_GuardFailed": GuardFailed,
                                   "_unbroadcast": unbroadcast, "_full": full}
        self._names: dict[int, str] = {}
        self._count = itertools.count()
        self.buffers: list[tuple[tuple[int, ...], Any]] = []   # (shape, dtype) of B0, B1, ...
        self.buffered: set[str] = set()                       # names that live in buffers

    def name_of(self, obj: Any, hint: str) -> str:
        """A namespace name bound to ``obj`` (one per object)."""
        key = id(obj)
        name = self._names.get(key)
        if name is None:
            name = f"{hint}{next(self._count)}"
            self.ns[name] = obj
            self._names[key] = name
        return name

    def buffer(self, shape: tuple[int, ...], dtype: Any) -> str:
        """A buffer the generated code owns, allocated once per compiled variant."""
        name = f"B{len(self.buffers)}"
        self.buffers.append((tuple(shape), np.dtype(dtype)))
        return name

    def temp(self) -> str:
        return f"t{next(self._count)}"

    def emit(self, line: str, indent: int = 1) -> None:
        self.lines.append("    " * indent + line)

    def operand(self, ref: tuple[str, int]) -> str:
        kind, k = ref
        if kind == "v":
            return self.prog.names.get(k) or f"v{k}"
        v = self.prog.consts[k]
        lit = _literal(v)
        return lit if lit is not None else self.name_of(v, "c")

    def value(self, ref: tuple[str, int]) -> Any:
        kind, k = ref
        return self.prog.values[k] if kind == "v" else self.prog.consts[k]

    def kwargs(self, params: dict[str, Any]) -> str:
        if not all(key.isidentifier() and not keyword.iskeyword(key) for key in params):
            return f"**{self.name_of(dict(params), 'params_')}"  # names that are not Python's stay data
        parts = []
        for key, val in params.items():
            lit = _literal(val)
            parts.append(f"{key}={lit if lit is not None else self.name_of(val, key + '_')}")
        return ", ".join(parts)


def _literal(v: Any) -> str | None:
    """Python source for a constant that reads as itself (constant folding), or None."""
    if type(v) is float:
        return repr(v) if math.isfinite(v) else None
    if type(v) is int or type(v) is bool or v is None:
        return repr(v)
    return None


def _call(fn_name: str, args: list[str], kw: str = "") -> str:
    return f"{fn_name}({', '.join(args + ([kw] if kw else []))})"


def _forward(w: _Writer, op: Op) -> None:
    """Write ``op``'s value as the reverse backend computes it (:func:`accel.evaluate`:
    ``math`` on Python floats, NumPy else), into a buffer of its own when it is an
    array a NumPy ufunc computes (no allocation, hence no page faults, per call)."""
    prim = op.prim
    args = [w.operand(r) for r in op.args]
    vals = [w.value(r) for r in op.args]
    out = w.prog.values[op.out]
    target = f"v{op.out}"
    if prim.name == "getitem":
        w.emit(f"{target} = {args[0]}[{w.name_of(op.params['idx'], 'index_')}]")
        return
    if prim is P.sum and type(vals[0]) is np.ndarray and set(op.params) == {"axis", "keepdims"}:
        # np.sum's own reduction, without its Python wrapper
        w.emit(f"{target} = np.add.reduce({args[0]}, {w.kwargs(op.params)})")
        return
    scalar = accel.SCALAR.get(prim)
    if scalar is not None and not op.params and all(type(v) is float or type(v) is int for v in vals):
        sym = _INFIX.get(prim.name)
        if sym is not None:
            w.emit(f"{target} = {args[0]} {sym} {args[1]}")
        elif prim.name == "negative":
            w.emit(f"{target} = -{args[0]}")
        else:
            name = f"math.{scalar.__name__}" if getattr(math, getattr(scalar, "__name__", ""), None) is scalar \
                else w.name_of(scalar, f"{prim.name}_")
            w.emit(f"{target} = {_call(name, args)}")
        return
    ufunc = _UFUNC_OF.get(prim.name, prim.numpy)
    if (isinstance(ufunc, np.ufunc) and not op.params and type(out) is np.ndarray
            and ufunc.nout == 1 and len(args) == ufunc.nin):
        buf = w.buffer(out.shape, out.dtype)
        name = "np." + ufunc.__name__ if getattr(np, ufunc.__name__, None) is ufunc else w.name_of(ufunc, f"{prim.name}_")
        w.emit(f"{target} = {_call(name, args, 'out=' + buf)}")
        w.buffered.add(target)
        return
    w.emit(f"{target} = {_call(w.name_of(prim.numpy, f'{prim.name}_'), args, w.kwargs(op.params))}")


@dataclass
class _Term:
    """A cotangent the generated code has not formed yet: ``const * prod(scalars) *
    prod(arrays) / prod(divisors)``, names of values in the generated code. VJPs are
    linear in the cotangent, so factors ride along until an array is needed (as the
    reverse backend's lazy factors; the products are reassociated, a few ulps apart)."""

    const: float = 1.0
    scalars: tuple[str, ...] = ()
    arrays: tuple[str, ...] = ()
    divisors: tuple[str, ...] = ()
    shape: tuple[int, ...] = ()      # the shape the factors broadcast to (not yet the variable's)
    owned: str | None = None         # a buffer holding the whole value, the code may write into
    fresh: bool = False              # ``arrays[0]`` alone, a new array of this call (may be returned)
    diag: bool = False               # a Jacobian's identity seed: the value is diag(the factors)

    def times(self, const: float = 1.0, scalars: tuple[str, ...] = (), arrays: tuple[str, ...] = (),
              divisors: tuple[str, ...] = (), shape: tuple[int, ...] | None = None) -> _Term:
        own = (self.owned,) if self.owned is not None else ()  # a factor now, no longer writable
        return _Term(self.const * const, self.scalars + scalars, own + self.arrays + arrays,
                     self.divisors + divisors, self.shape if shape is None else shape, None, diag=self.diag)

    def scale_src(self) -> str | None:
        """The scalar factor as source (None for 1)."""
        parts = [] if self.const == 1.0 else [repr(self.const)]
        parts += list(self.scalars)
        return " * ".join(parts) if parts else None


def _form(w: _Writer, term: _Term, shape: tuple[int, ...], dtype: Any, fresh: bool = False,
          writable: bool = False) -> str:
    """Write code that forms ``term`` as an array of ``shape`` and return its name. Only
    read (default): it may be an array the term names. ``writable``: a buffer this term
    alone holds. ``fresh``: an array of this call, which the caller may keep."""
    scale = term.scale_src()
    plain = scale is None and not term.divisors
    if term.owned is not None and not term.arrays and plain and (not fresh or term.fresh):
        return term.owned  # held by this term alone: readable and writable (and new, if fresh)
    if term.owned is None and len(term.arrays) == 1 and plain and (
            not writable and not fresh or term.fresh):
        return term.arrays[0]
    arrays = ([term.owned] if term.owned is not None else []) + list(term.arrays)
    target = w.temp()
    if fresh:
        w.emit(f"{target} = np.empty({shape!r}, {w.name_of(np.dtype(dtype), 'float_')})")
    else:
        target = w.buffer(shape, dtype)
    if not arrays:
        w.emit(f"{target}[...] = {scale or '1.0'}")
    else:
        first, rest = arrays[0], arrays[1:]
        if rest:
            w.emit(f"np.multiply({first}, {rest[0]}, out={target})")
            rest = rest[1:]
        elif scale is not None:
            w.emit(f"np.multiply({first}, {scale}, out={target})")
            scale = None
        else:
            w.emit(f"{target}[...] = {first}")
        for a in rest:
            w.emit(f"{target} *= {a}")
        if scale is not None:
            w.emit(f"{target} *= {scale}")
    for d in term.divisors:
        w.emit(f"{target} /= {d}")
    return target


def _as_value(w: _Writer, term: _Term, shape: tuple[int, ...], dtype: Any) -> str:
    """``term`` as something a rule may take (it broadcasts to ``shape``): a scalar
    expression when it has no array factor, else a formed array."""
    if term.owned is None and not term.arrays and not term.divisors:
        return f"({term.scale_src() or '1.0'})"
    return _form(w, term, shape, dtype)


def generate(prog: Program, nb: int, batch: tuple[int, ...], want_grad: bool = True,
             identity: bool = False, want_value: bool = True) -> tuple[str, dict[str, Any], list[Any]]:
    """Python source of ``run(*inputs, ct, buffers)`` -> ``(value, aux leaves, cotangents of
    the differentiated inputs)`` for ``prog``, with ``nb`` leading batch axes of the
    cotangent; the namespace it reads and the buffers it needs ((shape, dtype) each).
    ``want_value=False`` (``dk.grad``): the value is None, and the operations only it
    needs are not written (the backward pass reads what it reads)."""
    w = _Writer(prog)
    head = ", ".join([w.operand(("v", k)) for k in prog.inputs] + ["ct", "buffers"])
    w.lines.append(f"def run({head}):")
    unpack = len(w.lines)
    written: list[tuple[Op, int, int]] = []  # (op, its line, buffers before it)
    guards = _guards_by_var(prog)
    for op in prog.ops:
        if op.out in prog.live:
            written.append((op, len(w.lines), len(w.buffers)))
            _forward(w, op)
            _check_guards(w, guards, op.out)
    after_forward = len(w.lines)

    def escaped(ref: tuple[str, int]) -> str:
        name = w.operand(ref)
        v = w.value(ref)
        return f"{name}.copy()" if ref[0] == "v" and type(v) is np.ndarray else name

    out_src = escaped(prog.output) if want_value else "None"
    aux_src = "(" + "".join(escaped(r) + ", " for r in prog.aux[1]) + ")" if prog.aux else "()"
    grads: list[str] = []
    if want_grad:
        grads = _backward(w, prog, nb, batch, identity)
    w.emit(f"return {out_src}, {aux_src}, ({''.join(g + ', ' for g in grads)})")
    # dead code: the forward operations nothing after the forward pass reads
    needed = {int(m) for m in re.findall(r"\bv(\d+)\b", "\n".join(w.lines[after_forward:]))}
    needed.update(guards)
    dead = set()
    for op, line, nbuf in reversed(written):
        if op.out in needed:
            needed.update(k for kind, k in op.args if kind == "v")
        else:
            dead.add(line)
            if len(w.buffers) > nbuf and w.lines[line].rstrip().endswith(f"out=B{nbuf})"):
                w.buffers[nbuf] = ((0,), w.buffers[nbuf][1])  # its buffer is never written
    if dead:
        w.lines = [ln for i, ln in enumerate(w.lines) if i not in dead]
    _share_buffers(w, unpack)
    if w.buffers:
        w.lines.insert(unpack, "    " + "".join(f"B{i}, " for i in range(len(w.buffers))) + "= buffers")
    return "\n".join(w.lines) + "\n", w.ns, w.buffers


_NAME = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
_BUFFER = re.compile(r"^B(\d+)$")
_INTO = re.compile(r"^\s*(\w+) = (?:np\.\w+\(.*out=(B\d+)\)|\w+_into_\d+\((?:\d+, )?(B\d+),.*\))$")


def _share_buffers(w: _Writer, start: int) -> None:
    """Let intermediates whose lifetimes do not overlap share one buffer (of the same shape
    and dtype), so a call touches less memory and keeps it in cache.

    The generated code is straight-line. A name holds the buffer a line writes into
    (``v3 = np.square(v2, out=B0)``, ``t1 = dtanh_into_2(B1, ...)``); any other line's
    name may be a view of every buffer its line reads (``reshape``, ``transpose``,
    indexing): a buffer lives from the line that first writes it to the last line that
    reads it or a name that may view it. A buffer is reused only after that last line."""
    lines = w.lines
    holds: dict[str, set[str]] = {}   # name -> the buffers it may be or view
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for i in range(start, len(lines)):
        line = lines[i]
        names = _NAME.findall(line)
        target = None
        stripped = line.strip()
        if " = " in stripped and not stripped.startswith(("if ", "return ")):
            target = stripped.split(" = ", 1)[0].strip()
            if not target.isidentifier():
                target = None
        into = _INTO.match(line)
        reads: set[str] = set()
        for n in names:
            if _BUFFER.match(n):
                reads.add(n)
            elif n in holds and n != target:
                reads |= holds[n]
        for b in reads:
            first.setdefault(b, i)
            last[b] = i
        if target is not None:
            holds[target] = {into.group(2) or into.group(3)} if into else (
                reads | (holds.get(target, set()) if f"{target} +=" in stripped else set()))
    # greedy: in order of first use, reuse a buffer of the same layout whose last use is over
    order = sorted((first[f"B{i}"], i) for i in range(len(w.buffers))
                   if f"B{i}" in first and w.buffers[i][0] != (0,))
    free: dict[Any, list[tuple[int, int]]] = {}  # layout -> [(last use, physical)]
    physical: dict[int, int] = {}
    layouts: list[tuple[tuple[int, ...], Any]] = []
    for begin, i in order:
        layout = (w.buffers[i][0], w.buffers[i][1].str)
        pool = free.setdefault(layout, [])
        chosen = next((k for k, (end, _) in enumerate(pool) if end < begin), None)
        if chosen is None:
            physical[i] = len(layouts)
            layouts.append(w.buffers[i])
        else:
            physical[i] = pool.pop(chosen)[1]
        pool.append((last[f"B{i}"], physical[i]))
    if len(layouts) == len(w.buffers):
        return
    rename = {f"B{i}": f"B{physical[i]}" for i in physical}
    pattern = re.compile(r"\bB(\d+)\b")
    w.lines[start:] = [pattern.sub(lambda m: rename.get(m.group(0), m.group(0)), ln) for ln in lines[start:]]
    w.buffers = layouts


def _guards_by_var(prog: Program) -> dict[int, list[bool]]:
    guards: dict[int, list[bool]] = {}
    for var, taken in prog.guards:
        guards.setdefault(var, []).append(taken)
    return guards


def _check_guards(w: _Writer, guards: dict[int, list[bool]], var: int) -> None:
    """Check the branches taken on ``var`` as soon as it is computed: a call on another
    branch leaves before it evaluates anything of the traced branch (log of a negative)."""
    for taken in dict.fromkeys(guards.get(var, ())):
        w.emit(f"if bool(v{var}) is not {taken}:")
        w.emit("raise _GuardFailed", 2)


def _backward(w: _Writer, prog: Program, nb: int, batch: tuple[int, ...], identity: bool = False) -> list[str]:
    cts: dict[int, _Term] = {}
    scatters: dict[int, str] = {}  # inputs whose cotangent is a fresh array slices are added into
    if prog.output[0] == "v" and prog.output[1] in prog.active:
        value_shape = shape_of(prog.values[prog.output[1]])
        out_shape = batch + value_shape
        if nb == 0 and out_shape == ():
            cts[prog.output[1]] = _Term(scalars=("ct",))
        elif identity and nb == 1 and batch == value_shape and len(value_shape) == 1:
            # a Jacobian's seed, the identity: kept as diag(factors) while elementwise rules scale it
            cts[prog.output[1]] = _Term(shape=value_shape, diag=True)
        else:
            cts[prog.output[1]] = _Term(arrays=("ct",), shape=out_shape)
    for op in reversed(prog.ops):
        c = cts.pop(op.out, None)
        if c is None or op.out not in prog.active:
            continue
        users = [j for j, (kind, k) in enumerate(op.args)
                 if kind == "v" and k in prog.active and j not in op.prim.nondiff_args]
        if len(users) > 1 and not c.diag and (len(c.arrays) + len(c.divisors) > 1 or c.arrays and c.scale_src()):
            # several arguments read it: formed once, not once per argument
            shape = batch + shape_of(prog.values[op.out])
            c = _Term(owned=_form(w, c, shape, _ct_dtype(prog, op.out)), shape=shape)
        if len(users) > 1 and (c.owned is not None or c.fresh):
            # read by several: none may write into it or keep it, except the last reader once
            # no other's cotangent names it (broadcast arguments first: their sums copy it)
            out_shape = shape_of(prog.values[op.out])
            users.sort(key=lambda j: shape_of(prog.values[op.args[j][1]]) == out_shape)
            whole = c
            c = c.times()
            for n, j in enumerate(users):
                held = whole.owned or (whole.arrays[0] if whole.fresh else None)
                last = n == len(users) - 1 and not any(_names(t, held) for t in cts.values())
                _contribute(w, prog, op, j, op.args[j][1], whole if last else c, cts, scatters, nb, batch)
            continue
        for j in users:
            _contribute(w, prog, op, j, op.args[j][1], c, cts, scatters, nb, batch)
    grads = []
    for k in prog.diff:
        value = prog.values[k]
        shape = batch + shape_of(value)
        dtype = _ct_dtype(prog, k)
        if k in scatters:
            term = cts.get(k)
            if term is not None and term.diag:
                term = _undiag(w, term, dtype)
            if term is not None:  # more than the slices reached the input
                _add_into(w, scatters[k], term, shape, dtype)
            grads.append(scatters[k])
            continue
        term = cts.get(k)
        if term is not None and term.diag:
            term = _undiag(w, term, dtype)
        if term is None:
            grads.append(f"np.zeros({shape!r}, {w.name_of(dtype, 'float_')})")
        elif shape == ():
            grads.append(_scalar_src(term))
        else:
            grads.append(_form(w, term, shape, dtype, fresh=True))
    return grads


def _names(term: _Term, name: str | None) -> bool:
    """Whether ``term`` reads the array ``name``."""
    return name is not None and (term.owned == name or name in term.arrays or name in term.divisors)


def _add_into(w: _Writer, target: str, term: _Term, shape: tuple[int, ...], dtype: Any, index: str = "") -> None:
    """``target[index] += term``, forming the term only as far as needed."""
    scale = term.scale_src()
    where = f"{target}[{index}]" if index else target
    if term.owned is None and not term.arrays and not term.divisors:
        w.emit(f"{where} += {scale or '1.0'}")
    elif term.owned is None and len(term.arrays) == 1 and not term.divisors and scale is None:
        w.emit(f"{where} += {term.arrays[0]}")
    else:
        w.emit(f"{where} += {_form(w, term, shape, dtype)}")


def _scalar_src(term: _Term) -> str:
    """A term of scalars as one Python expression."""
    factors = ([term.owned] if term.owned else []) + [term.scale_src() or "1.0"] + list(term.arrays)
    src = " * ".join(factors)
    for d in term.divisors:
        src = f"{src} / {d}"
    return src


def _accumulate(w: _Writer, cts: dict[int, _Term], k: int, term: _Term, shape: tuple[int, ...],
                dtype: Any) -> None:
    """Add ``term`` to the cotangent of the variable ``k`` (of ``shape``)."""
    prev = cts.get(k)
    if prev is None:
        cts[k] = term
        return
    if prev.diag and term.diag:  # diag(a) + diag(b) = diag(a + b)
        v = _form(w, prev, prev.shape, dtype, writable=True)
        _add_into(w, v, _Term(const=term.const, scalars=term.scalars, arrays=term.arrays,
                              divisors=term.divisors, owned=term.owned, shape=term.shape), prev.shape, dtype)
        cts[k] = _Term(owned=v, shape=prev.shape, diag=True)
        return
    if prev.diag:
        prev = _undiag(w, prev, dtype)
        shape = prev.shape  # the batch of cotangents the diagonal stood for
    if term.diag:
        term = _undiag(w, term, dtype)
        shape = term.shape
    if shape == ():  # scalar code: Python arithmetic on floats
        t = w.temp()
        w.emit(f"{t} = {_scalar_src(prev)} + {_scalar_src(term)}")
        cts[k] = _Term(scalars=(t,))
        return
    if prev.owned is not None and not prev.arrays and prev.scale_src() is None and not prev.divisors:
        _add_into(w, prev.owned, term, shape, dtype)
        return
    final = k in w.prog.diff  # an argument's gradient: accumulated in an array of this call, returned as it is
    buf = _form(w, prev, shape, dtype, writable=True, fresh=final and not (prev.fresh and prev.owned))
    _add_into(w, buf, term, shape, dtype)
    cts[k] = _Term(owned=buf, shape=shape, fresh=final)


def _contribute(w: _Writer, prog: Program, op: Op, j: int, k: int, c: _Term, cts: dict[int, _Term],
                scatters: dict[int, str], nb: int, batch: tuple[int, ...]) -> None:
    """Write the cotangent ``op``'s argument ``j`` (the variable ``k``) receives from ``c``."""
    prim = op.prim
    name = prim.name
    vals = [w.value(r) for r in op.args]
    args = [w.operand(r) for r in op.args]
    out = prog.values[op.out]
    out_shape = batch + shape_of(out)
    arg_shape = batch + shape_of(prog.values[k])
    dtype = _ct_dtype(prog, k)                                   # the argument's cotangent
    out_dtype = np.result_type(_ct_dtype(prog, op.out), dtype)   # a contribution before it is summed down
    if c.diag:
        value_shape = shape_of(out)
        same = shape_of(prog.values[k]) == value_shape
        others_fit = all(np.ndim(v) == 0 or shape_of(v) == value_shape for v in vals)
        keeps = (name in ("add", "subtract", "negative", "multiply", "divide", "square")
                 or prim.partials is not None and prim.elementwise)
        if name == "matmul" and j == 1 and np.ndim(vals[0]) == 2 and np.ndim(vals[1]) == 1 and not op.params:
            # diag(d) @ a, without the product: row i of a times d[i]
            d = _form(w, c, c.shape, out_dtype)
            t = w.temp()
            w.emit(f"{t} = {args[0]} * {d}[:, None]")
            _accumulate(w, cts, k, _Term(arrays=(t,), shape=arg_shape, fresh=True), arg_shape, dtype)
            return
        if not (keeps and same and others_fit and not op.params):
            c = _undiag(w, c, out_dtype)
        else:
            nb_, batch_ = 0, ()  # the factors are vectors of the value's shape
            out_shape, arg_shape = value_shape, value_shape
            batch = batch_
            nb = nb_
    # slices: added into the input's cotangent in place (fused scatter), no padded copy
    if name == "getitem" and k in prog.inputs and _basic_index(op.params["idx"]) and k in prog.diff:
        idx = op.params["idx"]
        idx = idx if isinstance(idx, tuple) else (idx,)
        index = w.name_of((slice(None),) * nb + idx, "index_")
        if k not in scatters:
            scatters[k] = w.temp()
            w.emit(f"{scatters[k]} = np.zeros({arg_shape!r}, {w.name_of(dtype, 'float_')})")
        _add_into(w, scatters[k], c, out_shape, out_dtype, index)  # (added, as the reverse backend: 0 + -0 is 0)
        return
    term: _Term | None = None
    broadcasts = out_shape != arg_shape
    if not op.params and not broadcasts or (not op.params and name in ("add", "subtract", "multiply",
                                                                      "divide", "negative")):
        other = args[1 - j] if len(args) == 2 else None
        other_val = vals[1 - j] if len(args) == 2 else None
        scalar_other = other is not None and (type(other_val) is float or type(other_val) is int
                                              or np.ndim(other_val) == 0)
        lit = _literal(other_val) if other is not None and op.args[1 - j][0] == "c" else None
        if name == "add" or name == "subtract" and j == 0:
            term = c
        elif name == "negative" or name == "subtract" and j == 1:
            term = c.times(const=-1.0)
        elif name == "multiply":
            if lit is not None:
                term = c.times(const=float(other_val))
            elif scalar_other:
                term = c.times(scalars=(other,))
            elif np.result_type(other_val).kind in "fc":
                term = c.times(arrays=(other,), shape=out_shape)
            elif op.args[1 - j][0] == "c":  # an integer or boolean constant: its float copy
                term = c.times(arrays=(w.name_of(np.asarray(other_val, dtype=float), "c"),), shape=out_shape)
            else:  # a mask the program computes: the cotangent formed in float
                term = c.times(arrays=(other,), shape=out_shape)
                term = _Term(owned=_form(w, term, out_shape, out_dtype), shape=out_shape, diag=c.diag)
        elif name == "divide" and j == 0:
            if lit is not None and float(other_val) != 0.0:
                term = c.times(const=1.0 / float(other_val))
            elif scalar_other:
                term = c.times(scalars=(f"(1.0 / {other})",))
            else:
                term = c.times(divisors=(other,), shape=out_shape)
        elif name == "divide" and j == 1:
            # d(x / y)/dy = -out / y
            y_scalar = type(vals[1]) is float or type(vals[1]) is int or np.ndim(vals[1]) == 0
            if not y_scalar:
                term = c.times(const=-1.0, arrays=(f"v{op.out}",), divisors=(args[1],), shape=out_shape)
            elif type(out) is np.ndarray:  # an array over a number: out is an array factor
                term = c.times(const=-1.0, arrays=(f"v{op.out}",), scalars=(f"(1.0 / {args[1]})",),
                               shape=out_shape)
            else:
                term = c.times(const=-1.0, scalars=(f"v{op.out}", f"(1.0 / {args[1]})"))
        elif name == "square":
            term = c.times(const=2.0, arrays=(args[0],), shape=out_shape) if type(vals[0]) is np.ndarray \
                else c.times(const=2.0, scalars=(args[0],))
        elif prim.partials is not None and prim.elementwise and not broadcasts:
            factor = _partial_source(w, prim, j, op, args, vals, out)
            term = c.times(arrays=(factor,), shape=out_shape) if type(out) is np.ndarray \
                else c.times(scalars=(factor,))
    if term is not None and broadcasts:
        # the argument was broadcast forward: sum the cotangent back to its shape (the scalar
        # factor after the sum, on the smaller array: the sum is linear)
        scale = _Term(const=term.const, scalars=term.scalars)
        arrays = _Term(arrays=term.arrays, divisors=term.divisors, owned=term.owned, shape=term.shape)
        if arrays.arrays or arrays.owned or arrays.divisors:
            formed = _as_value(w, arrays, out_shape, out_dtype)
        else:
            formed = f"_full({scale.scale_src() or '1.0'}, {out_shape!r})"
            scale = _Term()
        t = w.temp()
        w.emit(f"{t} = _unbroadcast(_full({formed}, {out_shape!r}), {arg_shape[nb:]!r}, {nb})")
        if arg_shape:
            term = scale.times(arrays=(t,), shape=arg_shape)
            if scale.scale_src() is None:
                term = _Term(arrays=(t,), shape=arg_shape, fresh=True)
        else:
            term = scale.times(scalars=(t,))
    if (term is None and name == "matmul" and nb == 0 and np.ndim(vals[0]) == 2 and np.ndim(vals[1]) == 2
            and dtype.kind == "f" and out_dtype.kind == "f" and _float_array(vals[0]) and _float_array(vals[1])):
        # a product of matrices: the table's rule into a buffer (a fresh array for an argument's gradient)
        ct_src = _form(w, c, out_shape, out_dtype) if (c.arrays or c.owned or c.divisors) else \
            f"_full({c.scale_src() or '1.0'}, {out_shape!r})"
        if c.shape != out_shape:
            ct_src = f"_full({ct_src}, {out_shape!r})"
        t = w.temp()
        if k in prog.diff:
            w.emit(f"{t} = np.empty({arg_shape!r}, {w.name_of(dtype, 'float_')})")
            buf = t
        else:
            buf = w.buffer(arg_shape, dtype)
        w.emit(f"{t} = {_call(w.name_of(accel.matmul_vjp_into, 'vjp_matmul_into_'), [str(j), buf, ct_src] + args)}")
        term = _Term(arrays=(t,), shape=arg_shape, fresh=k in prog.diff, owned=None)
        if k not in prog.diff:
            term = _Term(owned=t, shape=arg_shape)
    if term is None and name == "sum" and nb == 0 and shape_of(out) == () and not op.params.get("where"):
        term = c.times(shape=())  # d sum / dx is ones: the cotangent broadcasts, lazily
    if term is None:
        # every other rule: the table's, called from the generated code with a formed cotangent
        rule = w.name_of(prim.vjp_rule(j), f"vjp_{prim.name}_")
        if not (c.arrays or c.owned or c.divisors):
            scale = c.scale_src() or "1.0"
            ct_src = f"_full({scale}, {out_shape!r})" if out_shape else f"({scale})"
        else:
            ct_src = _form(w, c, out_shape, _ct_dtype(prog, op.out))
            if c.shape != out_shape:
                ct_src = f"_full({ct_src}, {out_shape!r})"
        t = w.temp()
        w.emit(f"{t} = _full(_unbroadcast({_call(rule, [ct_src, f'v{op.out}'] + args, w.kwargs(op.params))}, "
               f"{arg_shape[nb:]!r}, {nb}), {arg_shape!r})")
        term = _Term(arrays=(t,), shape=arg_shape, fresh=True) if arg_shape else _Term(scalars=(t,))
    _accumulate(w, cts, k, term, arg_shape, dtype)


def generate_jvp(prog: Program, nb: int, batch: tuple[int, ...]) -> tuple[str, dict[str, Any], list[Any]]:
    """Python source of ``run(*inputs, tangents, buffers)`` -> ``(value, aux leaves, the
    output's tangent)``: forward mode, the tangents of the differentiated inputs carried
    through the program beside the values (``nb`` leading batch axes)."""
    w = _Writer(prog)
    head = ", ".join([w.operand(("v", k)) for k in prog.inputs] + ["tangents", "buffers"])
    w.lines.append(f"def run({head}):")
    unpack = len(w.lines)
    w.emit("(" + "".join(f"d{k}, " for k in prog.diff) + ") = tangents")
    tangent: set[int] = set(prog.diff)
    guards = _guards_by_var(prog)
    for op in prog.ops:
        if op.out not in prog.live:
            continue
        _forward(w, op)
        _check_guards(w, guards, op.out)
        if op.out not in prog.active:
            continue
        terms = []
        prim = op.prim
        out = prog.values[op.out]
        out_nd = len(shape_of(out))
        args = [w.operand(r) for r in op.args]
        vals = [w.value(r) for r in op.args]
        if prim.jvp_joint is not None:  # variadic (concatenate, stack, einsum): all tangents at once
            ts = [f"d{k}" if kind == "v" and k in tangent and i not in prim.nondiff_args else "None"
                  for i, (kind, k) in enumerate(op.args)]
            joint = w.name_of(prim.jvp_joint, f"jvp_{prim.name}_")
            terms.append(_call(joint, ["(" + "".join(t + ", " for t in ts) + ")", f"v{op.out}"] + args,
                               w.kwargs(op.params)))
        for i, (kind, k) in enumerate(op.args):
            if prim.jvp_joint is not None or kind != "v" or k not in tangent or i in prim.nondiff_args:
                continue
            t = f"d{k}"
            missing = out_nd - len(shape_of(vals[i]))
            if prim.elementwise and nb and missing > 0:  # a broadcast argument's tangent, behind the batch axes
                t = f"np.reshape({t}, {batch + (1,) * missing + shape_of(vals[i])!r})"
            name = prim.name
            scalar = type(out) is float and not nb
            if name == "add" or name == "subtract" and i == 0:
                terms.append(t)
            elif name == "negative" or name == "subtract" and i == 1:
                terms.append(f"(-{t})")
            elif name == "multiply" and not op.params:
                terms.append(f"({t} * {args[1 - i]})")
            elif prim.partials is not None and not op.params and (scalar or not nb or prim.elementwise):
                terms.append(f"({t} * {_partial_source(w, prim, i, op, args, vals, out)})")
            else:
                rule = w.name_of(prim.jvp[i], f"jvp_{prim.name}_")
                terms.append(_call(rule, [t, f"v{op.out}"] + args, w.kwargs(op.params)))
        if not terms:
            continue
        want = batch + shape_of(out)
        total = " + ".join(terms)
        exact = not nb and prim.elementwise and all(
            shape_of(v) == shape_of(out) for v in vals)  # the terms have the output's shape
        if type(out) is float and not nb or exact:
            w.emit(f"d{op.out} = {total}")
        else:
            w.emit(f"d{op.out} = _fit({total}, {want!r})")
        tangent.add(op.out)
    kind, k = prog.output
    value = w.operand(prog.output)
    if kind == "v" and type(prog.values[k]) is np.ndarray:
        value += ".copy()"
    want = batch + shape_of(w.value(prog.output))
    if kind == "v" and k in tangent:
        t_out = f"np.array(d{k}, copy=True)" if want else f"d{k}"
    else:
        t_out = f"np.zeros({want!r}, {w.name_of(_ct_dtype(prog, k) if kind == 'v' else np.dtype(float), 'float_')})"
    aux_src = "(" + "".join(w.operand(r) + ", " for r in prog.aux[1]) + ")" if prog.aux else "()"
    w.emit(f"return {value}, {aux_src}, {t_out}")
    w.ns["_fit"] = _fit
    _share_buffers(w, unpack)
    if w.buffers:
        w.lines.insert(unpack, "    " + "".join(f"B{i}, " for i in range(len(w.buffers))) + "= buffers")
    return "\n".join(w.lines) + "\n", w.ns, w.buffers


def _fit(t: Any, shape: tuple[int, ...]) -> Any:
    """A tangent broadcast to its value's (batched) shape, where a rule left it smaller."""
    return t if np.shape(t) == shape else np.broadcast_to(t, shape)


def _undiag(w: _Writer, term: _Term, dtype: Any) -> _Term:
    """A diagonal term as the dense batch of cotangents it stands for."""
    t = w.temp()
    if not (term.arrays or term.owned or term.divisors):
        w.emit(f"{t} = np.eye({term.shape[0]}, dtype={w.name_of(np.dtype(dtype), 'float_')}) * {term.scale_src() or '1.0'}")
    else:
        w.emit(f"{t} = np.diag({_form(w, term, term.shape, dtype)})")
    return _Term(arrays=(t,), shape=(term.shape[0],) + term.shape, fresh=True)


def _ct_dtype(prog: Program, k: int) -> Any:
    """The dtype of the variable ``k``'s cotangent: complex for a complex value and for a
    real value entering complex arithmetic (``to_complex``, whose rule takes the real part)."""
    v = prog.values[k]
    if type(v) is float and k not in prog.complex_ct:
        return _FLOAT64
    if k in prog.complex_ct or is_complex(v):
        return _COMPLEX128
    return np.result_type(v, 1.0)


_FLOAT64 = np.dtype(np.float64)
_COMPLEX128 = np.dtype(np.complex128)


def _partial_source(w: _Writer, prim: Primitive, j: int, op: Op, args: list[str], vals: list[Any],
                    out: Any) -> str:
    """Source for the partial derivative of ``op`` in argument ``j``: the output or an
    argument itself where the table's partial returns it (exp: ``out``), else a call of
    the table's partial (its own array, or a float through ``math``)."""
    partial = prim.partials[j]  # type: ignore[index]
    if type(out) is not np.ndarray:  # scalar code: the table's partial on floats (math inside)
        t = w.temp()
        w.emit(f"{t} = {_call(w.name_of(partial, f'd{prim.name}_'), [f'v{op.out}'] + args)}")
        return t
    into = accel.PARTIAL_INTO.get(prim)
    if into is not None and len(vals) == 1 and out.dtype.kind == "f":  # into a buffer of the generated code
        t = w.temp()
        buf = w.buffer(out.shape, out.dtype)
        w.emit(f"{t} = {_call(w.name_of(into, f'd{prim.name}_into_'), [buf, f'v{op.out}'] + args)}")
        return t
    with np.errstate(all="ignore"):
        try:
            got = partial(out, *vals)
        except (ArithmeticError, ValueError, TypeError):  # (only to see whether it returns out or x itself)
            got = None
    if got is out and type(out) is np.ndarray:
        return f"v{op.out}"
    for a, v in zip(args, vals):
        if got is v and type(v) is np.ndarray:
            return a
    t = w.temp()
    w.emit(f"{t} = {_call(w.name_of(partial, f'd{prim.name}_'), [f'v{op.out}'] + args)}")
    return t


def _float_array(v: Any) -> bool:
    return type(v) is np.ndarray and v.dtype.kind == "f"


def _basic_index(idx: Any) -> bool:
    """An index of slices and integers (a view: no two elements alias, so ``+=`` is exact)."""
    items = idx if isinstance(idx, tuple) else (idx,)
    return all(type(i) is slice or type(i) is int or i is Ellipsis for i in items)


# ---------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------


def _signature(primals: Sequence[Any], argnums: Sequence[int]) -> Any:
    """The part of a call that a compiled variant is specific to: per argument its kind,
    shape and dtype (float inputs), or its value (anything else, baked into the code)."""
    sig = []
    for i, a in enumerate(primals):
        t = type(a)
        if t is float:
            sig.append("f")
        elif t is np.ndarray and a.dtype.kind in "fc":
            sig.append((a.shape, a.dtype.str))
        elif i in argnums:
            return None
        else:
            try:
                hash(a)
            except TypeError:
                return None
            sig.append((t, a))
    return tuple(sig)


@dataclass
class Variant:
    """One compiled trace: its program, and per batch shape the generated source, the
    compiled function and the buffers it writes into."""

    prog: Program
    seen: Any = None
    code: dict[Any, _Code] = field(default_factory=dict)
    plans: dict[Any, Any] = field(default_factory=dict)  # per operator: how it runs this variant

    def function(self, nb: int, batch: tuple[int, ...], want_grad: bool = True, mode: str = "reverse",
                 identity: bool = False, want_value: bool = True) -> _Code:
        """The generated code for cotangents (``mode="reverse"``) or tangents (``"forward"``)
        with ``nb`` batch axes ``batch``; ``identity``: the cotangents are a Jacobian's
        identity seed (the code never reads them)."""
        key = (nb, batch, want_grad, mode, identity, want_value)
        got = self.code.get(key)
        if got is None:
            if mode == "forward":
                src, ns, buffers = generate_jvp(self.prog, nb, batch)
            else:
                src, ns, buffers = generate(self.prog, nb, batch, want_grad, identity, want_value)
            filename = f"<diffkit compiled {next(_SERIAL)}>"
            exec(compile(src, filename, "exec"), ns)  # noqa: S102  diffkit's own generated code, never user text
            got = self.code[key] = _Code(src, ns["run"], buffers)
        return got


class _Code:
    """A generated function and its buffers: allocated once, written by every call. A
    call that finds them in use (a recursive or concurrent one) gets its own."""

    def __init__(self, src: str, run: Callable[..., Any], layout: list[tuple[tuple[int, ...], Any]]) -> None:
        self.src = src
        self._run = run
        self._layout = layout
        self._buffers = self._allocate()
        self._lock = threading.Lock()

    def _allocate(self) -> tuple[np.ndarray, ...]:
        return tuple(np.empty(shape, dtype) for shape, dtype in self._layout)

    def __call__(self, inputs: Sequence[Any], ct: Any) -> Any:
        if self._lock.acquire(blocking=False):
            try:
                return self._run(*inputs, ct, self._buffers)
            finally:
                self._lock.release()
        return self._run(*inputs, ct, self._allocate())


_SERIAL = itertools.count()
_STRONG_CACHE = 64
"""How many functions that cannot be weakly referenced keep their compiled code (kept alive)."""
_NO_RECORD = object()
_WARNED: weakref.WeakSet[Any] = weakref.WeakSet()
_WARNED_IDS: set[int] = set()


_NUMBERS = (float, int, complex, bool, np.generic)


_CAPTURE_PLANS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _captured(fun: Any) -> Any:
    """:func:`_capture_key` through a plan kept per function: which cells and globals to read."""
    for _ in range(8):  # diffkit's operator wrappers hold the function they call
        inner = getattr(fun, "_fn", None)
        if not callable(inner) or hasattr(fun, "__code__"):
            break
        fun = inner()
    try:
        plan = _CAPTURE_PLANS.get(fun)
    except TypeError:
        return _capture_key(fun)
    if plan is None:
        plan = _CAPTURE_PLANS[fun] = _capture_plan(fun)
    if plan is _FULL:
        return _capture_key(fun)
    cells, scope, names = plan
    key = [_value_key(c.cell_contents) for c in cells]
    key.extend((name, _value_key(scope.get(name))) for name in names)
    return tuple(key)


_FULL = object()


def _capture_plan(fun: Any) -> Any:
    """For a plain Python function (no wrapper, no partial, no defaults): its closure cells
    and the globals it names that hold numbers or arrays now; else _FULL (read it all)."""
    code = getattr(fun, "__code__", None)
    if code is None or getattr(fun, "__defaults__", None) or type(fun) is functools.partial:
        return _FULL
    cells = tuple(getattr(fun, "__closure__", None) or ())
    try:
        for c in cells:
            c.cell_contents  # noqa: B018  (an empty cell: read it all each time)
    except ValueError:
        return _FULL
    scope = getattr(fun, "__globals__", {})
    names = tuple(n for n in code.co_names if isinstance(scope.get(n), (_NUMBERS, np.ndarray)))
    return cells, scope, names


def _capture_key(fun: Any) -> Any:
    """What the generated code fixed that the function reads from outside its arguments:
    the numbers (by value) and arrays (by identity) in its closure, defaults and the
    globals it names, and in the arguments of a ``functools.partial`` around it; part of
    the cache key, so ``scale = 3.0`` after a trace with ``scale = 2.0`` traces again.
    (Values read by other functions it calls are fixed at the trace, as in ``jax.jit``.)"""
    parts: list[Any] = []
    seen = 0
    while seen < 8:
        seen += 1
        inner = getattr(fun, "_fn", None)
        if callable(inner) and not hasattr(fun, "__code__"):  # diffkit's operator wrappers
            fun = inner()
            continue
        if isinstance(fun, functools.partial):
            parts.extend(_value_key(v) for v in fun.args)
            parts.extend((k, _value_key(v)) for k, v in sorted(fun.keywords.items()))
            fun = fun.func
            continue
        break
    code = getattr(fun, "__code__", None)
    if code is None:
        return tuple(parts)
    for cell in getattr(fun, "__closure__", None) or ():
        try:
            parts.append(_value_key(cell.cell_contents))
        except ValueError:  # an empty cell
            parts.append(None)
    parts.extend(_value_key(v) for v in getattr(fun, "__defaults__", None) or ())
    scope = getattr(fun, "__globals__", {})
    for name in code.co_names:
        v = scope.get(name, _NO_RECORD)
        if isinstance(v, (_NUMBERS, np.ndarray)):
            parts.append((name, _value_key(v)))
    return tuple(parts)


def _value_key(v: Any) -> Any:
    if isinstance(v, _NUMBERS):
        return (type(v), v)
    if isinstance(v, np.ndarray):
        return ("array", id(v))
    return None


def _math_domain(e: BaseException) -> bool:
    """Whether ``e`` is Python's ``math`` refusing a domain edge (where NumPy gives inf or
    nan), not a fault: those calls go to the reverse backend, which answers as NumPy."""
    if isinstance(e, DiffkitError):
        return False
    return isinstance(e, (ZeroDivisionError, OverflowError)) or str(e) in ("math domain error",
                                                                              "math range error")


def _warn_once(fun: Any, why: str) -> None:
    try:
        if fun in _WARNED:
            return
        _WARNED.add(fun)
    except TypeError:
        if id(fun) in _WARNED_IDS:
            return
        _WARNED_IDS.add(id(fun))
    warnings.warn(f"backend 'compiled': {getattr(fun, '__name__', 'the function')} is differentiated by the "
                  f"reverse backend instead: {why}", RuntimeWarning, stacklevel=4)


_GENERATED = re.compile(r"^(?:[vtdBc]\d+|.*_\d+|_.*)$")
_RESERVED = frozenset({"np", "math", "ct", "buffers", "tangents", "run"})


def _input_names(fun: Any, n: int, var_of: dict[int, int]) -> dict[int, str]:
    """The program's inputs named as the function's arguments where those names are plain
    identifiers no generated name can take (``x``, ``w1``); the others stay ``v<k>``."""
    names = None
    f = fun
    for _ in range(8):
        variables = getattr(f, "variables", None)
        if variables and len(variables) == n:
            names = list(variables)
            break
        inner = getattr(f, "_fn", None)
        if callable(inner) and not hasattr(f, "__code__"):
            f = inner()
            continue
        break
    if names is None:
        try:
            params = list(inspect.signature(f).parameters.values())
        except (TypeError, ValueError):
            return {}
        if len(params) < n or any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params[:n]):
            return {}
        names = [p.name for p in params[:n]]
    out = {}
    for i, var in var_of.items():
        name = names[i]
        if (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)
                and name not in _RESERVED and not _GENERATED.match(name) and name not in out.values()):
            out[var] = name
    return out


def trace_program(fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
                  has_aux: bool = False) -> Program:
    """Run ``fun`` once on compile-trace values and return its :class:`Program`."""
    from ..pytree import tree_flatten

    trace = CompileTrace()
    args = list(primals)
    var_of = {}
    for i, a in enumerate(primals):
        if type(a) is float or type(a) is np.ndarray and a.dtype.kind in "fc":
            node = trace.leaf(a)
            args[i] = node
            var_of[i] = node.var
        elif i in argnums:
            raise Untraceable(f"argument {i} is a {type(a).__name__}")
    diff = [var_of[i] for i in argnums]
    result = fun(*args)
    out, aux = (result[0], result[1]) if has_aux else (result, None)
    out = pack(out)
    if trace.peeked is not None:
        raise Untraceable(f"it reads the number of a traced value ({trace.peeked}), so one trace "
                          "does not hold at other points")
    if type(out) is CNode and out._trace is trace:
        out_ref: tuple[str, int] = ("v", out.var)
    else:
        check_output(out, "compiled")
        out_ref = trace.const(out)
    if not (out_ref[0] == "c" or np.result_type(trace.values[out_ref[1]]).kind in "fc"):
        check_output(trace.values[out_ref[1]], "compiled")
    aux_spec = None
    if has_aux:
        leaves, td = tree_flatten(aux)
        refs = tuple(("v", v.var) if type(v) is CNode and v._trace is trace else trace.const(v) for v in leaves)
        aux_spec = (td, refs)
    prog = Program(trace.ops, trace.consts, trace.inputs, diff, out_ref, trace.guards, trace.values, aux_spec,
                   names=_input_names(fun, len(primals), var_of))
    prog.analyse()
    return prog


class Compiled(ADBackend):
    """Source-transformation reverse mode: the gradient written as Python once, then run.

    The function is traced once per argument shapes, dtypes and branch guards; the
    forward and backward passes are generated as Python source, compiled and cached,
    so later calls run straight-line NumPy (or ``math``) code. ``dk.source(f, *args)``
    shows it. Functions that cannot be traced once for all points fall back to the
    reverse backend with a warning.

    Example:
        >>> import numpy as np, diffkit as dk
        >>> rosen = lambda x: np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
        >>> dk.grad(rosen, backend=dk.Compiled())(np.array([1.0, 1.0, 1.0]))
        array([0., 0., 0.])
    """

    name = "compiled"
    prefers_reverse = True
    complex_arguments = True
    """Complex arguments go to the reverse backend, which differentiates them natively."""

    def __init__(self) -> None:
        self._reverse = Reverse()
        self._cache: weakref.WeakKeyDictionary[Any, dict[Any, list[Variant]]] = weakref.WeakKeyDictionary()
        self._strong: dict[int, tuple[Any, dict[Any, list[Variant]]]] = {}

    def _variants(self, fun: Any, key: Any) -> list[Variant]:
        try:
            table = self._cache.get(fun)
            if table is None:
                table = self._cache.setdefault(fun, {})
        except TypeError:  # not weakly referable: the last few such functions, kept alive
            table = self._strong.get(id(fun), (None, None))[1]
            if table is None:
                table = {}
                self._strong[id(fun)] = (fun, table)
                while len(self._strong) > _STRONG_CACHE:
                    self._strong.pop(next(iter(self._strong)))
            else:
                self._strong[id(fun)] = self._strong.pop(id(fun))  # most recently used last
        found = table.get(key)
        if found is None:
            found = table[key] = []
        return found

    def _run(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int], has_aux: bool,
             invoke: Callable[[Variant, list[Any]], Any]) -> Any:
        """``(variant, invoke(variant, inputs))`` for the compiled variant whose guards the
        call passes (traced now if none does), or ``None``: the reverse backend takes it."""
        for p in primals:
            if isinstance(p, Value):
                return None  # inside another transformation: the reverse backend nests
        for i in argnums:
            if is_complex(primals[i]):
                return None  # complex arguments: the reverse backend's own convention
        sig = _signature(primals, argnums)
        if sig is None:
            return None
        variants = self._variants(fun, (sig, tuple(argnums), has_aux, _captured(fun)))
        inputs = [a for a in primals if type(a) is float or type(a) is np.ndarray and a.dtype.kind in "fc"]
        for variant in variants:
            try:
                result = invoke(variant, inputs)
            except GuardFailed:
                continue
            except (ValueError, ArithmeticError) as e:
                if not _math_domain(e):
                    raise
                return None  # math at a domain edge: the reverse backend's answer (NumPy's inf or nan)
            if variant.seen is not _NO_RECORD:
                # what the function's output wrapper (pytree outputs) records when it runs,
                # as the trace left it: the generated code does not call the function
                fun.seen = variant.seen  # type: ignore[attr-defined]
            return variant, result
        try:
            prog = trace_program(fun, primals, argnums, has_aux)
        except Untraceable as e:
            _warn_once(fun, str(e))
            return None
        variant = Variant(prog, seen=getattr(fun, "seen", _NO_RECORD))
        variants.append(variant)
        try:
            return variant, invoke(variant, inputs)
        except (ValueError, ArithmeticError) as e:
            if not _math_domain(e):
                raise
            return None

    @staticmethod
    def _aux(variant: Variant, leaves: Sequence[Any]) -> Any:
        from ..pytree import tree_unflatten

        return tree_unflatten(variant.prog.aux[0], list(leaves))

    def vjp(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
            has_aux: bool = False) -> tuple[Any, Callable[..., tuple[Any, ...]], Any]:
        first = self._run(fun, primals, argnums, has_aux,
                          lambda v, inputs: v.function(0, (), want_grad=False)(inputs, None))
        if first is None:
            return self._reverse.vjp(fun, primals, argnums, has_aux)
        variant, (value, aux_leaves, _) = first

        def vjp_fn(ct: Any, nb: int = 0) -> tuple[Any, ...]:
            batch = tuple(np.shape(ct))[:nb]
            got = self._run(fun, primals, argnums, has_aux,
                            lambda v, inputs: v.function(nb, batch)(inputs, ct))
            if got is None:
                return self._reverse.vjp(fun, primals, argnums, has_aux)[1](ct, nb)
            return tuple(got[1][2])

        return value, vjp_fn, self._aux(variant, aux_leaves) if has_aux else None

    grad_without_value = True
    """``value_and_grad(..., need_value=False)`` (what ``dk.grad`` asks) skips the work only
    the value needs and returns None for it, once the trace has checked it is a real scalar."""

    def value_and_grad(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
                       has_aux: bool = False, name: str = "f",
                       need_value: bool = True) -> tuple[Any, tuple[Any, ...], Any]:
        # one run of the generated code: the value and the gradient together
        def invoke(v: Variant, inputs: list[Any]) -> Any:
            out = v.prog.output
            value = v.prog.values[out[1]] if out[0] == "v" else v.prog.consts[out[1]]
            if shape_of(value) != () or np.result_type(value).kind != "f":
                return None  # not a real scalar: the operators' checks say what is wrong
            return v.function(0, (), want_value=need_value)(inputs, 1.0)

        got = self._run(fun, primals, argnums, has_aux, invoke)
        if got is not None and got[1] is not None:
            variant, (value, aux_leaves, grads) = got
            return value, tuple(grads), self._aux(variant, aux_leaves) if has_aux else None
        return super().value_and_grad(fun, primals, argnums, has_aux, name)

    def jacobian(self, fun: Callable[..., Any], primals: Sequence[Any],
                 argnums: Sequence[int]) -> tuple[Any, tuple[Any, ...]]:
        """One run of generated code: reverse mode with a batch of cotangents, or forward
        mode with a batch of tangents where the arguments are smaller than the output."""
        def invoke(v: Variant, inputs: list[Any]) -> Any:
            plan = v.plans.get(("jacobian", tuple(argnums)))
            if plan is None:
                plan = v.plans[("jacobian", tuple(argnums))] = self._jacobian_plan(v, primals, argnums)
            if plan is None:
                return None
            how, code = plan
            if how == "gradient":
                value, _, grads = code(inputs, 1.0)
                return value, tuple(grads)
            if how == "tangent":  # one scalar argument: one tangent, no batch
                value, _, tout = code(inputs, [1.0])
                return value, (tout,)
            prog = v.prog
            out = prog.values[prog.output[1]] if prog.output[0] == "v" else prog.consts[prog.output[1]]
            oshape = shape_of(out)
            dtype = np.result_type(out, 1.0)
            m = math.prod(oshape)
            sizes = [math.prod(shape_of(primals[i])) for i in argnums]
            k = sum(sizes)
            if k < m:  # forward mode: k tangents
                tangents = []
                start = 0
                for i, n in zip(argnums, sizes):
                    t = np.zeros((k, n), dtype)
                    t[start:start + n] = np.eye(n, dtype=dtype)
                    tangents.append(t.reshape((k,) + shape_of(primals[i])))
                    start += n
                value, _, tout = v.function(1, (k,), mode="forward")(inputs, tangents)
                moved = np.moveaxis(tout, 0, -1)  # out.shape + (k,)
                jacs = []
                start = 0
                for i, n in zip(argnums, sizes):
                    jacs.append(moved[..., start:start + n].reshape(oshape + shape_of(primals[i])))
                    start += n
                return value, tuple(jacs)
            identity = len(oshape) == 1
            seed = None if identity else np.eye(m, dtype=dtype).reshape((m,) + oshape)
            value, _, cts = v.function(1, (m,), identity=identity)(inputs, seed)
            return value, tuple(np.reshape(c, oshape + shape_of(primals[i])) for c, i in zip(cts, argnums))

        got = self._run(fun, primals, argnums, False, invoke)
        if got is not None and got[1] is not None:
            return got[1]
        return self._reverse.jacobian(fun, primals, argnums)

    @staticmethod
    def _jacobian_plan(v: Variant, primals: Sequence[Any], argnums: Sequence[int]) -> Any:
        """How ``jacobian`` runs a variant: ``("gradient", code)`` for a scalar output,
        ``("tangent", code)`` for one scalar argument, ``("batch", None)`` else; None for
        an output that is not real."""
        prog = v.prog
        out = prog.values[prog.output[1]] if prog.output[0] == "v" else prog.consts[prog.output[1]]
        if np.result_type(out, 1.0).kind != "f":
            return None
        if shape_of(out) == ():
            return "gradient", v.function(0, ())
        if len(argnums) == 1 and type(primals[argnums[0]]) is float:
            return "tangent", v.function(0, (), mode="forward")
        return "batch", None

    def jvp(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
            tangents: Sequence[Any], nb: int = 0) -> tuple[Any, Any]:
        if not any(isinstance(t, Value) for t in tangents):
            batch = tuple(np.shape(tangents[0]))[:nb] if nb else ()
            plain = [np.asarray(t, dtype=float) if type(primals[i]) is not float or nb else float(t)
                     for t, i in zip(tangents, argnums)]
            got = self._run(fun, primals, argnums, False,
                            lambda v, inputs: v.function(nb, batch, mode="forward")(inputs, plain))
            if got is not None:
                value, _, tout = got[1]
                return value, tout
        return self._reverse.jvp(fun, primals, argnums, tangents, nb)

    def hessian(self, fun: Callable[..., Any], primals: Sequence[Any],
                argnums: Sequence[int]) -> tuple[tuple[Any, ...], ...]:
        return self._reverse.hessian(fun, primals, argnums)

    def source(self, fun: Callable[..., Any], primals: Sequence[Any], argnums: Sequence[int],
               op: str = "grad") -> str:
        """The generated code of ``fun`` at ``primals`` (see :func:`diffkit.source`)."""
        prog = trace_program(fun, primals, argnums)
        return Variant(prog).function(0, (), want_grad=op != "value").src


def source(f: Any, *args: Any, argnums: Any = 0, op: str = "grad") -> str:
    """The Python code the compiled backend generates for ``f`` at ``args``.

    ``op="grad"``: the forward pass and the backward pass (``run(v0, ..., ct)``
    returns the value, auxiliary outputs and the cotangents of the differentiated
    arguments); ``op="value"``: the forward pass alone. The arguments keep their
    names, ``v<k>`` are the program's values, ``t<k>`` cotangents and partial
    derivatives, ``B<k>`` the buffers the code reuses across calls; the table's
    rules appear under their primitives' names (``dsin_2``: sin's derivative).

    Example:
        >>> import numpy as np, diffkit as dk
        >>> print(dk.source(lambda x: np.sum(np.sin(x) * x), np.ones(3)))
        def run(x, ct, buffers):
            B0, B1, B2, = buffers
            v1 = np.sin(x, out=B0)
            v2 = np.multiply(v1, x, out=B1)
            v3 = np.add.reduce(v2, axis=axis_0, keepdims=False)
            t1 = dsin_into_2(B2, v1, x)
            t3 = np.empty((3,), float_4)
            np.multiply(v1, ct, out=t3)
            np.multiply(x, t1, out=B0)
            B0 *= ct
            t3 += B0
            return v3, (), (t3, )
        <BLANKLINE>
    """
    from ..core.function import as_function

    F = as_function(f)
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    prims = [np.float64(a).item() if isinstance(a, (int, float, np.floating)) and not isinstance(a, bool)
             else np.asarray(a, dtype=float) if isinstance(a, (list, tuple, np.ndarray)) else a for a in args]
    return Compiled().source(F.fn, prims, nums, op)
