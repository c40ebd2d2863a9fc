"""Computational graphs: a function traced once, each node with its value and gradient.

The pictures of backpropagation textbooks: operations as nodes, values flowing
forward along the edges and gradients flowing back. :func:`graph` runs the
function on the reverse backend's tape (a subclass that also remembers the
structure), sweeps it once keeping every cotangent, and returns a
:class:`Graph`: a list of nodes, a text table, Graphviz DOT, and SVG or PNG
rendered by the system's ``dot`` or, without one, by the ``graphviz-pure``
package (``pip install 'diffkit[graph]'``), which ships a ``dot``-compatible
renderer.

Example:
    >>> import diffkit as dk
    >>> g = dk.graph(lambda apple, count, tax: apple * count * tax, 100.0, 2.0, 1.1)
    >>> print(g)
    node  op        value  gradient  inputs
    0     apple     100    2.2
    1     count     2      110
    2     tax       1.1    200
    3     multiply  200    1.1       0, 1
    4     multiply  220    1         3, 2
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .backends.base import full
from .backends.reverse import Node, ReverseTrace
from .core.function import as_function
from .core.values import pack, shape_of
from .errors import DiffkitError, InvalidArgument, InvalidType, NotFound, Unavailable
from .primitives import Primitive

FORMATS = ("dot", "svg", "png", "pdf")
"""What :meth:`Graph.save` and :meth:`Graph.render` write."""


@dataclass(frozen=True)
class GraphNode:
    """One node: an input, a constant, or an operation on earlier nodes.

    Attributes:
        id: position in :attr:`Graph.nodes`; ``inputs`` refer to it.
        op: ``"input"``, ``"constant"`` or the primitive's NumPy name (``"multiply"``).
        label: what the picture shows: the variable's name, the constant, or
            the operation's symbol.
        value: the value computed in the forward pass.
        grad: d(output)/d(this value) from the backward sweep; ``None`` for
            constants and for nodes the output does not depend on.
        inputs: the ids of the nodes the operation reads, in argument order.
    """

    id: int
    op: str
    label: str
    value: Any
    grad: Any
    inputs: tuple[int, ...] = ()


class _GraphTrace(ReverseTrace):
    """The reverse tape, plus what a picture needs: every value and every constant argument."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[int, Any] = {}
        self.args: dict[int, list[Any]] = {}   # tape index -> arguments (nodes or constants)

    def leaf(self, value: Any) -> Node:
        node = super().leaf(value)
        self.values[node.index] = value
        return node

    def apply(self, prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        out = super().apply(prim, args, params)
        self._remember(out, args)
        return out

    def call_custom(self, fn: Any, args: tuple[Any, ...]) -> Any:
        out = super().call_custom(fn, args)
        self._remember(out, args)
        return out

    def _remember(self, out: Any, args: tuple[Any, ...]) -> None:
        if type(out) is Node and out._trace is self:
            self.values[out.index] = out.primal
            self.args[out.index] = list(args)


@dataclass(frozen=True)
class Graph:
    """The computational graph of a function at a point, with values and gradients.

    Attributes:
        name: the function's name.
        nodes: inputs first, then operations in the order they ran, each
            operation's constants just before it.
        output: the id of the output node (``None`` when the output does not
            depend on the inputs).
        value: the function's value.
    """

    name: str
    nodes: tuple[GraphNode, ...]
    output: int | None
    value: Any

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """The text table: a header, then one row per node (id, op, value, gradient, inputs)."""
        rows = [("node", "op", "value", "gradient", "inputs")]
        for n in self.nodes:
            op = n.label if n.op == "input" else n.op
            rows.append((str(n.id), op, _fmt(n.value), "" if n.grad is None else _fmt(n.grad),
                         ", ".join(map(str, n.inputs))))
        return rows

    def __str__(self) -> str:
        rows = self.rows()
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)

    def node(self, label: str) -> GraphNode:
        """The first node labelled ``label`` (an input's name, a constant, an operation's symbol).

        Example:
            >>> import diffkit as dk
            >>> float(dk.graph("(x + y)**2", 1.0, 2.0).node("x").grad)
            6.0
        """
        found = next((n for n in self.nodes if n.label == label), None)
        if found is not None:
            return found
        raise NotFound(f"graph of {self.name}: no node labelled {label!r}; labels: "
                       f"{', '.join(dict.fromkeys(n.label for n in self.nodes))}")

    def to_dot(self) -> str:
        """Graphviz DOT: operations as circles, values (blue) above and gradients (red) below each edge.

        Example:
            >>> import diffkit as dk
            >>> dot = dk.graph("x * y", 3.0, 4.0).to_dot()
            >>> dot.splitlines()[0], 'label="×"' in dot
            ('digraph "x * y" {', True)
        """
        lines = [f"digraph {_quote(self.name)} {{",
                 '  rankdir=LR; bgcolor="transparent";',
                 '  node [fontname="Helvetica", fontsize=12];',
                 '  edge [fontname="Helvetica", fontsize=11, arrowsize=0.7];']
        for n in self.nodes:
            if n.op in ("input", "constant"):
                lines.append(f"  n{n.id} [shape=plaintext, label={_quote(n.label)}];")
            else:
                shape = "circle" if len(n.label) <= 2 else "box, style=rounded"
                lines.append(f"  n{n.id} [shape={shape}, label={_quote(n.label)}];")
        for n in self.nodes:
            for i in n.inputs:
                src = self.nodes[i]
                if src.op == "constant":  # the node already shows its value
                    lines.append(f"  n{i} -> n{n.id};")
                else:
                    lines.append(f"  n{i} -> n{n.id} [label={_edge_label(src.value, src.grad)}];")
        if self.output is not None:
            out = self.nodes[self.output]
            lines.append('  output [shape=plaintext, label=""];')
            lines.append(f"  n{out.id} -> output [label={_edge_label(out.value, out.grad)}];")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def render(self, format: str = "svg") -> bytes:
        """The picture as bytes (``"svg"``, ``"png"``, ``"pdf"``; ``"dot"`` is the DOT text).

        Uses the system's ``dot`` when it is on the PATH, else the ``dot``-compatible
        renderer of the ``graphviz-pure`` package.
        """
        if format not in FORMATS:
            raise InvalidArgument(f"graph of {self.name}: format {format!r}; choose one of {', '.join(FORMATS)}")
        dot = self.to_dot().encode()
        if format == "dot":
            return dot
        exe = renderer()
        if exe is None:
            raise Unavailable(f"graph of {self.name}: rendering {format} needs Graphviz: "
                              "pip install 'diffkit[graph]' (graphviz-pure), or the system's graphviz; "
                              "to_dot() and the .dot format need neither")
        done = subprocess.run([exe, f"-T{format}"], input=dot, capture_output=True, timeout=60)
        if done.returncode != 0:
            raise DiffkitError(f"graph of {self.name}: {Path(exe).name} failed to render {format}: "
                               f"{done.stderr.decode(errors='replace').strip()[:500]}")
        return done.stdout

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the picture; the format comes from the extension (.dot, .svg, .png, .pdf).

        Example:
            >>> import diffkit as dk, tempfile, pathlib
            >>> p = dk.graph("x * y", 3.0, 4.0).save(pathlib.Path(tempfile.mkdtemp()) / "g.dot")
            >>> p.read_text().startswith("digraph")
            True
        """
        p = Path(path)
        fmt = p.suffix.lstrip(".").lower()
        if fmt not in FORMATS:
            raise InvalidArgument(f"graph of {self.name}: cannot tell the format of {str(p)!r}; "
                                  f"use one of the extensions {', '.join('.' + f for f in FORMATS)}")
        p.write_bytes(self.render(fmt))
        return p

    def _repr_svg_(self) -> str | None:  # Jupyter shows the picture
        try:
            return self.render("svg").decode()
        except DiffkitError:
            return None


def renderer() -> str | None:
    """The Graphviz executable :meth:`Graph.render` uses: the system's ``dot``, else ``graphviz-pure``.

    Each is looked up on ``PATH`` and then next to the running interpreter (its
    environment's scripts folder), so an environment used by path, without
    activating it (``venv/bin/diffkit``, ``pipx``), finds the renderer it installed.
    """
    import sys
    import sysconfig

    here = [sysconfig.get_path("scripts"), os.path.dirname(sys.executable)]
    for name in ("dot", "graphviz-pure"):
        found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(p for p in here if p))
        if found:
            return found
    return None


def graph(f: Any, *args: Any, argnums: int | Sequence[int] | None = None, cotangent: Any = None) -> Graph:
    """Trace ``f`` at ``args``: every operation with its forward value and its gradient.

    Args:
        f: a Python function, ``dk.Function``, expression string or SymPy expression.
        *args: the point.
        argnums: the arguments that are graph inputs (the others are constants);
            by default every numeric argument.
        cotangent: what the backward sweep starts from; by default ones (the
            gradient of the output, or of the sum of its elements).

    Returns:
        A :class:`Graph`.

    Example:
        The seed notes' apple-and-orange shopping graph:

        >>> import diffkit as dk
        >>> def total(apple, apples, orange, oranges, tax):
        ...     return (apple * apples + orange * oranges) * tax
        >>> g = dk.graph(total, 100.0, 2.0, 150.0, 3.0, 1.1)
        >>> round(float(g.value), 6), [round(float(g.node(v).grad), 6) for v in ("apple", "orange", "tax")]
        (715.0, [2.2, 3.3, 650.0])
    """
    F = as_function(f)
    names = list(F.variables) + [f"arg{i}" for i in range(len(F.variables), len(args))]
    if argnums is None:
        nums = [i for i, a in enumerate(args) if _numeric(a)]
    else:
        nums = [argnums] if isinstance(argnums, (int, np.integer)) else list(argnums)
    trace = _GraphTrace()
    call = list(args)
    leaves = {}
    for i in nums:
        if not _numeric(args[i]):
            raise InvalidType(f"graph of {F.name}: argument {i} ({names[i]!r}) is {type(args[i]).__name__}; "
                              "graph inputs are numbers or numeric arrays")
        leaves[i] = trace.leaf(args[i])
        call[i] = leaves[i]
    out = pack(F.fn(*call))
    traced = type(out) is Node and out._trace is trace
    value = out.primal if traced else out
    cts: list[Any] = []
    if traced:
        seed = np.ones(shape_of(value)) if cotangent is None else np.asarray(cotangent, dtype=float)
        if seed.shape != shape_of(value):
            raise InvalidArgument(f"graph of {F.name}: cotangent of shape {seed.shape}; the output has shape "
                                  f"{shape_of(value)}")
        cts = trace.sweep(out, seed[()] if seed.ndim == 0 else seed, 0, keep=True)

    def grad_of(index: int) -> Any:
        g = cts[index] if index < len(cts) else None
        return None if g is None else full(g, shape_of(trace.values[index]))

    nodes: list[GraphNode] = []
    at: dict[int, int] = {}   # tape index -> node id
    for i, leaf in leaves.items():
        at[leaf.index] = len(nodes)
        nodes.append(GraphNode(len(nodes), "input", names[i], args[i], grad_of(leaf.index)))
    for index, record in enumerate(trace.tape):
        if record is None or index not in trace.args:  # an input, or a real value entering complex
            continue                                     # arithmetic (the tape's to_complex records)
        prim = record[0]
        inputs = []
        for a in trace.args[index]:
            if type(a) is Node and a._trace is trace:
                inputs.append(at[a.index])
            else:
                inputs.append(len(nodes))
                nodes.append(GraphNode(len(nodes), "constant", _fmt(a), a, None))
        name = prim.name
        label = prim.symbol or (name.split(":", 1)[-1] if ":" in name else name)
        at[index] = len(nodes)
        nodes.append(GraphNode(len(nodes), name, label, trace.values[index], grad_of(index), tuple(inputs)))
    return Graph(F.name, tuple(nodes), at[out.index] if traced else None, value)


def _numeric(a: Any) -> bool:
    return isinstance(a, (int, float, np.number)) and not isinstance(a, bool) or \
        (isinstance(a, np.ndarray) and a.dtype.kind in "fiu")


def _fmt(v: Any) -> str:
    """A short, readable value: 6 significant digits; small arrays in full, others by shape."""
    a = np.asarray(v)
    if a.dtype.kind not in "fiucb":
        return str(v)
    if a.ndim == 0:
        return _num(a[()])
    if a.size <= 4:
        return "[" + ", ".join(_num(x) for x in a.ravel()) + "]"
    return f"array{a.shape}"


def _num(x: Any) -> str:
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (complex, np.complexfloating)):
        return f"{complex(x):.6g}"
    return f"{float(x):.6g}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _edge_label(value: Any, grad: Any) -> str:
    """An HTML-like label: the value in blue over the gradient in red, as in the textbook figures."""
    top = f'<font color="#1f4e99">{html.escape(_fmt(value))}</font>'
    if grad is None:
        return f"<{top}>"
    return f'<{top}<br/><font color="#c0392b">{html.escape(_fmt(grad))}</font>>'
