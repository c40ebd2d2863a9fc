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

:class:`~diffkit.harness.cases.Case` (with :func:`~diffkit.harness.cases.expand`) and
:data:`~diffkit.harness.builtin_suites.SUITES` live in their own modules and are
importable from here too.
"""

from __future__ import annotations

import sys

from ..errors import InvalidArgument
from .builtin_suites import SUITES
from .cases import Case, expand, resolve
from .crosscheck import OPS


def load_toml(path: str) -> list[Case]:
    """The cases of a TOML suite file (see the module docstring for the format)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    cases: list[Case] = []
    entries = data.get("case", [])
    if not isinstance(entries, list) or not entries:
        raise InvalidArgument(f"{path}: no [[case]] tables")
    for k, entry in enumerate(entries):
        where = f"{path}: case {k + 1}" + (f" ({entry.get('id')})" if isinstance(entry, dict) else "")
        if not isinstance(entry, dict) or "f" not in entry:
            raise InvalidArgument(f"{where}: needs f = an expression or 'module:function'")
        unknown = set(entry) - {"id", "f", "at", "args", "ops", "op", "argnums", "order", "rtol", "atol", "note",
                                "tags", "expect"}
        if unknown:
            raise InvalidArgument(f"{where}: unknown keys {sorted(unknown)}")
        f = str(entry["f"])
        fn = resolve(f, name=entry.get("id"))
        if "at" in entry:
            at = entry["at"]
            missing = [v for v in fn.variables if v not in at]
            if missing:
                raise InvalidArgument(f"{where}: 'at' has no value for {missing} (variables {list(fn.variables)})")
            args = [at[v] for v in fn.variables]
        elif "args" in entry:
            args = list(entry["args"])
        else:
            raise InvalidArgument(f"{where}: give the point as at = {{...}} or args = [...]")
        ops = entry.get("ops", entry.get("op", ["grad"]))
        for op in ([ops] if isinstance(ops, str) else ops):
            if op not in OPS:
                raise InvalidArgument(f"{where}: op {op!r} is not one of {', '.join(OPS)}")
        cases += expand(str(entry.get("id", f"case{k + 1}")), f, args, ops, argnums=entry.get("argnums"),
                        order=int(entry.get("order", 1)), rtol=entry.get("rtol"), atol=entry.get("atol"),
                        note=str(entry.get("note", "")), tags=tuple(entry.get("tags", ())),
                        expect=entry.get("expect"))
    ids = [c.id for c in cases]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise InvalidArgument(f"{path}: duplicate case ids {dup}")
    return cases


def suite(name_or_path: str) -> list[Case]:
    """A built-in suite by name (a key of :data:`SUITES`), or the cases of a TOML file."""
    if name_or_path in SUITES:
        return SUITES[name_or_path]()
    if name_or_path.endswith(".toml"):
        return load_toml(name_or_path)
    raise InvalidArgument(f"unknown suite {name_or_path!r}: choose one of {', '.join(sorted(SUITES))} "
                          "or give a .toml file")
