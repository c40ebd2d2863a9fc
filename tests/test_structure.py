"""The package's structure: layers that import only downwards, and no cycles.

Every ``import`` under ``diffkit/`` counts, inside functions too (a lazy
import is still a dependency); only imports of packages outside diffkit
(optional extras such as matplotlib) are not edges. A cycle is reported with
the modules on it.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import diffkit

PACKAGE = pathlib.Path(diffkit.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: pathlib.Path, known: set[str]) -> set[str]:
    """The diffkit modules ``name`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {m: _imports(m, p, known) for m, p in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(g):
        if root in index:
            continue
        work = [(root, iter(sorted(g[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(g.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


# The package's __init__ re-exports the public names: it imports everything and
# nothing imports it (a module needing the version reads diffkit/_version.py).
def test_no_import_cycles():
    g = graph()
    assert cycles(g) == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles(g))


def test_core_imports_nothing_above_it():
    g = graph()
    allowed = ("diffkit.core", "diffkit.errors")
    bad = {m: sorted(d for d in deps if not d.startswith(allowed))
           for m, deps in g.items() if m.startswith("diffkit.core")}
    assert {m: d for m, d in bad.items() if d} == {}


def test_the_table_imports_only_core():
    deps = graph()["diffkit.primitives"]
    assert all(d.startswith(("diffkit.core", "diffkit.errors")) for d in deps), deps


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_coverage_page_is_the_tables():
    # docs/coverage.md is generated from the table: regenerate it after adding a primitive
    # or a NumPy function (python -m diffkit.coverage docs/coverage.md)
    import pathlib

    pytest.importorskip("scipy")  # the page lists the scipy extra's entries too
    from diffkit.coverage import coverage_markdown, versions

    page = pathlib.Path(__file__).parent.parent / "docs" / "coverage.md"
    if f"Generated with {versions()}." not in page.read_text(encoding="utf-8"):
        pytest.skip(f"docs/coverage.md was generated with other versions than this {versions()}")
    assert page.read_text(encoding="utf-8") == coverage_markdown(), \
        "docs/coverage.md is stale: run python -m diffkit.coverage docs/coverage.md"
