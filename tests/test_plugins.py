"""Backends as plug-ins: a package adds one through the entry-point group ``diffkit.backends``.

The tests write a tiny installed distribution (a ``.dist-info`` folder with
``entry_points.txt``) onto ``sys.path``, as pip would, and check that every
operator, the harness and ``dk.backends()`` see the new backend.
"""

from __future__ import annotations

import importlib
import sys
import textwrap

import numpy as np
import pytest

import diffkit as dk
from diffkit.errors import InvalidType, Unavailable

registry = importlib.import_module("diffkit.backends")  # dk.backends is the function


@pytest.fixture
def install(tmp_path, monkeypatch):
    def make(name: str, entry_points: str, code: str) -> None:
        pkg = tmp_path / name
        pkg.mkdir()
        (pkg / "__init__.py").write_text(textwrap.dedent(code))
        info = tmp_path / f"{name}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text("[diffkit.backends]\n" + textwrap.dedent(entry_points))
        monkeypatch.syspath_prepend(str(tmp_path))
        registry._registry.cache_clear()

    yield make
    registry._registry.cache_clear()
    for mod in [m for m in sys.modules if m.startswith("dkplugin")]:
        del sys.modules[mod]


CENTRAL = """
import numpy as np
from diffkit.backends.reverse import Reverse

class Central(Reverse):
    '''Reverse mode under another name, counting its calls.'''
    name = "central"
    calls = 0

    def vjp(self, fun, primals, argnums, has_aux=False):
        type(self).calls += 1
        return super().vjp(fun, primals, argnums, has_aux)
"""


def test_an_installed_backend_is_listed_and_used(install):
    install("dkplugin_a", "central = dkplugin_a:Central\n", CENTRAL)
    assert dk.backends() == ("symbolic", "numeric", "forward", "reverse", "compiled", "central")
    g = dk.grad(lambda x: np.sin(x) * x, backend="central")(0.5)
    assert g == pytest.approx(np.cos(0.5) * 0.5 + np.sin(0.5), rel=1e-15)
    rep = dk.crosscheck("x**3", (2.0,), "derivative", time_budget=0)
    assert [r.backend for r in rep.rows][-1] == "central" and rep.ok
    assert sys.modules["dkplugin_a"].Central.calls >= 2


def test_the_bench_lists_a_plugin_backend(install):
    from diffkit.bench import peers

    install("dkplugin_b", "central = dkplugin_b:Central\n", CENTRAL)
    names = [t.name for t in peers.available_tools(include_peers=False)]
    assert names == ["diffkit reverse", "diffkit forward", "diffkit numeric", "diffkit compiled", "diffkit central"]
    tool = peers.get_tool("diffkit central")
    case = peers.Case("cube", lambda xp, x: xp.sum(x ** 3), (np.array([1.0, 2.0]),), 0)
    np.testing.assert_allclose(tool.grad(case)(), [3.0, 12.0])
    np.testing.assert_allclose(tool.jacobian(case, "central")(), [3.0, 12.0])


def test_the_builtin_backends_are_entry_points_too():
    import importlib.metadata

    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=registry.GROUP)}
    if not names:
        pytest.skip("diffkit runs from a source tree without its metadata")
    assert names["reverse"] == "diffkit.backends.reverse:Reverse"
    assert set(registry._BUILTIN) <= set(names)


def test_a_plugin_cannot_replace_a_builtin(install):
    install("dkplugin_b", "reverse = dkplugin_b:Central\n", CENTRAL.replace("Central", "Central"))
    with pytest.warns(UserWarning, match="replace the built-in backend 'reverse'"):
        names = dk.backends()
    assert names == ("symbolic", "numeric", "forward", "reverse", "compiled")
    assert type(dk.get_backend("reverse")).__module__ == "diffkit.backends.reverse"


def test_a_broken_plugin_is_a_clear_error(install):
    install("dkplugin_c", "broken = dkplugin_c:Missing\nnotabackend = dkplugin_c:VALUE\n", "VALUE = 3\n")
    with pytest.raises(Unavailable, match=r"backend 'broken' could not be loaded from dkplugin_c:Missing"):
        dk.grad(lambda x: x * x, backend="broken")(1.0)
    with pytest.raises(InvalidType, match="is not a backend class"):
        dk.grad(lambda x: x * x, backend="notabackend")(1.0)
