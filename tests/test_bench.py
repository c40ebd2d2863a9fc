"""The AD benchmark (``diffkit.bench``): timing, the peers' adapters, the rows.

Peers that are not installed (autograd, JAX, PyTorch) are skipped. The whole
benchmark with every tool runs under ``-m slow`` (about 30 s); a tiny run of
diffkit's own backends always runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import time

import numpy as np
import pytest

from diffkit.bench import ad, peers
from diffkit.bench.timing import ENV, Stat, environment_ok, timeit

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch")  # torch.jit, inside torch.func

# --- timing ------------------------------------------------------------------------------------


def test_timeit_medians_of_sleeps() -> None:
    short, long_ = timeit([lambda: time.sleep(0.001), lambda: time.sleep(0.003)], budget=0.05)
    assert 0.001 <= short.median < 0.0025, short
    assert 0.003 <= long_.median < 0.0055, long_
    assert short.n == long_.n >= 7  # sampled in the same rounds
    for s in (short, long_):
        assert s.q1 <= s.median <= s.q3 and s.spread == pytest.approx(s.iqr / s.median)
        assert 0.0 <= s.spread < 1.0


def test_timeit_rounds_and_blocks() -> None:
    calls = [0, 0]

    def fast() -> None:
        calls[0] += 1

    def slow() -> None:
        calls[1] += 1
        time.sleep(0.012)  # slower than ``rewarm``: neither blocked nor re-warmed

    f, s = timeit([fast, slow], budget=0.0, min_repeats=7)
    assert f.n == s.n == 7 and s.number == 1 and f.number > 1
    assert calls[1] == 2 + 7  # warm-up, calibration, one per round
    assert calls[0] == 2 + 7 * (f.number + 1)  # and the fast one: an untimed call, then a block, each round
    (one,) = timeit([fast], budget=0.0, min_repeats=3, min_sample=0.0, rewarm=0.0)
    assert one.n == 3 and one.number == 1
    assert timeit([]) == []


def test_timeit_stops_at_the_budget() -> None:
    t0 = time.perf_counter()
    (s,) = timeit([lambda: time.sleep(0.002)], budget=0.1, min_repeats=1)
    elapsed = time.perf_counter() - t0
    assert 0.1 <= elapsed < 0.5 and s.n >= 10


def test_stat_is_frozen() -> None:
    s = Stat(median=2.0, q1=1.0, q3=4.0, n=9)
    assert s.iqr == 3.0 and s.spread == 1.5 and s.number == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.median = 1.0  # type: ignore[misc]
    assert math.isnan(Stat(0.0, 0.0, 0.0, 1).spread)


def test_environment() -> None:
    assert environment_ok(dict(ENV)) and not environment_ok({})
    assert ENV["MALLOC_TRIM_THRESHOLD_"] == ENV["MALLOC_MMAP_THRESHOLD_"] == "1000000000"
    assert all(ENV[k] == "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"))
    assert "--xla_cpu_multi_thread_eigen=false" in ENV["XLA_FLAGS"]


def test_importing_diffkit_or_the_bench_imports_no_peer() -> None:
    code = ("import sys, diffkit; assert 'diffkit.bench' not in sys.modules; "
            "import diffkit.bench.ad, diffkit.bench.peers, diffkit.bench.timing; "
            "bad = [m for m in ('jax', 'torch', 'autograd') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- adapters ----------------------------------------------------------------------------------

rng = np.random.default_rng(1)
SMALL = {
    "rosenbrock": peers.Case("rosenbrock", ad.rosenbrock, (rng.normal(size=7),)),
    "mlp": peers.Case("mlp", ad.mlp_loss, (rng.normal(size=(4, 5)) * 0.3, rng.normal(size=5) * 0.1,
                                           rng.normal(size=(5, 3)) * 0.3, rng.normal(size=3) * 0.1,
                                           rng.normal(size=(6, 4)), np.eye(3)[rng.integers(0, 3, 6)]),
                      argnums=(0, 1, 2, 3)),
    # the scalar chain's shape, shorter (JAX compiles the whole of the real one: about 1 s)
    "chain": peers.Case("chain", lambda xp, x: xp.sin(xp.sin(x) * 0.999 + x * 0.5) * x, (0.3,)),
}
JACOBIANS = {
    "wide": peers.Case("wide", ad.wide, (rng.normal(size=6),)),
    "tall": peers.Case("tall", ad.tall, (0.7, np.linspace(0.0, 1.0, 5))),
    "square": peers.Case("square", ad.square, (rng.normal(size=4), rng.normal(size=(4, 4)))),
}


def _tool(name: str) -> peers.Tool:
    tool = peers.get_tool(name)
    if not tool.available:
        pytest.skip(f"{name} is not installed: {tool.reason}")
    return tool


def _close(got: object, want: object) -> None:
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            _close(g, w)
        return
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", [t for t in peers.TOOLS if t != "diffkit reverse"])
def test_every_adapter_agrees_with_diffkit_reverse(name: str) -> None:
    tool = _tool(name)
    ref = peers.get_tool("diffkit reverse")
    assert tool.version and tool.reason is None
    if tool.gradient:
        for case in SMALL.values():
            _close(tool.to_numpy(tool.grad(case)()), ref.to_numpy(ref.grad(case)()))
    for case in JACOBIANS.values():
        want = ref.to_numpy(ref.jacobian(case, "reverse")())
        for mode in tool.modes:
            got = tool.to_numpy(tool.jacobian(case, mode)())
            if mode == "numeric":
                np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)
            else:
                _close(got, want)


def test_available_tools() -> None:
    mine = [t.name for t in peers.available_tools(include_peers=False)]
    assert mine == ["diffkit reverse", "diffkit forward", "diffkit numeric", "diffkit compiled"]
    everyone = peers.available_tools()
    assert [t.name for t in everyone][:4] == mine and all(t.available for t in everyone)
    info = peers.tool_info(["diffkit reverse"])
    assert info == [{"tool": "diffkit reverse", "version": info[0]["version"], "available": True, "reason": None}]


def test_adapter_errors() -> None:
    with pytest.raises(ValueError, match="unknown tool"):
        peers.get_tool("tensorflow")
    with pytest.raises(ValueError, match="no 'forward' Jacobian"):
        peers.get_tool("diffkit reverse").jacobian(JACOBIANS["wide"], "forward")

    class Missing(peers.Tool):
        name = "missing"

        def _load(self) -> str:
            raise ImportError("No module named 'missing'")

    tool = Missing()
    assert not tool.available and tool.version is None and "No module named 'missing'" in tool.reason
    with pytest.raises(RuntimeError, match="not available"):
        tool._need()


def test_torch_shim_sum_and_max() -> None:
    _tool("torch")
    import torch

    x = np.arange(6.0).reshape(2, 3)
    t = torch.from_numpy(x)
    shim = peers.TORCH_SHIM
    np.testing.assert_array_equal(shim.sum(t, axis=1, keepdims=True).numpy(), np.sum(x, axis=1, keepdims=True))
    np.testing.assert_array_equal(shim.max(t, axis=0).numpy(), np.max(x, axis=0))
    assert float(shim.sum(t)) == 15.0 and float(shim.max(t)) == 5.0
    with pytest.raises(AttributeError, match="torch shim"):
        shim.einsum  # noqa: B018


# --- rows --------------------------------------------------------------------------------------


def _check_rows(rows: list[dict]) -> None:
    json.dumps(rows)  # JSON-able
    assert rows
    order = [ad.SECTIONS.index(r["section"]) for r in rows]
    assert order == sorted(order)
    for r in rows:
        assert tuple(r) == ad.ROW_KEYS, r
        assert r["unit"] in ("x f", "us/op") and r["mode"] in ("reverse", "forward", "numeric", "auto")
        assert isinstance(r["n"], int) and r["n"] >= 1
        if r["seconds"] is None:
            assert r["note"] and r["ratio"] is None and r["repeats"] is None
            continue
        assert r["f_seconds"] > 0 and r["seconds"] > 0 and r["repeats"] >= 7 and r["spread"] >= 0
        assert r["setup_seconds"] > 0
        if r["unit"] == "x f":
            assert r["ratio"] == pytest.approx(r["seconds"] / r["f_seconds"])
        else:
            assert r["ratio"] == pytest.approx(r["seconds"] * 1e6 / 1000)


def test_tiny_run_of_diffkit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ad, "CHEAP_SIZES", (1_000, 100_000))  # n = 1e6 is for the real runs
    monkeypatch.setattr(ad, "SCALING_SIZES_QUICK", (100, 1_000))
    seen: list[str] = []
    rows = ad.run(quick=True, tools=["diffkit reverse", "diffkit forward"], budget=0.001, progress=seen.append)
    _check_rows(rows)
    assert seen[0].startswith("ad 1/8: scaling: rosenbrock n=1e2") and seen[-1].startswith("ad 8/8: jacobian")
    by = {(r["section"], r["case"], r["tool"], r["mode"]): r for r in rows}
    assert {s for s, *_ in by} == set(ad.SECTIONS)
    assert by["cheap gradient", "rosenbrock n=1e5", "diffkit reverse", "reverse"]["target"] == 2.0
    assert by["cheap gradient", "mlp 64-128-10", "diffkit reverse", "reverse"]["target"] == 1.5
    assert by["scalar chain", "scalar chain 1000 ops", "diffkit reverse", "reverse"]["target"] == 2.0
    assert by["jacobian", "(1, 1000) reverse", "diffkit reverse", "reverse"]["target"] == 5.0
    assert by["jacobian", "(1000, 1) forward", "diffkit forward", "forward"]["target"] == 5.0
    assert by["jacobian", "(100, 100) reverse", "diffkit reverse", "reverse"]["target"] == 10.0
    assert by["jacobian", "(100, 100) forward", "diffkit forward", "forward"]["target"] == 10.0
    assert by["jacobian", "(1000, 1) reverse", "diffkit reverse", "reverse"]["target"] is None
    assert by["cheap gradient", "mlp 64-128-10", "diffkit reverse", "reverse"]["n"] == 64 * 128 + 128 + 128 * 10 + 10
    assert all(r["target"] is None for r in rows if r["section"] == "scaling")
    skipped = by["cheap gradient", "rosenbrock n=1e5", "diffkit forward", "forward"]
    assert skipped["seconds"] is None and "one pass per input" in skipped["note"]
    sizes = sorted(r["n"] for r in rows if r["section"] == "scaling" and r["tool"] == "diffkit reverse")
    assert sizes == [100, 1_000]
    text = ad.format_table(rows)
    assert "== cheap gradient" in text and "== scaling" in text and "skipped" in text
    assert all(r in rows for r in ad.missed(rows)) and all(r["target"] for r in ad.missed(rows))


def test_run_rejects_bad_arguments_and_reports_missing_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown section"):
        ad.run(quick=True, sections=["speed"])
    with pytest.raises(ValueError, match="unknown tool"):
        ad.run(quick=True, tools=["tensorflow"])

    class Missing(peers.Tool):
        name, modes = "missing", ("reverse",)

        def _load(self) -> str:
            raise ImportError("No module named 'missing'")

    monkeypatch.setitem(peers._CLASSES, "missing", Missing)
    monkeypatch.delitem(peers._INSTANCES, "missing", raising=False)
    rows = ad.run(quick=True, tools=["missing"], sections=["scalar chain", "jacobian"], budget=0.001)
    _check_rows(rows)
    assert len(rows) == 4 and all("not available: ImportError" in r["note"] for r in rows)
    assert all(r["f_seconds"] is None for r in rows)


@pytest.fixture
def slow_only(request: pytest.FixtureRequest) -> None:
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("the whole benchmark runs under -m slow")


@pytest.mark.slow
def test_quick_run_with_every_tool(slow_only: None) -> None:
    t0 = time.perf_counter()
    rows = ad.run(quick=True)
    elapsed = time.perf_counter() - t0
    _check_rows(rows)
    assert elapsed < 120, elapsed  # twice: the default allocator, then the tuned one in a child process
    assert {r["tool"] for r in rows} == set(peers.TOOLS)
    assert {r["section"] for r in rows} == set(ad.SECTIONS)
    for t in peers.tools():
        if t.available:
            measured = [r for r in rows if r["tool"] == t.name and r["seconds"] is not None]
            assert measured, t.name
