"""Start-up: ``import diffkit`` and ``diffkit --help`` leave the heavy dependencies unimported.

SymPy forms in the primitive table are resolved on first use, and the package
imports its backends, operators and harness when one of their names is first
read (PEP 562). Each check runs in a fresh interpreter, since this test
process has imported everything already. Times are measured by
``bench/bench_startup.py``, not here (a shared machine makes them noisy).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

import diffkit as dk
from diffkit.core.lazy import LazyModule, LazySympy, lazy_sympy, resolve

ROOT = pathlib.Path(dk.__file__).resolve().parent.parent
HEAVY = ("sympy", "mpmath", "matplotlib", "dask", "typer", "rich", "hypothesis", "scipy")


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)


def _loaded(code: str, *args: str) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    """Which of :data:`HEAVY` are in ``sys.modules`` after ``code`` (printed as its last line)."""
    proc = _run(code + f"\nimport sys, json; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc


def test_import_diffkit_imports_no_heavy_dependency():
    loaded, _ = _loaded("import diffkit")
    assert loaded == []


def test_import_diffkit_does_not_load_the_backends_or_the_harness():
    proc = _run("import sys, diffkit; print(sorted(m for m in sys.modules if m.startswith('diffkit')))")
    mods = set(eval(proc.stdout))  # a printed list of module names
    assert "diffkit.primitives" in mods and "diffkit.numpy_api" in mods  # the table and NumPy's handlers
    assert not mods & {"diffkit.backends", "diffkit.operators", "diffkit.harness", "diffkit.cli"}


def test_help_imports_no_sympy_or_mpmath():
    code = ("import sys\nfrom diffkit import cli\nsys.argv = ['diffkit', '--help']\n"
            "try:\n    cli.main()\nexcept SystemExit as e:\n    assert not e.code, e.code")
    loaded, proc = _loaded(code)
    assert "Usage" in proc.stdout and "check" in proc.stdout
    assert not set(loaded) & {"sympy", "mpmath", "matplotlib", "dask", "hypothesis"}, loaded


def test_the_console_entry_module_prints_help():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run([sys.executable, "-m", "diffkit.cli", "--help"], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "suite" in proc.stdout and "backends" in proc.stdout


def test_operators_work_after_the_lazy_import_and_then_import_sympy():
    code = """
import sys, numpy as np, diffkit as dk
assert "sympy" not in sys.modules
g = dk.grad(lambda x, y: np.sin(x) * y, argnums=(0, 1))(1.0, 2.0)
assert abs(float(g[0]) - 2 * np.cos(1.0)) < 1e-12 and abs(float(g[1]) - np.sin(1.0)) < 1e-12
assert "sympy" not in sys.modules          # reverse mode needs no SymPy
print(dk.diff("sin(x)*exp(y)", "x"))
assert "sympy" in sys.modules              # the symbolic derivative does
s = dk.grad(lambda x: np.tanh(x) ** 2, backend="symbolic")(0.5)
assert abs(float(s) - 2 * np.tanh(0.5) * (1 - np.tanh(0.5) ** 2)) < 1e-12
"""
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[0] == "exp(y)*cos(x)"


def test_crosscheck_and_from_sympy_after_the_lazy_import():
    code = """
import numpy as np, diffkit as dk
H = dk.Function.from_sympy("sin(x) * y")
assert abs(float(H(1.0, 2.0)) - 2 * np.sin(1.0)) < 1e-12
r = dk.crosscheck(lambda x: np.exp(x) * x, (0.3,))
assert r.ok, r
"""
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr


def test_public_names_are_all_reachable():
    assert set(dk.__all__) <= set(dir(dk))
    for name in dk.__all__:
        assert getattr(dk, name) is not None, name
    ns: dict[str, object] = {}
    exec("from diffkit import *", ns)
    assert set(dk.__all__) <= set(ns)
    with pytest.raises(AttributeError):
        dk.no_such_name  # noqa: B018


def test_backends_stays_the_function_after_the_subpackage_import():
    import diffkit.backends.symbolic  # noqa: F401  (binds the subpackage on its parent)

    assert callable(dk.backends) and "symbolic" in dk.backends()
    assert dk.Symbolic is sys.modules["diffkit.backends.symbolic"].Symbolic


def test_the_table_resolves_its_sympy_forms():
    import sympy

    assert dk.PRIMITIVES["sin"].sympy is sympy.sin
    assert dk.PRIMITIVES["maximum"].sympy is sympy.Max
    assert dk.PRIMITIVES["floor_divide"].sympy(sympy.Symbol("x"), 2) == sympy.floor(sympy.Symbol("x") / 2)
    assert dk.PRIMITIVES["rint"].sympy is None


def test_lazy_helpers():
    import sympy

    form = lazy_sympy("cos")
    assert isinstance(form, LazySympy) and repr(form) == "lazy_sympy('cos')"
    assert form(0) == 1 and form.resolve() is sympy.cos and resolve(form) is sympy.cos
    assert resolve(None) is None
    m = LazyModule("fractions")
    assert m.Fraction(1, 2) * 2 == 1 and "Fraction" in vars(m)  # copied on first read
    with pytest.raises(AttributeError):
        m.__wrapped__  # noqa: B018  (dunders are not looked up: introspection must not import)


def test_each_lazily_loaded_module_imports_first():
    """The package used to import everything in one fixed order; now any module
    may be the first one imported, and none may meet a half-initialised module."""
    first = sorted({m.lstrip(".") for m in dk._LAZY.values()} | dk._SUBMODULES
                   | {"testing", "swell", "graphs", "cli", "bench", "plots", "pytest_plugin"})
    for name in first:
        proc = _run(f"import diffkit.{name}")
        assert proc.returncode == 0, (name, proc.stderr)
