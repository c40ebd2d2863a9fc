"""Suites: named lists of cross-check cases, built in or read from a TOML file.

A case is a function (an expression string or ``"module:function"``), a
point, one operator and optional tolerances. Built-in suites:

* ``standard``: elementary functions and compositions, classic optimisation
  functions, neural-network pieces, kinks at and near their kinks, domain edges;
* ``seeds``: the worked examples of the notes diffkit grew from;
* ``swell``: the logistic map of the expression-swell table.

A TOML suite file holds ``[[case]]`` tables::

    [[case]]
    id = "rosenbrock"                 # unique in the file
    f = "100*(y - x**2)**2 + (1 - x)**2"   # or "package.module:function"
    at = { x = 1.2, y = 0.8 }         # or args = [1.2, 0.8]; arrays as lists
    ops = ["grad", "hessian"]         # one case per operator; default ["grad"]
    rtol = 1e-10                      # optional, a number or a table per backend
    expect = { numeric = "truncation" }   # optional: a known disagreement and its cause

Every value is checked for its type and range when the file is loaded
(:func:`load_toml`): a wrong one is an :class:`~diffkit.errors.InvalidType` or
:class:`~diffkit.errors.InvalidArgument` naming the file, the case and the key.
Expression strings are read by the safe parser; a ``module:function`` is
*not* imported here (loading or listing a suite runs none of its code): the
runner imports it inside the case's own process. A suite file naming Python
code is as trusted as a script (see ``docs/security.md``).

:class:`~diffkit.harness.cases.Case` (with :func:`~diffkit.harness.cases.expand`) and
:data:`~diffkit.harness.builtin_suites.SUITES` live in their own modules and are
importable from here too.
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import replace
from typing import Any

from ..errors import DiffkitError, InvalidArgument, InvalidType
from .builtin_suites import SUITES
from .cases import BUILTIN, Case, expand, is_callable_ref, resolve
from .crosscheck import OPS

__all__ = ["LIMITS", "SUITES", "Case", "expand", "load_toml", "resolve", "suite"]

LIMITS = {"file_bytes": 16 * 2**20, "cases": 10_000, "elements": 10_000, "text": 10_000, "id": 200,
          "tags": 100, "order": 10, "depth": 4}
"""Bounds of a TOML suite file: its size in bytes, cases (after one per operator), array elements per
case, characters of ``f`` and ``note``, characters of an id, tags per case, derivative order, array
nesting."""

KEYS = ("id", "f", "at", "args", "ops", "op", "argnums", "order", "rtol", "atol", "note", "tags", "expect")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(v), type(v).__name__)


class _Where:
    """Error messages that name the file, the case and the key."""

    def __init__(self, path: str, index: int | None = None, id: Any = None):
        self.prefix = path + (f": case {index}" if index is not None else "") + \
            (f" ({id})" if isinstance(id, str) else "")

    def type(self, key: str, value: Any, expected: str) -> InvalidType:
        return InvalidType(f"{self.prefix}: {key} = {_show(value)}: expected {expected}, got {_kind(value)}")

    def value(self, key: str, value: Any, expected: str) -> InvalidArgument:
        return InvalidArgument(f"{self.prefix}: {key} = {_show(value)}: expected {expected}")

    def error(self, message: str) -> InvalidArgument:
        return InvalidArgument(f"{self.prefix}: {message}")


def _number(where: _Where, key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise where.type(key, v, "a number")
    try:
        return float(v)
    except OverflowError:
        raise where.value(key, v, "a number within float64's range") from None


def _array(where: _Where, key: str, v: Any, depth: int = 0) -> tuple[Any, tuple[int, ...]]:
    """A number or a rectangular nested array of numbers: (floats, shape)."""
    if isinstance(v, list):
        if depth >= LIMITS["depth"]:
            raise where.value(key, v, f"arrays nested at most {LIMITS['depth']} deep")
        if not v:
            raise where.value(key, v, "a non-empty array of numbers")
        items = [_array(where, key, x, depth + 1) for x in v]
        shapes = {s for _, s in items}
        if len(shapes) != 1:
            raise where.value(key, v, "a rectangular array (every row the same length)")
        return [x for x, _ in items], (len(v),) + shapes.pop()
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise where.type(key, v, "a number or an array of numbers")
    return _number(where, key, v), ()


def _size(shape: tuple[int, ...]) -> int:
    return math.prod(shape) if shape else 1


def _text(where: _Where, key: str, v: Any, limit: int, one_line: bool = False) -> str:
    if not isinstance(v, str):
        raise where.type(key, v, "a string")
    if len(v) > limit:
        raise where.value(key, v, f"at most {limit} characters (it has {len(v)})")
    if one_line and _CONTROL.search(v):
        raise where.value(key, v, "no control characters (newlines, tabs, NUL)")
    return v


def _per_backend(where: _Where, key: str, v: Any, check: Any, expected: str) -> Any:
    """A value, or a table {backend: value} with known backend names."""
    if isinstance(v, dict):
        from ..backends import backends

        known = backends()
        out = {}
        for name, x in v.items():
            if name not in known:
                raise where.value(f"{key}.{name}", x, f"a table whose keys are backends ({', '.join(known)})")
            out[name] = check(f"{key}.{name}", x)
        if not out:
            raise where.value(key, v, f"{expected}, or a non-empty table of them per backend")
        return out
    return check(key, v)


def _tolerance(where: _Where, key: str, v: Any) -> Any:
    def check(k: str, x: Any) -> float:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise where.type(k, x, "a number >= 0 or a table of them per backend")
        value = _number(where, k, x)
        if not (math.isfinite(value) and value >= 0):
            raise where.value(k, x, "a finite number >= 0")
        return value

    return _per_backend(where, key, v, check, "a finite number >= 0")


def _expect(where: _Where, v: Any) -> dict[str, str]:
    if not isinstance(v, dict):
        raise where.type("expect", v, "a table {backend = \"cause\"}")

    def check(k: str, x: Any) -> str:
        text = _text(where, k, x, 100, one_line=True)
        if not text.strip():
            raise where.value(k, x, "a cause such as \"truncation\"")
        return text

    return _per_backend(where, "expect", v, check, "a cause")


def _case(path: str, k: int, entry: Any) -> list[Case]:
    where = _Where(path, k, entry.get("id") if isinstance(entry, dict) else None)
    if not isinstance(entry, dict):
        raise where.type("case", entry, "a [[case]] table")
    if "f" not in entry:
        raise where.error("needs f = an expression or 'module:function'")
    unknown = set(entry) - set(KEYS)
    if unknown:
        raise where.error(f"unknown keys {sorted(unknown)}; a case has {', '.join(KEYS)}")
    id = _text(where, "id", entry.get("id", f"case{k}"), LIMITS["id"], one_line=True)
    if not id.strip():
        raise where.value("id", id, "a non-empty id")
    f = _text(where, "f", entry["f"], LIMITS["text"])
    if not f.strip():
        raise where.value("f", f, "an expression or 'module:function'")
    code = is_callable_ref(f)
    variables: tuple[str, ...] | None = None
    if not code:
        try:
            variables = resolve(f, name=id, allow_import=False).variables  # the safe parser; nothing evaluated
        except DiffkitError as e:
            raise where.error(f"f = {_show(f)}: {e}") from None
    if "at" in entry and "args" in entry:
        raise where.error("give the point as at = {...} or args = [...], not both")
    elements = 0
    at = None
    if "at" in entry:
        table = entry["at"]
        if not isinstance(table, dict):
            raise where.type("at", table, "a table {variable = value}")
        values = {}
        for name, v in table.items():
            if not _NAME.fullmatch(name):
                raise where.value(f"at.{name}" if len(name) < 60 else "at", name, "variable names")
            values[name], shape = _array(where, f"at.{name}", v)
            elements += _size(shape)
        if variables is not None:
            missing = [v for v in variables if v not in values]
            if missing:
                raise where.error(f"'at' has no value for {missing} (variables {list(variables)})")
            extra = sorted(set(values) - set(variables))
            if extra:
                raise where.error(f"'at' names {extra}, which are not variables (variables {list(variables)})")
            args: list[Any] = [values[v] for v in variables]
        else:
            args, at = [], values  # a module:function's variables are known only in the case's process
    elif "args" in entry:
        raw = entry["args"]
        if not isinstance(raw, list):
            raise where.type("args", raw, "an array of the arguments [x, y, ...]")
        args = []
        for j, v in enumerate(raw):
            value, shape = _array(where, f"args[{j}]", v)
            args.append(value)
            elements += _size(shape)
        if variables is not None and len(args) != len(variables):
            raise where.error(f"args has {len(args)} values for {len(variables)} variables {list(variables)}")
    else:
        raise where.error("give the point as at = {...} or args = [...]")
    if elements > LIMITS["elements"]:
        raise where.error(f"the point has {elements} elements, more than the limit of {LIMITS['elements']}")
    if "ops" in entry and "op" in entry:
        raise where.error("give ops = [...] or op = \"...\", not both")
    key = "ops" if "ops" in entry else "op"
    ops = entry.get(key, ["grad"])
    if isinstance(ops, str):
        ops = [ops]
    elif not isinstance(ops, list) or not ops:
        raise where.type(key, ops, "an operator or a non-empty array of them")
    for op in ops:
        if not isinstance(op, str):
            raise where.type(key, op, f"one of {', '.join(OPS)}")
        if op not in OPS:
            raise where.error(f"op {op!r} is not one of {', '.join(OPS)}")
    if len(set(ops)) != len(ops):
        raise where.value(key, ops, "each operator once")
    nargs = len(args) if at is None else len(at)
    argnums = entry.get("argnums")
    if argnums is not None:
        items = argnums if isinstance(argnums, list) else [argnums]
        if not items or any(isinstance(a, bool) or not isinstance(a, int) for a in items):
            raise where.type("argnums", argnums, "an argument number or an array of them")
        if any(not 0 <= a < nargs for a in items) or len(set(items)) != len(items):
            raise where.value("argnums", argnums, f"distinct argument numbers from 0 to {nargs - 1}")
    order = entry.get("order", 1)
    if isinstance(order, bool) or not isinstance(order, int):
        raise where.type("order", order, "an integer")
    if not 1 <= order <= LIMITS["order"]:
        raise where.value("order", order, f"an integer from 1 to {LIMITS['order']}")
    if order != 1 and ops != ["derivative"]:
        raise where.value("order", order, "1 unless op = \"derivative\" (higher orders are derivatives')")
    rtol = _tolerance(where, "rtol", entry["rtol"]) if "rtol" in entry else None
    atol = _tolerance(where, "atol", entry["atol"]) if "atol" in entry else None
    note = _text(where, "note", entry.get("note", ""), LIMITS["text"])
    tags = entry.get("tags", [])
    if not isinstance(tags, list):
        raise where.type("tags", tags, "an array of strings")
    if len(tags) > LIMITS["tags"]:
        raise where.value("tags", tags, f"at most {LIMITS['tags']} tags")
    tags = [_text(where, "tags", t, 100, one_line=True) for t in tags]
    expect = _expect(where, entry["expect"]) if "expect" in entry else None
    return expand(id, f, args, ops, argnums=argnums, order=order, rtol=rtol, atol=atol, note=note,
                  tags=tuple(tags), expect=expect, at=at, origin=path)


def _read(path: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    if os.path.isdir(path):
        raise InvalidArgument(f"{path}: is a directory, not a suite file")
    try:
        size = os.path.getsize(path)
        if size > LIMITS["file_bytes"]:
            raise InvalidArgument(f"{path}: {size} bytes, more than the limit of {LIMITS['file_bytes']} "
                                  "for a suite file")
        with open(path, "rb") as fh:
            raw = fh.read(LIMITS["file_bytes"] + 1)
    except FileNotFoundError:
        raise InvalidArgument(f"{path}: no such file") from None
    except OSError as e:
        raise InvalidArgument(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidArgument(f"{path}: not UTF-8 text (byte {e.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InvalidArgument(f"{path}: not valid TOML: {e}") from None
    except (ValueError, RecursionError, MemoryError) as e:  # huge integers, arrays nested thousands deep
        raise InvalidArgument(f"{path}: not a TOML file diffkit can read: {type(e).__name__}: "
                              f"{str(e)[:200]}") from None


def load_toml(path: str) -> list[Case]:
    """The cases of a TOML suite file (see the module docstring for the format).

    Nothing the file names is imported or evaluated: expressions go through
    the safe parser, and a ``module:function`` is kept as text for the case's
    own process.
    """
    path = os.fspath(path)
    data = _read(path)
    entries = data.get("case", [])
    if not isinstance(entries, list) or not entries:
        raise InvalidArgument(f"{path}: no [[case]] tables")
    unknown = set(data) - {"case"}
    if unknown:
        raise InvalidArgument(f"{path}: unknown top-level keys {sorted(unknown)}; a suite file holds "
                              "[[case]] tables")
    cases: list[Case] = []
    for k, entry in enumerate(entries):
        cases += _case(path, k + 1, entry)
        if len(cases) > LIMITS["cases"]:
            raise InvalidArgument(f"{path}: more than {LIMITS['cases']} cases")
    ids = [c.id for c in cases]
    counts: dict[str, int] = {}
    for i in ids:
        counts[i] = counts.get(i, 0) + 1
    dup = sorted(i for i, n in counts.items() if n > 1)
    if dup:
        raise InvalidArgument(f"{path}: duplicate case ids {dup}")
    return cases


def suite(name_or_path: str) -> list[Case]:
    """A built-in suite by name (a key of :data:`SUITES`), or the cases of a TOML file."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise InvalidType(f"suite() takes a suite name or a .toml path, got {type(name_or_path).__name__}")
    name_or_path = os.fspath(name_or_path)
    if name_or_path in SUITES:
        return [replace(c, origin=BUILTIN) for c in SUITES[name_or_path]()]
    if name_or_path.endswith(".toml"):
        return load_toml(name_or_path)
    raise InvalidArgument(f"unknown suite {name_or_path!r}: choose one of {', '.join(sorted(SUITES))} "
                          "or give a .toml file")
