"""dk.graph: the seed notes' computational graphs, their values and gradients, and the pictures."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import diffkit as dk
from diffkit import graphs
from diffkit.cli import app

EPS = np.finfo(float).eps


def apple(apple, count, tax):
    return apple * count * tax


def apple_orange(apple, apples, orange, oranges, tax):
    return (apple * apples + orange * oranges) * tax


def by_label(g):
    return {n.label: n for n in g.nodes}


def test_apple_graph_has_the_notes_values_and_gradients():
    # "Deep Learning from Scratch", Fig. 5-16: forward 100, 2 -> 200, 1.1 -> 220; backward 1 -> 1.1, 200 -> 2.2, 110
    g = dk.graph(apple, 100.0, 2.0, 1.1)
    assert [n.op for n in g.nodes] == ["input", "input", "input", "multiply", "multiply"]
    first, total = g.nodes[3], g.nodes[4]
    assert first.inputs == (0, 1) and total.inputs == (3, 2) and g.output == 4
    assert float(first.value) == 200.0 and float(total.value) == pytest.approx(220.0, rel=EPS)
    assert float(total.grad) == 1.0 and float(first.grad) == pytest.approx(1.1, rel=EPS)
    grads = {n: float(by_label(g)[n].grad) for n in ("apple", "count", "tax")}
    assert grads == pytest.approx({"apple": 2.2, "count": 110.0, "tax": 200.0}, rel=2 * EPS)


def test_apple_and_orange_gradients_match_the_digest_and_the_other_backends():
    args = (100.0, 2.0, 150.0, 3.0, 1.1)
    g = dk.graph(apple_orange, *args)
    names = ("apple", "apples", "orange", "oranges", "tax")
    got = [float(by_label(g)[n].grad) for n in names]
    assert got == pytest.approx([2.2, 110, 3.3, 165, 650], rel=2 * EPS)
    fwd = dk.grad(apple_orange, argnums=tuple(range(5)), backend="forward")(*args)
    assert got == pytest.approx([float(v) for v in fwd], rel=2 * EPS)
    add = next(n for n in g.nodes if n.op == "add")
    assert float(add.value) == 650.0 and float(add.grad) == pytest.approx(1.1, rel=EPS)


def test_chain_rule_graph():
    g = dk.graph("(x + y)**2", 1.0, 2.0)
    assert float(g.node("+").value) == 3.0 and float(g.node("+").grad) == 6.0   # dz/dt = 2t
    assert float(g.node("x").grad) == float(g.node("y").grad) == 6.0           # dz/dx = 2(x + y)


def test_one_neuron_intermediate_gradients():
    # loss = (0 - sigma(w1 i1 + w2 i2))^2 at i = (2, 5), w = (0.5, 0.1): the digest's numbers
    def loss(w1, w2):
        return (0.0 - 1.0 / (1.0 + np.exp(-(w1 * 2.0 + w2 * 5.0)))) ** 2

    g = dk.graph(loss, 0.5, 0.1)
    pre = next(n for n in g.nodes if n.op == "add" and float(n.value) == 1.5)
    sig = next(n for n in g.nodes if n.op == "divide")
    assert round(float(sig.value), 7) == 0.8175745 and round(float(g.value), 7) == 0.6684280
    assert round(float(sig.grad), 7) == -1.6351490 * -1   # d loss / d sigma = 2 sigma
    assert round(float(pre.grad), 7) == 0.2438767
    w = [float(g.node(n).grad) for n in ("w1", "w2")]
    assert [round(v, 7) for v in w] == [0.4877533, 1.2193833]
    numeric = dk.grad(loss, argnums=(0, 1), backend="numeric")(0.5, 0.1)
    assert w == pytest.approx([float(v) for v in numeric], rel=1e-12)


def test_array_graph_gradients_have_the_values_shapes():
    A = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.25]])
    x = np.array([0.3, -0.7])
    g = dk.graph(lambda A, x: np.sum(np.tanh(A @ x) ** 2), A, x)
    for n in g.nodes:
        if n.grad is not None:
            assert np.shape(n.grad) == np.shape(n.value), n
    ga, gx = dk.grad(lambda A, x: np.sum(np.tanh(A @ x) ** 2), argnums=(0, 1), backend="forward")(A, x)
    np.testing.assert_allclose(g.node("A").grad, ga, rtol=1e-14)
    np.testing.assert_allclose(g.node("x").grad, gx, rtol=1e-14)
    assert "array(3, 2)" in str(g) and "[0.3, -0.7]" in str(g)   # small arrays in full, others by shape


def test_constants_argnums_and_a_constant_output():
    g = dk.graph(lambda x, c: x * c + 1.0, 2.0, 3.0, argnums=0)
    assert [n.op for n in g.nodes] == ["input", "constant", "multiply", "constant", "add"]
    assert float(g.node("x").grad) == 3.0 and g.nodes[1].grad is None
    const = dk.graph(lambda x: 5.0, 1.0)
    assert const.output is None and const.value == 5.0 and float(np.asarray(const.nodes[0].grad or 0.0)) == 0.0


def test_cotangent_and_bad_arguments():
    g = dk.graph(lambda v: v * 2.0, np.array([1.0, 2.0]), cotangent=np.array([1.0, 0.0]))
    np.testing.assert_array_equal(g.node("v").grad, [2.0, 0.0])
    with pytest.raises(ValueError, match=r"cotangent of shape \(3,\)"):
        dk.graph(lambda v: v * 2.0, np.array([1.0, 2.0]), cotangent=np.ones(3))
    with pytest.raises(TypeError, match="argument 0 .* is str"):
        dk.graph(lambda s: 1.0, "text", argnums=0)
    with pytest.raises(KeyError, match="no node labelled 'z'"):
        dk.graph("x * y", 1.0, 2.0).node("z")


def test_dot_has_one_edge_per_input_and_escapes_names():
    g = dk.graph(apple_orange, 100.0, 2.0, 150.0, 3.0, 1.1)
    dot = g.to_dot()
    edges = [line for line in dot.splitlines() if "->" in line]
    assert len(edges) == sum(len(n.inputs) for n in g.nodes) + 1   # + the output edge
    assert '<font color="#c0392b">650</font>' in dot                # tax's gradient under its value
    assert graphs._quote('a "b" \\c') == '"a \\"b\\" \\\\c"'


@pytest.mark.skipif(graphs.renderer() is None, reason="needs graphviz-pure or the system's dot")
def test_rendered_pictures(tmp_path):
    g = dk.graph(apple, 100.0, 2.0, 1.1)
    svg = g.save(tmp_path / "apple.svg").read_text()
    assert "<svg" in svg and ">2.2<" in svg and ">220<" in svg and ">110<" in svg
    assert g.save(tmp_path / "apple.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert g._repr_svg_().startswith("<?xml")


def test_rendering_without_graphviz_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setattr(graphs.shutil, "which", lambda name, path=None: None)
    g = dk.graph(apple, 100.0, 2.0, 1.1)
    with pytest.raises(dk.DiffkitError, match=r"diffkit\[graph\]"):
        g.save(tmp_path / "apple.svg")
    assert g.save(tmp_path / "apple.dot").read_text().startswith("digraph")  # DOT needs no renderer
    assert g._repr_svg_() is None
    with pytest.raises(ValueError, match="cannot tell the format"):
        g.save(tmp_path / "apple.txt")


def test_renderer_next_to_the_interpreter_without_path(monkeypatch, tmp_path):
    # a virtual environment called by path (not activated): its scripts folder is not on PATH
    import os
    import sys
    import sysconfig

    scripts = tmp_path / "venv-bin"
    scripts.mkdir()
    exe = scripts / "graphviz-pure"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(scripts) if name == "scripts" else None)
    assert graphs.renderer() == str(exe)
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path / "empty"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "empty" / "python"))
    assert graphs.renderer() is None
    assert os.environ["PATH"] == str(tmp_path / "nowhere")


def test_cli_graph_short_out_option(tmp_path):
    result = CliRunner().invoke(app, ["graph", "x*y", "--at", "x=1", "y=2", "-o", str(tmp_path / "g.dot")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "g.dot").read_text().startswith("digraph")


def test_cli_graph(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["graph", "(x+y)**2", "--at", "x=1", "y=2", "--out", str(tmp_path / "g.dot")])
    assert result.exit_code == 0, result.output
    assert "square" in result.output and (tmp_path / "g.dot").read_text().startswith("digraph")
    bad = runner.invoke(app, ["graph", "(x+y)**2", "--at", "x=1", "y=2", "--out", "g.txt"])
    assert bad.exit_code == 2 and "extensions" in bad.output
