"""Every error diffkit raises on purpose is a DiffkitError that keeps its built-in base."""

from __future__ import annotations

import ast
import inspect
import pathlib

import numpy as np
import pytest
import sympy

import diffkit as dk
from diffkit import errors

PACKAGE = pathlib.Path(dk.__file__).parent

BUILTINS = {"ValueError", "TypeError", "RuntimeError", "KeyError"}
"""Built-in exceptions diffkit must not raise directly: each has a DiffkitError subclass."""

ALLOWED: dict[tuple[str, int], str] = {
    # ("diffkit/module.py", line): "why this raise must stay a built-in",
}
"""Deliberate exceptions to the rule, each with its reason (none today)."""


def _bare_raises() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=rel)):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id in BUILTINS and (rel, node.lineno) not in ALLOWED:
                found.append(f"{rel}:{node.lineno}: raise {exc.id}")
    return found


def test_no_builtin_raises() -> None:
    bare = _bare_raises()
    assert not bare, ("raise a diffkit.errors class (InvalidArgument, InvalidType, NotFound, Unavailable, ...) "
                      "instead of a built-in:\n" + "\n".join(bare))


def test_hierarchy_is_exported_and_keeps_builtin_bases() -> None:
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]
    assert {c.__name__ for c in classes} == {
        "DiffkitError", "InvalidArgument", "InvalidType", "NotFound", "UnsupportedOperation", "ParseError",
        "SizeLimitError", "TimeLimitError", "TracingError", "ShapeError", "Unavailable", "BackendMismatch"}
    for c in classes:
        assert getattr(dk, c.__name__) is c and c.__name__ in dk.__all__
        if c is not errors.DiffkitError:
            assert issubclass(c, errors.DiffkitError)
            assert any(b.__module__ == "builtins" and b is not Exception for b in c.__mro__), c
    assert not hasattr(dk, "DomainError")  # nothing refuses a point: outside a domain the result is NaN


@pytest.mark.parametrize("call, cls, builtin", [
    (lambda: dk.get_backend("sympy"), dk.InvalidArgument, ValueError),
    (lambda: dk.grad(np.sin, backend="sympy")(1.0), dk.InvalidArgument, ValueError),
    (lambda: dk.get_backend(3), dk.InvalidType, TypeError),
    (lambda: dk.grad(3.0), dk.InvalidType, TypeError),
    (lambda: dk.Function.from_sympy(sympy.Symbol("x") * sympy.Symbol("y"), variables=["x"]),
     dk.InvalidArgument, ValueError),
    (lambda: dk.crosscheck("x**2", (1.0,), op="curl"), dk.InvalidArgument, ValueError),
    (lambda: dk.crosscheck("x*y", (1.0, 2.0), op="derivative"), dk.InvalidArgument, ValueError),
    (lambda: dk.derivative(np.sin, order=-1), dk.InvalidArgument, ValueError),
    (lambda: dk.Symbolic(method="fast"), dk.InvalidArgument, ValueError),
    (lambda: dk.graph("x*y", 1.0, 2.0).node("z"), dk.NotFound, KeyError),
    (lambda: dk.graph("x*y", 1.0, 2.0).node("z"), dk.NotFound, ValueError),
    (lambda: dk.graph("x*y", 1.0, 2.0).render("gif"), dk.InvalidArgument, ValueError),
])
def test_bad_calls_raise_a_diffkit_error_caught_as_the_builtin(call, cls, builtin) -> None:
    with pytest.raises(builtin) as info:  # an existing ``except ValueError`` / ``except TypeError`` still works
        call()
    assert isinstance(info.value, cls) and isinstance(info.value, dk.DiffkitError)


def test_unknown_backend_message_names_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown backend 'sympy'; choose one of .*reverse"):
        dk.get_backend("sympy")


def test_symbolic_size_limit_is_a_typed_error() -> None:
    from diffkit.backends.symbolic import SizeLimitError

    assert SizeLimitError is dk.SizeLimitError  # still importable from the backend
    with pytest.raises(dk.SizeLimitError, match="more than the limit of 3 symbols") as info:
        dk.grad(lambda x: np.sum(x * x), backend=dk.Symbolic(size_limit=3))(np.ones(5))
    assert isinstance(info.value, ValueError)


def test_crosscheck_reports_the_size_limit_as_unsupported() -> None:
    report = dk.crosscheck(lambda x: np.sum(x * x), (np.ones(5),), backends=["reverse", dk.Symbolic(size_limit=3)],
                           time_budget=0.0)
    row = report.row("symbolic")
    assert row.verdict == "unsupported" and row.message.startswith("SizeLimitError")


def test_report_row_of_a_missing_backend() -> None:
    report = dk.crosscheck("x**2", (1.0,), op="derivative", backends=["reverse"], time_budget=0.0)
    with pytest.raises(KeyError) as info:
        report.row("numeric")
    assert isinstance(info.value, dk.NotFound)
    assert str(info.value).startswith("report of ") and "rows: reverse" in str(info.value)  # not quoted


def test_expression_calls_and_parse_arguments() -> None:
    from diffkit.core.parser import parse

    with pytest.raises(dk.InvalidType, match="variables must be a sequence of names"):
        parse("x", functions={}, variables="x")
    with pytest.raises(TypeError, match="must be a string"):
        parse(3, functions={})  # type: ignore[arg-type]
    expr = parse("x + y", functions={})
    with pytest.raises(dk.InvalidType, match="takes at most 2 positional"):
        expr(1.0, 2.0, 3.0)
    with pytest.raises(TypeError, match="missing value"):
        expr(1.0)
    with pytest.raises(dk.NotFound, match="no SymPy function given for sin"):
        parse("sin(x)", functions={"sin": (np.sin, (1,))}).to_sympy({}, {})


def test_suite_and_strategy_options() -> None:
    from diffkit.harness.suites import suite

    with pytest.raises(dk.InvalidArgument, match="unknown suite 'nope'"):
        suite("nope")
    strategies = pytest.importorskip("diffkit.strategies")
    with pytest.raises(ValueError, match="min_value must be below max_value"):
        strategies.points("x", min_value=1.0, max_value=0.0)


def test_missing_tool_is_unavailable() -> None:
    from diffkit.bench import peers

    class Missing(peers.Tool):
        name = "missing"

        def _load(self) -> str:
            raise ImportError("No module named 'missing'")

    with pytest.raises(RuntimeError, match="missing is not available") as info:
        Missing()._need()
    assert isinstance(info.value, dk.Unavailable)
