"""Every script in examples/ runs and checks its own numbers; the plotting options write PNGs."""

from __future__ import annotations

import pathlib
import runpy
import subprocess
import sys

import pytest

from diffkit.graphs import renderer

ROOT = pathlib.Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path, capsys, monkeypatch):
    # as `python examples/NAME.py`: no command-line arguments (not pytest's)
    monkeypatch.setattr(sys, "argv", [str(path)])
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out.strip()


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_is_documented(path):
    # a module docstring that says how to run it, and a main(argv=None) behind the __main__ guard
    source = path.read_text()
    module = runpy.run_path(str(path), run_name="not_main")
    assert module.get("__doc__") and "Run:" in module["__doc__"], path.name
    assert callable(module.get("main")), path.name
    assert 'if __name__ == "__main__":' in source, path.name


def _main(name):
    return runpy.run_path(str(ROOT / "examples" / name), run_name="example")["main"]


def _check_png(path):
    assert path.exists(), path
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000, (path, len(data))


def test_sigmoid_plot(tmp_path, capsys):
    out = tmp_path / "sigmoid.png"
    _main("sigmoid.py")(["--plot", str(out)])
    _check_png(out)
    assert str(out) in capsys.readouterr().out


@pytest.mark.skipif(renderer() is None, reason="needs graphviz-pure or the system's dot")
def test_apple_graph_pictures(tmp_path, capsys):
    _main("apple.py")(["--out", str(tmp_path)])
    svg = (tmp_path / "apple.svg").read_text()
    # the notes' figure: values 100, 2, 200, 1.1, 220 forward; gradients 2.2, 110, 1.1, 200, 1 backward
    for number in ("100", "200", "220", "2.2", "110", "200", "1.1"):
        assert f">{number}<" in svg, number
    assert (tmp_path / "apple_and_orange.png").read_bytes()[:4] == b"\x89PNG"


def test_numeric_vs_reverse_plot(tmp_path, capsys):
    out = tmp_path / "timing.png"
    _main("numeric_vs_reverse.py")(["--sizes", "10", "30", "300", "--repeats", "1", "--plot", str(out)])
    _check_png(out)
    text = capsys.readouterr().out
    assert str(out) in text and "reverse" in text


@pytest.mark.slow  # 13 s, most of it the cross-check that test_example_runs[mlp_digits] runs too
def test_mlp_digits_epochs_option(capsys):
    _main("mlp_digits.py")(["--epochs", "1"])
    assert "training loss" in capsys.readouterr().out


def test_example_from_the_repository_root():
    # the scripts also run as plain scripts, from the repository root
    done = subprocess.run([sys.executable, "examples/apple.py"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "apple and orange" in done.stdout
