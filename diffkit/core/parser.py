"""A safe parser for math expression strings.

The parser turns a string such as ``"sin(x)*exp(y) + x**2*y"`` into an
immutable :class:`Expression` that can be evaluated on floats, NumPy arrays
or any object implementing the arithmetic operators, and converted to SymPy.

User text is never passed to ``eval``, ``exec`` or ``compile``. It is read with
``ast.parse(text, mode="eval")`` and every node of the resulting tree is
checked against a small whitelist: numeric literals, names, the binary
operators ``+ - * / **``, unary ``-`` and ``+``, single comparisons
``< <= > >= == !=`` and calls of whitelisted function names with positional
arguments. Anything else raises :class:`~diffkit.errors.ParseError`, whose
message quotes the offending part and gives its 1-based column.

Resource limits (module-level constants):

* :data:`MAX_LENGTH` -- maximum number of characters of an expression.
* :data:`MAX_DEPTH` -- maximum nesting depth of the expression tree (and of
  parentheses and runs of unary operators, checked on the raw string before
  parsing so that no input can exhaust the parser's stack).
* :data:`MAX_NODES` -- maximum number of AST nodes.
* :data:`MAX_EXPONENT` -- maximum absolute value of a constant exponent in
  ``a ** c`` and ``pow(a, c)`` (bounds symbolic expansion such as
  ``x**1000000``). A constant is built from numbers and named constants with
  ``+ - * / **``: ``x**9**9``, ``x**(10*1000)`` and ``pow(x, 1e6)`` are
  refused; an exponent with a variable (``x**y``) is not constant.

The arithmetic of constants is checked too: a constant part that overflows
float64 (``10**300 * 10**300``, ``1e999``), divides by zero or is complex
(``(-8)**(1/3)``) is a ParseError, not an OverflowError at evaluation.
Expressions are ASCII: any other character is refused with its Unicode name
(checked on the raw text, since ``ast.parse`` NFKC-normalizes identifiers:
a fullwidth ``ｅｘｐ`` would read as ``exp``, a Cyrillic ``а`` would be a new
variable that prints as ``a``). Every walk of a parsed tree (evaluation,
conversion to SymPy) is iterative.

Columns reported in errors are 1-based character offsets into the whole
expression string (so ``text[column - 1]`` is the first character of the
offending part); 0 means the position is unknown.
"""

from __future__ import annotations

import ast
import difflib
import keyword
import math
import operator
import re
import sys
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NoReturn, Union

from ..errors import InvalidType, NotFound, ParseError

__all__ = [
    "MAX_LENGTH",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_EXPONENT",
    "Number",
    "Constant",
    "Variable",
    "Unary",
    "Binary",
    "Comparison",
    "Call",
    "Node",
    "Expression",
    "parse",
]

#: Maximum length of an expression string, in characters.
MAX_LENGTH: int = 10_000
#: Maximum nesting depth of the expression tree, of parentheses and of runs of
#: unary operators.
MAX_DEPTH: int = 200
#: Maximum number of AST nodes of an expression.
MAX_NODES: int = 10_000
#: Maximum absolute value of a constant (literal) exponent in ``a ** c``.
MAX_EXPONENT: float = 1000

_DEFAULT_CONSTANTS: Mapping[str, float] = MappingProxyType({"pi": math.pi, "e": math.e})

# Largest exact integer power (in bits) that ``to_sympy`` builds; beyond it the
# power of two numbers is computed as a SymPy Float instead.
_MAX_EXACT_POWER_BITS = 100_000


# --------------------------------------------------------------------------
# Tree
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Number:
    """A numeric literal.

    Attributes:
        value: the literal as a Python float (may be ``inf`` on overflow).
        exact: the literal as a Python int when it was written as an integer,
            else ``None``.
    """

    value: float
    exact: int | None = None


@dataclass(frozen=True, slots=True)
class Constant:
    """A named constant such as ``pi``.

    Attributes:
        name: the constant's name.
        value: its value as a float.
    """

    name: str
    value: float


@dataclass(frozen=True, slots=True)
class Variable:
    """A free variable.

    Attributes:
        name: the variable's name.
    """

    name: str


@dataclass(frozen=True, slots=True)
class Unary:
    """A unary operation.

    Attributes:
        op: ``"-"`` or ``"+"``.
        operand: the operand.
    """

    op: str
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    """A binary arithmetic operation.

    Attributes:
        op: one of ``"+" "-" "*" "/" "**"``.
        left: the left operand.
        right: the right operand.
    """

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Comparison:
    """A single comparison.

    Attributes:
        op: one of ``"<" "<=" ">" ">=" "==" "!="``.
        left: the left operand.
        right: the right operand.
    """

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Call:
    """A call of a whitelisted function.

    Attributes:
        name: the function's name.
        args: the positional arguments.
    """

    name: str
    args: tuple[Node, ...]


Node = Union[Number, Constant, Variable, Unary, Binary, Comparison, Call]

_BINARY_OPS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Pow: "**",
}
_UNSUPPORTED_BINARY_OPS: dict[type[ast.operator], tuple[str, str]] = {
    ast.FloorDiv: ("//", "floor division"),
    ast.Mod: ("%", "modulo"),
    ast.MatMult: ("@", "matrix multiplication"),
    ast.BitXor: ("^", "bitwise xor"),
    ast.BitOr: ("|", "bitwise or"),
    ast.BitAnd: ("&", "bitwise and"),
    ast.LShift: ("<<", "left shift"),
    ast.RShift: (">>", "right shift"),
}
_UNARY_OPS: dict[type[ast.unaryop], str] = {ast.USub: "-", ast.UAdd: "+"}
_UNSUPPORTED_UNARY_OPS: dict[type[ast.unaryop], tuple[str, str]] = {
    ast.Not: ("not", "boolean 'not'"),
    ast.Invert: ("~", "bitwise not"),
}
_COMPARE_OPS: dict[type[ast.cmpop], str] = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
}
_UNSUPPORTED_COMPARE_OPS: dict[type[ast.cmpop], tuple[str, str]] = {
    ast.In: ("in", "membership test"),
    ast.NotIn: ("not in", "membership test"),
    ast.Is: ("is", "identity test"),
    ast.IsNot: ("is not", "identity test"),
}
_NODE_KINDS: dict[str, str] = {
    "Attribute": "attribute access",
    "Subscript": "subscript",
    "Slice": "slice",
    "Lambda": "lambda",
    "ListComp": "list comprehension",
    "SetComp": "set comprehension",
    "DictComp": "dict comprehension",
    "GeneratorExp": "generator expression",
    "IfExp": "conditional expression",
    "BoolOp": "boolean operator",
    "NamedExpr": "assignment expression",
    "JoinedStr": "f-string",
    "FormattedValue": "f-string",
    "Dict": "dict display",
    "List": "list display",
    "Set": "set display",
    "Tuple": "tuple",
    "Starred": "starred expression",
    "Await": "await",
    "Yield": "yield",
    "YieldFrom": "yield",
}

_POWER_FUNCTIONS = frozenset({"pow", "power", "float_power"})
"""Functions whose second argument is an exponent, bounded as in ``a ** c``."""

_OPERATOR_NODES = (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "**": operator.pow,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


# --------------------------------------------------------------------------
# Expression
# --------------------------------------------------------------------------


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Binary | Comparison):
        return (node.left, node.right)
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Call):
        return node.args
    return ()


def _postorder(root: Node) -> tuple[Node, ...]:
    """The nodes of a tree, operands before their operation, left to right (iteratively)."""
    out: list[Node] = []
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        kids = () if expanded else _children(node)
        if not kids:
            out.append(node)
            continue
        stack.append((node, True))
        stack.extend((k, False) for k in reversed(kids))
    return tuple(out)


def _shorten(s: str, limit: int = 80) -> str:
    return s if len(s) <= limit else s[: limit - 3] + "..."


class Expression:
    """An immutable parsed expression.

    Build it with :func:`parse`. ``str(expr)`` is the original text.

    Attributes:
        text: the original string.
        variables: the variables, in the order positional arguments bind to.
        names_used: the variables that actually appear in the expression.
        functions_used: the function names that appear in the expression.
        tree: the root :data:`Node` of the expression tree.
    """

    __slots__ = ("text", "variables", "names_used", "functions_used", "tree", "_callables", "_order")

    text: str
    variables: tuple[str, ...]
    names_used: frozenset[str]
    functions_used: frozenset[str]
    tree: Node
    _callables: Mapping[str, Callable[..., Any]]
    _order: tuple[Node, ...]

    def __init__(
        self,
        text: str,
        tree: Node,
        variables: tuple[str, ...],
        names_used: frozenset[str],
        callables: Mapping[str, Callable[..., Any]],
    ) -> None:
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "tree", tree)
        object.__setattr__(self, "variables", variables)
        object.__setattr__(self, "names_used", names_used)
        object.__setattr__(self, "functions_used", frozenset(callables))
        object.__setattr__(self, "_callables", MappingProxyType(dict(callables)))
        object.__setattr__(self, "_order", _postorder(tree))

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    @property
    def depth(self) -> int:
        """The nesting depth of the tree (a number or a name is 1), counted iteratively."""
        depths: dict[int, int] = {}
        for node in self._order:
            kids = _children(node)
            depths[id(node)] = 1 + max((depths[id(k)] for k in kids), default=0)
        return depths[id(self.tree)]

    def __repr__(self) -> str:
        return f"Expression({self.text!r}, variables={self.variables!r})"

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Expression):
            return NotImplemented
        return self.tree == other.tree and self.variables == other.variables

    def __hash__(self) -> int:
        return hash((self.tree, self.variables))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Evaluate the expression.

        Positional arguments bind to :attr:`variables` in order, keyword
        arguments by name. Arguments are used as given (floats, NumPy arrays,
        traced values, ...): evaluation applies the plain Python operators and
        the whitelisted callables. Only the variables in :attr:`names_used`
        must be bound; declared but unused variables may be omitted.

        Args:
            *args: values of the variables, in the order of :attr:`variables`.
            **kwargs: values of the variables, by name.

        Returns:
            The value of the expression.

        Raises:
            InvalidType: (a ``TypeError``) on too many, duplicate, unknown or missing
                arguments.
        """
        if len(args) > len(self.variables):
            raise InvalidType(
                f"expression {_shorten(self.text)!r} takes at most {len(self.variables)} "
                f"positional argument(s) {self.variables!r}, got {len(args)}"
            )
        env: dict[str, Any] = dict(zip(self.variables, args))
        for name, value in kwargs.items():
            if name not in self.variables:
                raise InvalidType(
                    f"unknown variable {name!r} for expression {_shorten(self.text)!r}; "
                    f"variables are {self.variables!r}"
                )
            if name in env:
                raise InvalidType(f"variable {name!r} of expression {_shorten(self.text)!r} given both by "
                                  "position and by name")
            env[name] = value
        missing = sorted(self.names_used - env.keys())
        if missing:
            raise InvalidType(
                f"missing value(s) for variable(s) {', '.join(missing)} of expression "
                f"{_shorten(self.text)!r}"
            )
        return self._evaluate(env)

    def _evaluate(self, env: Mapping[str, Any]) -> Any:
        # Iterative: the nodes in postorder on a stack of values, so no nesting depth
        # reaches Python's recursion limit (operands are evaluated left to right).
        values: list[Any] = []
        push, pop = values.append, values.pop
        for node in self._order:
            kind = type(node)
            if kind is Binary or kind is Comparison:
                right = pop()
                push(_OPERATORS[node.op](pop(), right))  # type: ignore[union-attr]
            elif kind is Variable:
                push(env[node.name])  # type: ignore[union-attr]
            elif kind is Number or kind is Constant:
                push(node.value)  # type: ignore[union-attr]
            elif kind is Unary:
                value = pop()
                push(-value if node.op == "-" else +value)  # type: ignore[union-attr]
            elif kind is Call:
                n = len(node.args)  # type: ignore[union-attr]
                args = values[len(values) - n:]
                del values[len(values) - n:]
                push(self._callables[node.name](*args))  # type: ignore[union-attr]
            else:  # pragma: no cover
                raise InvalidType(f"expression tree: unknown node {node!r}")
        return values[0]

    def to_sympy(
        self,
        functions: Mapping[str, Callable[..., Any]],
        symbols: Mapping[str, Any],
    ) -> Any:
        """Build a SymPy expression.

        Integer literals become ``sympy.Integer`` (so ``x**2`` stays ``x**2``),
        other literals ``sympy.Float``; the constants ``pi`` and ``e`` with
        their usual values become ``sympy.pi`` and ``sympy.E``, other named
        constants ``sympy.Float`` (a constant's name in ``symbols`` overrides
        this). Comparisons become SymPy relationals.

        Args:
            functions: maps each name in :attr:`functions_used` to a SymPy
                callable.
            symbols: maps variable names to SymPy symbols; a variable missing
                from it becomes ``sympy.Symbol(name)``.

        Returns:
            The SymPy expression.

        Raises:
            NotFound: (a ``KeyError``) a function used in the expression is
                missing from ``functions``.
            ParseError: a power whose exponent evaluates to a number larger
                than :data:`MAX_EXPONENT` in absolute value has a symbolic
                base.
        """
        import sympy

        missing = sorted(self.functions_used - functions.keys())
        if missing:
            raise NotFound(f"to_sympy of expression {_shorten(self.text)!r}: no SymPy function given for "
                           f"{', '.join(missing)}")
        relations: dict[str, Callable[[Any, Any], Any]] = {
            "<": sympy.Lt,
            "<=": sympy.Le,
            ">": sympy.Gt,
            ">=": sympy.Ge,
            "==": sympy.Eq,
            "!=": sympy.Ne,
        }

        def power(base: Any, exponent: Any) -> Any:
            if isinstance(exponent, sympy.Number) and exponent.is_finite:
                if abs(exponent) > MAX_EXPONENT and not isinstance(base, sympy.Number):
                    raise ParseError(
                        f"exponent {exponent} exceeds MAX_EXPONENT={MAX_EXPONENT} in "
                        f"expression {_shorten(self.text)!r}",
                        text=self.text,
                        token=str(exponent),
                    )
                if (
                    isinstance(base, sympy.Rational)
                    and isinstance(exponent, sympy.Rational)
                    and base != 0
                ):
                    bits = max(abs(base.p).bit_length(), abs(base.q).bit_length())
                    if bits * abs(exponent) > _MAX_EXACT_POWER_BITS:
                        return sympy.Float(base) ** sympy.Float(exponent)
            return base**exponent

        def leaf(node: Node) -> Any:
            if isinstance(node, Number):
                if node.exact is not None:
                    return sympy.Integer(node.exact)
                return sympy.Float(node.value)
            if isinstance(node, Variable):
                sym = symbols.get(node.name)
                return sympy.Symbol(node.name) if sym is None else sym
            if isinstance(node, Constant):
                if node.name in symbols:
                    return symbols[node.name]
                if node.name == "pi" and node.value == math.pi:
                    return sympy.pi
                if node.name == "e" and node.value == math.e:
                    return sympy.E
                return sympy.Float(node.value)
            raise InvalidType(f"expression tree: unknown node {node!r}")  # pragma: no cover

        # Iterative, as evaluation: the nodes in postorder on a stack of SymPy values.
        values: list[Any] = []
        for node in self._order:
            if isinstance(node, Unary):
                value = values.pop()
                values.append(-value if node.op == "-" else +value)
            elif isinstance(node, Binary | Comparison):
                right = values.pop()
                left = values.pop()
                if isinstance(node, Comparison):
                    values.append(relations[node.op](left, right))
                elif node.op == "**":
                    values.append(power(left, right))
                else:
                    values.append(_OPERATORS[node.op](left, right))
            elif isinstance(node, Call):
                n = len(node.args)
                args = values[len(values) - n:]
                del values[len(values) - n:]
                values.append(functions[node.name](*args))
            else:
                values.append(leaf(node))
        return values[0]


# --------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------


class _Parser:
    """One parse of one string; holds the text and position helpers."""

    def __init__(
        self,
        text: str,
        functions: Mapping[str, tuple[Callable[..., Any], tuple[int, ...]]],
        constants: Mapping[str, float],
        variables: tuple[str, ...] | None,
    ) -> None:
        self.text = text
        self.functions = functions
        self.constants = constants
        self.variables = variables
        self.lead = 0  # characters of leading whitespace stripped before ast.parse
        self.line_starts: list[int] = [0]
        self.lines_bytes: list[bytes] = []
        self.free_names: set[str] = set()
        self.callables: dict[str, Callable[..., Any]] = {}
        # id(node) -> float value of the subtrees built from numbers and named constants
        # with + - * / ** alone (folded to check them, never replaced)
        self.constants_of: dict[int, float] = {}

    # -- errors ---------------------------------------------------------

    def fail(
        self, what: str, token: str = "", column: int = 0, kind: str = "", hint: str = ""
    ) -> NoReturn:
        """Raise a ParseError: ``what 'token' (kind) at column N in expression '...'; hint``."""
        message = what
        if token:
            message += f" {_shorten(token, 60)!r}"
        if kind:
            message += f" ({kind})"
        if column:
            message += f" at column {column}"
        message += f" in expression {_shorten(self.text)!r}"
        if hint:
            message += f"; {hint}"
        raise ParseError(message, text=self.text, token=token, column=column)

    def fail_at(self, node: ast.AST, what: str, kind: str = "", hint: str = "") -> NoReturn:
        start, end = self.span(node)
        self.fail(what, self.text[start:end], start + 1, kind, hint)

    def index(self, lineno: int, col_offset: int) -> int:
        """0-based character index into ``self.text`` of an AST position."""
        line = self.lines_bytes[lineno - 1] if lineno - 1 < len(self.lines_bytes) else b""
        chars = len(line[:col_offset].decode("utf-8", errors="ignore"))
        return self.lead + self.line_starts[lineno - 1] + chars

    def span(self, node: ast.AST) -> tuple[int, int]:
        start = self.index(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end_lineno = getattr(node, "end_lineno", None)
        end_col = getattr(node, "end_col_offset", None)
        end = self.index(end_lineno, end_col) if end_lineno and end_col is not None else start + 1
        return start, max(end, start + 1)

    # -- raw string checks ----------------------------------------------

    def precheck(self) -> None:
        text = self.text
        if len(text) > MAX_LENGTH:
            self.fail(f"expression too long ({len(text)} characters, at most {MAX_LENGTH})")
        if not text.strip():
            self.fail("empty expression")
        depth = 0
        unary_run = 0
        for i, ch in enumerate(text):
            if ch > "\x7f":
                # Checked on the raw text: ast.parse NFKC-normalizes identifiers, so the
                # fullwidth 'ｅｘｐ' would read as 'exp' and a Cyrillic 'а' would be a new
                # variable that prints like the Latin 'a'.
                ascii_form = unicodedata.normalize("NFKC", ch)
                hint = "expressions are ASCII (names of letters a-z, A-Z, digits and '_')"
                if ascii_form != ch and ascii_form.isascii() and ascii_form.isprintable():
                    hint = f"write {ascii_form!r} instead: {hint}"
                self.fail(
                    "non-ASCII character",
                    ch,
                    i + 1,
                    f"U+{ord(ch):04X} {unicodedata.name(ch, 'without a Unicode name')}",
                    hint,
                )
            if not ch.isprintable() and ch not in " \t\n\r":
                self.fail(f"non-printable character {ch!r} (U+{ord(ch):04X})", "", i + 1)
            if ch in "([{":
                depth += 1
                if depth > MAX_DEPTH:
                    self.fail(f"parentheses nested deeper than MAX_DEPTH={MAX_DEPTH}", ch, i + 1)
            elif ch in ")]}":
                depth = max(depth - 1, 0)
            if ch in "+-~":
                unary_run += 1
                if unary_run > MAX_DEPTH:
                    self.fail(
                        f"more than MAX_DEPTH={MAX_DEPTH} consecutive unary operators", ch, i + 1
                    )
            elif ch not in " \t\n\r":
                unary_run = 0

    # -- ast.parse --------------------------------------------------------

    def parse_ast(self) -> ast.expr:
        stripped = self.text.lstrip(" \t\n\r")
        self.lead = len(self.text) - len(stripped)
        # Python's tokenizer treats "\r\n", "\r" and "\n" as line ends.
        pieces = re.split(r"(\r\n|\r|\n)", stripped)
        lines = pieces[0::2]
        starts = [0]
        for line, newline in zip(pieces[0::2], pieces[1::2]):
            starts.append(starts[-1] + len(line) + len(newline))
        self.line_starts = starts
        self.lines_bytes = [line.encode("utf-8", errors="surrogatepass") for line in lines]
        try:
            tree = ast.parse(stripped, mode="eval")
        except SyntaxError as exc:
            column = 0
            token = ""
            reason = exc.msg
            if exc.lineno and exc.offset and exc.lineno <= len(starts):
                start = self.lead + starts[exc.lineno - 1] + exc.offset - 1
                end = start + 1
                if exc.end_lineno == exc.lineno and exc.end_offset and exc.end_offset > exc.offset:
                    end = start + exc.end_offset - exc.offset
                token = self.text[start:end]
                column = min(start, len(self.text)) + 1
            elif reason == "invalid syntax":
                reason = "unexpected end of expression"
                column = len(self.text.rstrip()) + 1
            kind = "" if reason == "invalid syntax" else reason
            self.fail("invalid syntax", token, column, kind)
        except (RecursionError, MemoryError):
            self.fail(f"expression nested too deeply (MAX_DEPTH={MAX_DEPTH})")
        except ValueError as exc:
            self.fail(f"invalid expression ({exc})")
        return tree.body

    def check_size(self, root: ast.expr) -> None:
        """Iteratively measure node count and nesting depth of the AST."""
        count = 0
        stack: list[tuple[ast.AST, int]] = [(root, 1)]
        while stack:
            node, depth = stack.pop()
            count += 1
            if count > MAX_NODES:
                self.fail(f"expression has more than MAX_NODES={MAX_NODES} nodes")
            if depth > MAX_DEPTH:
                self.fail_at(
                    node, "expression nested too deeply at", f"deeper than MAX_DEPTH={MAX_DEPTH}"
                )
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    stack.append((child, depth + 1))
                elif not isinstance(child, _OPERATOR_NODES):
                    # keyword, comprehension, arguments, ...: counted, depth unchanged
                    stack.append((child, depth))

    # -- conversion -------------------------------------------------------

    def operator_position(self, left: ast.AST, right: ast.AST, symbol: str) -> tuple[str, int]:
        _, left_end = self.span(left)
        right_start, _ = self.span(right)
        gap = self.text[left_end:right_start]
        found = gap.find(symbol)
        if found < 0:
            return symbol, left_end + 1
        return symbol, left_end + found + 1

    def literal_exponent(self, node: ast.expr) -> float | None:
        sign = 1.0
        while isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            if isinstance(node.op, ast.USub):
                sign = -sign
            node = node.operand
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            try:
                return sign * float(node.value)
            except OverflowError:
                return math.inf
        return None

    def convert(self, node: ast.expr) -> Node:
        result = self._convert(node)
        self._fold(node, result)
        return result

    def _fold(self, node: ast.expr, result: Node) -> None:
        """Record the value of a constant subtree; a constant that overflows float64, divides
        by zero or is complex is a ParseError here rather than an OverflowError later."""
        known = self.constants_of
        value: Any
        if isinstance(result, Number | Constant):
            value = result.value
        elif isinstance(result, Unary) and id(result.operand) in known:
            value = -known[id(result.operand)] if result.op == "-" else known[id(result.operand)]
        elif isinstance(result, Binary) and id(result.left) in known and id(result.right) in known:
            left, right = known[id(result.left)], known[id(result.right)]
            try:
                value = _OPERATORS[result.op](left, right)
            except ZeroDivisionError as exc:
                self.fail_at(node, "constant", f"no value: {exc}")
            except OverflowError:
                value = math.inf
            if isinstance(value, complex):
                self.fail_at(
                    node, "constant", "not a real number: a negative number to a fractional power"
                )
            if math.isinf(value) and math.isfinite(left) and math.isfinite(right):
                self.fail_at(node, "constant", "overflows float64: its magnitude is above 1.8e308")
        else:
            return
        known[id(result)] = value

    def check_exponent(self, node: ast.expr, exponent: Node) -> None:
        """A constant exponent is at most MAX_EXPONENT in absolute value (``x**9**9``,
        ``x**(10*1000)`` and ``pow(x, 1e6)`` are refused; ``x**y`` is not constant)."""
        value = self.constants_of.get(id(exponent))
        if value is not None and not abs(value) <= MAX_EXPONENT:
            self.fail_at(
                node,
                "exponent",
                f"|exponent| must be at most MAX_EXPONENT={MAX_EXPONENT}; it is {value:.6g}",
            )

    def _convert(self, node: ast.expr) -> Node:
        if isinstance(node, ast.Constant):
            value = node.value
            if type(value) is int:
                try:
                    as_float = float(value)
                except OverflowError:
                    as_float = math.inf
                if math.isinf(as_float):
                    self.fail_at(node, "number", "too large for float64, whose largest is 1.8e308")
                return Number(as_float, value)
            if type(value) is float:
                if math.isinf(value):
                    self.fail_at(node, "number", "too large for float64, whose largest is 1.8e308")
                return Number(value)
            kind = {
                str: "string literal",
                bytes: "bytes literal",
                complex: "complex literal",
                bool: "boolean literal",
            }.get(type(value), f"{type(value).__name__} literal")
            self.fail_at(node, "unsupported syntax", kind)
        if isinstance(node, ast.Name):
            return self.convert_name(node)
        if isinstance(node, ast.BinOp):
            op_type = type(node.op)
            if op_type in _UNSUPPORTED_BINARY_OPS:
                symbol, kind = _UNSUPPORTED_BINARY_OPS[op_type]
                token, column = self.operator_position(node.left, node.right, symbol)
                self.fail("unsupported operator", token, column, kind)
            op = _BINARY_OPS[op_type]
            if op == "**":
                exponent = self.literal_exponent(node.right)
                if exponent is not None and not abs(exponent) <= MAX_EXPONENT:
                    self.fail_at(
                        node.right,
                        "exponent",
                        f"|exponent| must be at most MAX_EXPONENT={MAX_EXPONENT}",
                    )
                left = self.convert(node.left)
                right = self.convert(node.right)
                self.check_exponent(node.right, right)
                return Binary(op, left, right)
            return Binary(op, self.convert(node.left), self.convert(node.right))
        if isinstance(node, ast.UnaryOp):
            op_type = type(node.op)
            if op_type in _UNSUPPORTED_UNARY_OPS:
                symbol, kind = _UNSUPPORTED_UNARY_OPS[op_type]
                start, _ = self.span(node)
                self.fail("unsupported operator", symbol, start + 1, kind)
            return Unary(_UNARY_OPS[op_type], self.convert(node.operand))
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1:
                self.fail_at(node, "unsupported syntax", "chained comparison")
            op_type = type(node.ops[0])
            if op_type in _UNSUPPORTED_COMPARE_OPS:
                symbol, kind = _UNSUPPORTED_COMPARE_OPS[op_type]
                token, column = self.operator_position(node.left, node.comparators[0], symbol)
                self.fail("unsupported operator", token, column, kind)
            return Comparison(
                _COMPARE_OPS[op_type], self.convert(node.left), self.convert(node.comparators[0])
            )
        if isinstance(node, ast.Call):
            return self.convert_call(node)
        if isinstance(node, ast.BoolOp):
            kind = "boolean 'and'" if isinstance(node.op, ast.And) else "boolean 'or'"
            self.fail_at(node, "unsupported syntax", kind)
        kind = _NODE_KINDS.get(type(node).__name__, type(node).__name__)
        self.fail_at(node, "unsupported syntax", kind)

    def check_name(self, node: ast.Name) -> None:
        if node.id.startswith("_") or node.id.endswith("_"):
            self.fail_at(
                node, "forbidden name", "names starting or ending with '_' are not allowed"
            )

    def convert_name(self, node: ast.Name) -> Node:
        self.check_name(node)
        name = node.id
        if name in self.functions:
            self.fail_at(
                node, "function", "used as a value", f"call it with arguments, e.g. {name}(x)"
            )
        if self.variables is not None:
            if name in self.variables:
                self.free_names.add(name)
                return Variable(name)
            if name in self.constants:
                return Constant(name, float(self.constants[name]))
            hint = f"declared variables are: {', '.join(self.variables) or '(none)'}"
            candidates = list(self.variables) + list(self.constants)
            close = difflib.get_close_matches(name, candidates, n=1)
            if close:
                hint += f"; did you mean {close[0]!r}?"
            self.fail_at(node, "unknown name", hint=hint)
        if name in self.constants:
            return Constant(name, float(self.constants[name]))
        self.free_names.add(name)
        return Variable(name)

    def convert_call(self, node: ast.Call) -> Node:
        func = node.func
        if not isinstance(func, ast.Name):
            self.fail_at(func, "unsupported call of", "only named functions may be called")
        self.check_name(func)
        name = func.id
        if name not in self.functions:
            if name in self.constants or (self.variables is not None and name in self.variables):
                self.fail_at(func, "call of", "a variable or constant is not a function")
            allowed = sorted(self.functions)
            shown = ", ".join(allowed[:30]) + (", ..." if len(allowed) > 30 else "")
            hint = f"allowed functions: {shown or '(none)'}"
            close = difflib.get_close_matches(name, allowed, n=1)
            if close:
                hint = f"did you mean {close[0]!r}? ({hint})"
            self.fail_at(func, "unknown function", hint=hint)
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                self.fail_at(arg, "unsupported syntax", "starred argument")
        if node.keywords:
            kw = node.keywords[0]
            self.fail_at(kw, "unsupported syntax", "keyword argument")
        callable_, counts = self.functions[name]
        if len(node.args) not in counts:
            allowed_counts = " or ".join(str(c) for c in sorted(counts))
            self.fail_at(
                node,
                "wrong number of arguments in",
                f"{name} takes {allowed_counts} argument(s), got {len(node.args)}",
            )
        self.callables[name] = callable_
        args = tuple(self.convert(arg) for arg in node.args)
        if name in _POWER_FUNCTIONS and len(args) == 2:
            self.check_exponent(node.args[1], args[1])
        return Call(name, args)


def _check_variables(
    variables: Sequence[str],
    functions: Mapping[str, Any],
    text: str,
) -> tuple[str, ...]:
    if isinstance(variables, str):
        raise InvalidType(f"parse: variables must be a sequence of names such as ('x', 'y'), not the "
                          f"string {variables!r}")
    result = tuple(variables)
    seen: set[str] = set()
    for name in result:
        problem = ""
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            problem = "is not a valid identifier"
        elif not name.isascii():
            problem = "is not ASCII (names are letters a-z, A-Z, digits and '_')"
        elif unicodedata.normalize("NFKC", name) != name:
            problem = "is not in NFKC normal form"
        elif name.startswith("_") or name.endswith("_"):
            problem = "starts or ends with '_'"
        elif name in functions:
            problem = "is also a function name"
        elif name in seen:
            problem = "is declared twice"
        if problem:
            raise ParseError(
                f"invalid variable {name!r}: {problem} (expression {_shorten(text)!r})",
                text=text,
                token=str(name),
            )
        seen.add(name)
    return result


def parse(
    text: str,
    *,
    functions: Mapping[str, tuple[Callable[..., Any], tuple[int, ...]]],
    constants: Mapping[str, float] = _DEFAULT_CONSTANTS,
    variables: Sequence[str] | None = None,
) -> Expression:
    """Parse a math expression string safely.

    Only numeric literals, names, ``+ - * / **``, unary ``-``/``+``, single
    comparisons and calls of the given functions with positional arguments are
    accepted; the text is never evaluated as Python. Every literal becomes a
    float (``to_sympy`` still knows which literals were integers).

    Args:
        text: the expression, e.g. ``"sin(x)*exp(y) + x**2*y"``.
        functions: maps each callable name to ``(callable, allowed numbers of
            positional arguments)``, e.g. ``{"where": (np.where, (3,))}``.
        constants: named constants; a name listed in ``variables`` is a
            variable instead. Defaults to ``pi`` and ``e``.
        variables: the variables, in positional-argument order. Every free
            name must be among them; they may include names the expression
            does not use. When ``None``, the free names that are neither
            functions nor constants, sorted.

    Returns:
        The parsed :class:`Expression`.

    Raises:
        ParseError: the text is not an accepted expression, exceeds a limit
            (:data:`MAX_LENGTH`, :data:`MAX_DEPTH`, :data:`MAX_NODES`,
            :data:`MAX_EXPONENT`), or ``variables`` is invalid or misses a
            free name.
        InvalidType: (a ``TypeError``) ``text`` is not a string.

    Example:
        >>> import numpy as np
        >>> from diffkit.core.parser import parse
        >>> f = parse("sin(x)*exp(y) + x**2*y",
        ...           functions={"sin": (np.sin, (1,)), "exp": (np.exp, (1,))})
        >>> f.variables
        ('x', 'y')
        >>> round(float(f(0.0, 2.0)), 6)
        0.0
        >>> f(np.array([0.0, 1.0]), 1.0).shape
        (2,)
    """
    if not isinstance(text, str):
        raise InvalidType(f"parse: the expression must be a string, not {type(text).__name__}")
    declared = None if variables is None else _check_variables(variables, functions, text)
    parser = _Parser(text, functions, constants, declared)
    parser.precheck()
    root = parser.parse_ast()
    parser.check_size(root)
    try:
        tree = parser.convert(root)  # recursive, to a depth check_size bounded by MAX_DEPTH
    except RecursionError:
        raise ParseError(
            f"expression nested too deeply for the Python stack left to the parser (MAX_DEPTH="
            f"{MAX_DEPTH}, Python's recursion limit {sys.getrecursionlimit()}) in expression "
            f"{_shorten(text)!r}",
            text=text,
        ) from None
    if declared is None:
        declared = tuple(sorted(parser.free_names))
    return Expression(text, tree, declared, frozenset(parser.free_names), parser.callables)
