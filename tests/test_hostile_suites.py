"""Hostile input to ``diffkit suite``: suite files, results files and reports, as an attacker or an unlucky user.

Every wrong suite file is a clean :class:`~diffkit.DiffkitError` naming the
file, the case and the key (``diffkit suite``: exit 2, no traceback); nothing a
suite names is imported for ``--list``, loading or ``--no-import`` (a module
that writes a sentinel file on import proves it); a results file's bad lines
are skipped with a warning naming the line; reports render any case escaped
for their format. ``test_battery_size`` counts the inputs. The heavier forms
(a case per rendering format, more modules) run under ``-m slow``.
"""

from __future__ import annotations

import json
import math
import os
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import diffkit as dk
from diffkit.cli import app
from diffkit.harness.cases import Case, fingerprint
from diffkit.harness.report import (
    Reference,
    Report,
    Row,
    from_dict,
    from_json,
    suite_to_html,
    suite_to_json,
    suite_to_markdown,
    to_dict,
)
from diffkit.harness.results import ResultsFile, check_record, read_results
from diffkit.harness.runner import SuiteResult, run_suite
from diffkit.harness.suites import LIMITS, load_toml
from diffkit.harness.suites import suite as suite_by_name

runner = CliRunner()

BASE = {"id": '"c"', "f": '"x*y"', "at": "{ x = 1.0, y = 2.0 }"}


def _body(**keys: str | None) -> str:
    """A one-case suite: the base case with keys replaced (None drops a key)."""
    entry = {**BASE, **keys}
    return "[[case]]\n" + "".join(f"{k} = {v}\n" for k, v in entry.items() if v is not None)


LONG = "x" * (LIMITS["text"] + 1)

# (key named in the message, TOML body)
WRONG_KEYS: list[tuple[str, str]] = []
for v in ["5", "1.5", "true", "[1]", "{ a = 1 }", '""', '"a\\nb"', '"tab\\there"', '"nul\\u0000"',
          '"' + "i" * (LIMITS["id"] + 1) + '"', '"   "', "1979-05-27"]:
    WRONG_KEYS.append(("id", _body(id=v)))
for v in ["5", "true", "[]", "{}", '""', '"   "', f'"{LONG}"', "\"__import__('os')\"", "\"open('x')\"",
          '"x.__class__"', '"lambda: 1"', '"x[0:2]"', '"exec(\'1\')"', '"x if y else 1"', '"[x for x in y]"',
          '"x; y"', '"x*y @@ 2"', '"os.system(\'true\')"']:
    WRONG_KEYS.append(("f", _body(f=v)))
for v in ["5", '"x"', "[1.0, 2.0]", '{ x = "a", y = 1.0 }', "{ x = true, y = 1.0 }", "{ x = 1.0 }",
          "{ x = 1.0, y = 2.0, z = 3.0 }", "{ x = [], y = 1.0 }", "{ x = [[1.0], [1.0, 2.0]], y = 1.0 }",
          "{ x = [[[[[1.0]]]]], y = 1.0 }", "{ x = { a = 1 }, y = 1.0 }", "{ x = 1" + "0" * 400 + ", y = 1.0 }",
          "{ x = 1.0, y = [1.0, \"a\"] }", "{ x = 1979-05-27, y = 1.0 }", "{ \"x y\" = 1.0, y = 1.0 }"]:
    WRONG_KEYS.append(("at", _body(at=v)))
for v in ["5", '"x"', "{ a = 1 }", "[1.0]", "[1.0, 2.0, 3.0]", '[1.0, "a"]', "[1.0, true]", "[1.0, []]",
          "[1.0, [1.0, [2.0]]]", "[1.0, 1" + "0" * 400 + "]", "[1.0, { a = 1 }]", "[]"]:
    WRONG_KEYS.append(("args", _body(at=None, args=v)))
for v in ["5", "[]", "[5]", '["grad", "grad"]', '["gradient"]', "true", '{ a = "grad" }', '[["grad"]]', '""',
          '["GRAD"]']:
    WRONG_KEYS.append(("op", _body(ops=v)))
for v in ["5", '"nope"', '""', "true", '"grad; rm -rf /"']:
    WRONG_KEYS.append(("op", _body(op=v)))
for v in ["-1", "2", '"0"', "true", "[]", "[0, 0]", "[0, 5]", "1.5", "[true]", "{ a = 1 }", "[-1]"]:
    WRONG_KEYS.append(("argnums", _body(argnums=v)))
for v in ["0", "-1", str(LIMITS["order"] + 1), "1.5", '"2"', "true", "1000000", "[2]", "2"]:
    WRONG_KEYS.append(("order", _body(order=v)))
for key in ("rtol", "atol"):
    for v in ["-1", "-1e-10", "nan", "inf", '"1e-10"', "true", "[1e-10]", "{ sympy = 1e-10 }",
              "{ numeric = -1 }", '{ numeric = "a" }', "{}", "-inf"]:
        WRONG_KEYS.append((key, _body(**{key: v})))
for v in ["5", "true", "[]", f'"{"n" * (LIMITS["text"] + 1)}"']:
    WRONG_KEYS.append(("note", _body(note=v)))
for v in ["5", '"kink"', "[5]", "[true]", "[[]]", '["a\\nb"]', "[" + ", ".join(['"t"'] * (LIMITS["tags"] + 1)) + "]",
          "{ a = 1 }"]:
    WRONG_KEYS.append(("tags", _body(tags=v)))
for v in ["5", '"truncation"', "[]", "{ numeric = 5 }", '{ sympy = "truncation" }', '{ numeric = "" }',
          '{ numeric = ["a"] }', "{}"]:
    WRONG_KEYS.append(("expect", _body(expect=v)))
WRONG_KEYS += [
    ("unknown keys", _body(wrt='"x"')),
    ("unknown keys", _body(colour="1")),
    ("unknown keys", _body(__import__='"os"')),
    ("not both", _body(args="[1.0, 2.0]")),
    ("not both", _body(op='"grad"', ops='["hessian"]')),
    ("give the point", _body(at=None)),
    ("needs f", _body(f=None)),
    ("elements", _body(at=None, args="[[" + ", ".join(["0.5"] * (LIMITS["elements"] + 1)) + "], 1.0]")),
]

# (message fragment, file content as bytes)
WRONG_FILES: list[tuple[str, bytes]] = [
    ("no [[case]] tables", b""),
    ("no [[case]] tables", b'title = "nothing"\n'),
    ("no [[case]] tables", b'[case]\nf = "x"\nargs = [1.0]\n'),
    ("no [[case]] tables", b"case = 5\n"),
    ("expected a [[case]] table", b"case = [5]\n"),
    ("expected a [[case]] table", b'case = ["a"]\n'),
    ("unknown top-level keys", b'title = "x"\n[[case]]\nf = "x"\nargs = [1.0]\n'),
    ("not valid TOML", b"[[case]]\nf = \n"),
    ("not valid TOML", b"[[case]\n"),
    ("not valid TOML", b'[[case]]\nf = "x"\nf = "y"\nargs = [1.0]\n'),
    ("not UTF-8", b'[[case]]\nf = "x\xff\xfe"\nargs = [1.0]\n'),
    ("not UTF-8", b"\xff\xfe[\x00[\x00"),
    ("can read", b"[[case]]\nf = \"x\"\nargs = [" + b"9" * 5000 + b"]\n"),
    ("can read", b"[[case]]\nf = \"x\"\nargs = " + b"[" * 3000 + b"]" * 3000 + b"\n"),
    ("duplicate case ids", b'[[case]]\nid = "a"\nf = "x"\nargs = [1.0]\n[[case]]\nid = "a"\nf = "x"\nargs = [2.0]\n'),
    ("duplicate case ids", (b'[[case]]\nid = "a/grad"\nf = "x"\nargs = [1.0]\n'
                            b'[[case]]\nid = "a"\nf = "x"\nargs = [1.0]\nops = ["grad", "hessian"]\n')),
    ("not valid TOML", b"[[case]]\nf = '''x\n"),
    ("not valid TOML", b"\x00\x00\x00"),
]


def _write(tmp_path: Path, content: str | bytes, name: str = "suite.toml") -> str:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return str(path)


def _flat(text: str) -> str:
    """CLI output without rich's panel borders and line wrapping."""
    return re.sub(r"\s+", " ", text.replace("│", " ").replace("╭", " ").replace("╰", " ").replace("─", ""))


def _assert_refused(path: str, needle: str) -> None:
    with pytest.raises(dk.DiffkitError) as info:
        load_toml(path)
    message = str(info.value)
    assert message.startswith(path), message
    assert needle in message, message
    result = runner.invoke(app, ["suite", path, "--jobs", "1"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, (SystemExit, type(None)))
    assert needle in _flat(result.output), result.output


def _sampled(items: list[Any], every: int, ids: list[str]) -> list[Any]:
    """Every ``every``-th item in the default run, the rest under ``-m slow``."""
    return [pytest.param(*item, id=i, marks=() if k % every == 0 else pytest.mark.slow)
            for k, (item, i) in enumerate(zip(items, ids))]


WRONG_KEY_IDS = [f"{k}-{i}" for i, (k, _) in enumerate(WRONG_KEYS)]


@pytest.mark.parametrize("key, body", WRONG_KEYS, ids=WRONG_KEY_IDS)
def test_wrong_value_is_refused_naming_file_case_and_key(tmp_path: Path, key: str, body: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(dk.DiffkitError) as info:
        load_toml(path)
    message = str(info.value)
    assert message.startswith(f"{path}: case 1"), message
    assert key in message, message


@pytest.mark.parametrize("key, body", _sampled(WRONG_KEYS, 5, WRONG_KEY_IDS))
def test_wrong_value_exits_2_without_a_traceback(tmp_path: Path, key: str, body: str) -> None:
    path = _write(tmp_path, body)
    result = runner.invoke(app, ["suite", path, "--jobs", "1"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, (SystemExit, type(None)))


@pytest.mark.parametrize("needle, content", WRONG_FILES, ids=[f"file-{i}" for i in range(len(WRONG_FILES))])
def test_wrong_file_is_refused(tmp_path: Path, needle: str, content: bytes) -> None:
    _assert_refused(_write(tmp_path, content), needle)


def test_paths_that_are_not_suite_files(tmp_path: Path) -> None:
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    _assert_refused(str(folder), "is a directory")
    _assert_refused(str(tmp_path / "missing.toml"), "no such file")
    big = tmp_path / "big.toml"
    with open(big, "wb") as fh:
        fh.truncate(LIMITS["file_bytes"] + 1)
    _assert_refused(str(big), "more than the limit")


def test_too_many_cases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(LIMITS, "cases", 20)
    n = LIMITS["cases"] // 2 + 1
    path = _write(tmp_path, "".join(f'[[case]]\nid = "c{k}"\nf = "x"\nargs = [1.0]\nops = ["grad", "jvp"]\n'
                                    for k in range(n)))
    with pytest.raises(dk.InvalidArgument, match=f"more than {LIMITS['cases']} cases"):
        load_toml(path)


@pytest.mark.slow
def test_too_many_cases_at_the_real_limit(tmp_path: Path) -> None:
    n = LIMITS["cases"] // 2 + 1
    path = _write(tmp_path, "".join(f'[[case]]\nid = "c{k}"\nf = "x"\nargs = [1.0]\nops = ["grad", "jvp"]\n'
                                    for k in range(n)))
    with pytest.raises(dk.InvalidArgument, match=f"more than {LIMITS['cases']} cases"):
        load_toml(path)


def test_hostile_but_valid_cases_load_unchanged(tmp_path: Path) -> None:
    ids = ["ü∂∫ 中文", "[bold]x[/bold]", "[/]", "[link=https://evil.example]click[/link]",
           "<script>alert(1)</script>",
           "quote\"s and 'single'", "pipe|`tick`*star*_under_", "#heading", "\u202eevil"]
    body = "".join(f"[[case]]\nid = {json.dumps(i)}\nf = \"x**2\"\nargs = [{v}]\nop = \"derivative\"\n\n"
                   for i, v in zip(ids, ["1.0", "1e308", "-1e308", "nan", "inf", "5e-324", "-0.0", "2", "3"]))
    cases = load_toml(_write(tmp_path, body))
    assert [c.id for c in cases] == ids
    listed = runner.invoke(app, ["suite", str(tmp_path / "suite.toml"), "--list"])
    assert listed.exit_code == 0 and listed.output.splitlines() == ids


# --------------------------------------------------------------------------
# Code named by a suite file: imported only in the case's process
# --------------------------------------------------------------------------

MODULES = {
    "sentinel_mod": """
        import os
        open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "SENTINEL"), "w").write("imported")
        def f(x):
            return x * x
    """,
    "hang_on_import": """
        import time
        time.sleep(600)
        def f(x):
            return x
    """,
    "crash_on_import": """
        import os
        os._exit(7)
    """,
    "exit_on_import": """
        raise SystemExit(0)
    """,
    "noisy_mod": """
        import atexit, sys
        print("noise on stdout at import")
        atexit.register(lambda: print("noise on stdout at exit"))
        def f(x):
            print("noise on stdout in f")
            return x * x
    """,
}


@pytest.fixture()
def code_dir(tmp_path: Path) -> Path:
    """A folder with hostile modules and a suite naming them (not on sys.path or PYTHONPATH)."""
    folder = tmp_path / "suitedir"
    folder.mkdir()
    for name, source in MODULES.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
    return folder


def _code_suite(folder: Path, modules: list[str]) -> str:
    body = "".join(f'[[case]]\nid = "{m}"\nf = "{m}:f"\nat = {{ x = 2.0 }}\nop = "derivative"\n\n' for m in modules)
    body += '[[case]]\nid = "plain"\nf = "x**3"\nargs = [2.0]\nop = "derivative"\n'
    return _write(folder, body, "code.toml")


def test_list_load_and_no_import_run_nothing(code_dir: Path, tmp_path: Path) -> None:
    path = _code_suite(code_dir, list(MODULES))
    sentinel = code_dir / "SENTINEL"
    cases = load_toml(path)  # would hang or die if it imported anything
    assert [c.id for c in cases] == list(MODULES) + ["plain"]
    assert all(c.at == {"x": 2.0} and c.args == () for c in cases[:-1])
    listed = runner.invoke(app, ["suite", path, "--list"])
    assert listed.exit_code == 0, listed.output
    refused = runner.invoke(app, ["suite", path, "--no-import", "--results", str(tmp_path / "r.jsonl")])
    assert refused.exit_code == 2, refused.output
    assert "--no-import" in _flat(refused.output) and "sentinel_mod" in refused.output
    assert not (tmp_path / "r.jsonl").exists()
    with pytest.raises(dk.InvalidArgument, match="imports are not allowed"):
        run_suite(cases, allow_import=False)
    assert not sentinel.exists()


def test_no_import_runs_expression_suites_and_builtin_code(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[case]]\nid = "e"\nf = "sin(x)"\nargs = [0.5]\nop = "derivative"\n')
    result = runner.invoke(app, ["suite", path, "--no-import", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    builtin = [c for c in suite_by_name("standard") if ":" in c.f and c.op == "grad"][:1]
    assert builtin and run_suite(builtin, allow_import=False).ok


def test_imports_happen_in_the_case_process_only(code_dir: Path, tmp_path: Path) -> None:
    path = _code_suite(code_dir, ["sentinel_mod", "hang_on_import", "crash_on_import", "exit_on_import",
                                  "noisy_mod"])
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the suite's folder is not the current one, nor on any path
    try:
        res = run_suite(load_toml(path), jobs=3, timeout=4.0, results=str(tmp_path / "r.jsonl"))
    finally:
        os.chdir(cwd)
    verdicts = {r["id"]: r["verdict"] for r in res.records}
    assert verdicts == {"sentinel_mod": "ok", "hang_on_import": "timeout", "crash_on_import": "error",
                        "exit_on_import": "error", "noisy_mod": "ok", "plain": "ok"}, res.records
    assert (code_dir / "SENTINEL").exists()  # imported there, by the case's process
    assert set(read_results(str(tmp_path / "r.jsonl"))) == set(verdicts)


def test_a_module_in_the_current_folder_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `diffkit suite suites/mine.toml` run from the project folder that holds the module
    # (neither next to the suite file nor on PYTHONPATH)
    project, suites = tmp_path / "project", tmp_path / "suites"
    project.mkdir()
    suites.mkdir()
    (project / "here_mod.py").write_text("import numpy as np\n\ndef f(x):\n    return np.sin(x) * x\n")
    (suites / "mine.toml").write_text('[[case]]\nid = "here"\nf = "here_mod:f"\nargs = [0.5]\n'
                                      'op = "derivative"\n')
    monkeypatch.chdir(project)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    result = runner.invoke(app, ["suite", str(suites / "mine.toml"), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert "1 ok" in " ".join(result.output.split()) and "Traceback" not in result.output


# --------------------------------------------------------------------------
# Results files
# --------------------------------------------------------------------------

GOOD = {"id": "good", "verdict": "ok", "rows": [], "elapsed": 0.1}
BAD_LINES: list[bytes] = [
    b'{"id": "apple"}', b'{"id": ["apple"], "verdict": "ok", "rows": []}', b"[1, 2]", b'"text"', b"5", b"null",
    b"true", b'{"id": "", "verdict": "ok", "rows": []}', b'{"id": "a", "verdict": "maybe", "rows": []}',
    b'{"id": "a", "verdict": "ok", "rows": {}}', b'{"id": "a", "verdict": "ok", "rows": [5]}',
    b'{"id": "a", "verdict": "ok", "rows": [{"backend": 1, "verdict": "ok"}]}',
    b'{"id": "a", "verdict": "ok", "rows": [{"backend": "numeric", "verdict": "ok", "tol_ratio": "abc"}]}',
    b'{"id": "a", "verdict": "ok", "rows": [{"backend": "numeric", "verdict": "ok", "value": ["x"]}]}',
    b'{"id": "a", "verdict": "ok", "rows": [{"backend": "numeric", "verdict": "ok", "value": 5}]}',
    b'{"id": "a", "verdict": "ok", "rows": [{"backend": "numeric", "verdict": "ok", "cause": 5}]}',
    b'{"id": "a", "verdict": "ok", "rows": [], "elapsed": "x"}',
    b'{"id": "a", "verdict": "ok", "rows": [], "elapsed": NaN}',
    b'{"id": "a", "verdict": "ok", "rows": [], "elapsed": "inf"}',
    b'{"id": "a", "verdict": "ok", "rows": [], "error": 5}',
    b'{"id": "a", "verdict": "ok", "rows": [], "case": 5}',
    b'{"id": "a", "verdict": "ok", "rows": [], "case": {"op": 5}}',
    b'{"id": "a", "verdict": "ok", "rows": [], "report": 5}',
    b'{"id": "a", "verdict": "ok", "rows": [], "report": {"schema": "diffkit.crosscheck/1"}}',
    b'{"id": "a", "verdict": "ok", "rows": [], "report": {"schema": "other"}}',
    b'{"id": "a", "verdict": "ok", "rows": [], "fingerprint": 5}',
    b"\xff\xfe\x00garbage", b'{"id": "caf\xe9", "verdict": "ok", "rows": []}', b"not json at all", b"{",
    b"[" * 100000, b'{"id": "a", "verdict": "ok", "rows": []} trailing',
]


@pytest.mark.parametrize("line", BAD_LINES, ids=[f"line-{i}" for i in range(len(BAD_LINES))])
def test_bad_line_is_skipped_with_its_line_number(tmp_path: Path, line: bytes) -> None:
    path = tmp_path / "r.jsonl"
    good2 = {**GOOD, "id": "good2"}
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + line + b"\n" + json.dumps(good2).encode() + b"\n")
    warnings: list[str] = []
    records = read_results(str(path), warn=warnings.append)
    assert set(records) == {"good", "good2"}
    assert len(warnings) == 1 and f"{path} line 2:" in warnings[0] and "skipped" in warnings[0], warnings


def test_half_written_last_line_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"\n\n" + json.dumps(GOOD).encode() + b'\n{"id": "cut", "verd')
    warnings: list[str] = []
    assert set(read_results(str(path), warn=warnings.append)) == {"good"}
    assert warnings == [f"{path} line 4: cut off (a run was killed while writing it); skipped"]


def test_results_paths_that_cannot_be_used(tmp_path: Path) -> None:
    with pytest.raises(dk.InvalidArgument, match="is a directory"):
        read_results(str(tmp_path))
    assert read_results(str(tmp_path / "missing.jsonl")) == {}
    suite = _write(tmp_path, '[[case]]\nid = "e"\nf = "x"\nargs = [1.0]\nop = "derivative"\n')
    (tmp_path / "folder.html").mkdir()
    for args, needle in [(["--results", str(tmp_path)], "is a directory"),
                         (["--results", str(tmp_path / "no" / "r.jsonl")], "does not exist"),
                         (["--out", str(tmp_path)], "the report is .html, .md or .json"),
                         (["--out", str(tmp_path / "folder.html")], "is a directory"),
                         (["--out", str(tmp_path / "r.json"), "--results", str(tmp_path / "r.json")], "same file"),
                         (["--resume"], "--resume needs --results"),
                         (["--timeout", "nan"], "--timeout"), (["--timeout", "inf"], "--timeout"),
                         (["--timeout", "0"], "--timeout"), (["--timeout", "-1"], "--timeout"),
                         (["--jobs", "0"], "--jobs"), (["--jobs", "-3"], "--jobs"), (["--jobs", "100000"], "--jobs"),
                         (["--jobs", "two"], "--jobs"), (["--out", str(tmp_path / "r.exe")], "--out")]:
        result = runner.invoke(app, ["suite", suite, *args])
        assert result.exit_code == 2, (args, result.output)
        assert needle in _flat(result.output), (args, result.output)
    if os.geteuid() != 0:  # root reads everything
        locked = tmp_path / "locked.jsonl"
        locked.write_text(json.dumps(GOOD) + "\n")
        locked.chmod(0)
        with pytest.raises(dk.InvalidArgument, match="cannot be read"):
            read_results(str(locked))


def test_existing_results_are_never_overwritten(tmp_path: Path) -> None:
    suite = _write(tmp_path, '[[case]]\nid = "e"\nf = "x**2"\nargs = [1.0]\nop = "derivative"\n')
    results = tmp_path / "r.jsonl"
    content = (json.dumps({**GOOD, "id": f"old{k}"}) + "\n" for k in range(12))
    results.write_text("".join(content))
    before = results.read_bytes()
    result = runner.invoke(app, ["suite", suite, "--results", str(results)])
    assert result.exit_code == 2 and "already holds results" in _flat(result.output)
    assert results.read_bytes() == before
    with pytest.raises(dk.InvalidArgument, match="already holds results"):
        run_suite(load_toml(suite), results=str(results))
    assert results.read_bytes() == before
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")  # an empty file holds nothing to lose
    assert runner.invoke(app, ["suite", suite, "--jobs", "1", "--results", str(empty)]).exit_code == 0
    assert list(read_results(str(empty))) == ["e"]


def test_a_held_lock_refuses_a_second_writer(tmp_path: Path) -> None:
    suite = _write(tmp_path, '[[case]]\nid = "e"\nf = "x**2"\nargs = [1.0]\nop = "derivative"\n')
    results = tmp_path / "r.jsonl"
    with ResultsFile(str(results)) as held:
        held.open()
        result = runner.invoke(app, ["suite", suite, "--results", str(results)])
        assert result.exit_code == 2
        assert f"being written by another run (pid {os.getpid()})" in _flat(result.output)
        with pytest.raises(dk.InvalidArgument, match="being written by another run"):
            ResultsFile(str(results), resume=True).open()
    assert not (tmp_path / "r.jsonl.lock").exists()
    (tmp_path / "r.jsonl.lock").write_text("999999999\n")  # a stale lock file of a dead run locks nothing
    result = runner.invoke(app, ["suite", suite, "--jobs", "1", "--results", str(results), "--resume"])
    assert result.exit_code == 0, result.output


def test_resume_reruns_records_of_another_case(tmp_path: Path) -> None:
    a = _write(tmp_path, '[[case]]\nid = "c"\nf = "x**2"\nargs = [1.0]\nop = "derivative"\n', "a.toml")
    b = _write(tmp_path, '[[case]]\nid = "c"\nf = "where(x > 0, sqrt(x), 0)"\nargs = [-1.0]\nop = "derivative"\n',
               "b.toml")
    results = str(tmp_path / "r.jsonl")
    assert runner.invoke(app, ["suite", a, "--jobs", "1", "--results", results]).exit_code == 0
    result = runner.invoke(app, ["suite", b, "--jobs", "1", "--results", results, "--resume"])
    assert result.exit_code == 1, result.output  # b's case fails when run: its result is not a's
    out = _flat(result.output)
    assert "1 cases run again: their stored records were made for a different case" in out
    assert "1 fail" in out
    again = runner.invoke(app, ["suite", b, "--jobs", "1", "--results", results, "--resume"])
    assert again.exit_code == 1 and "1 cases taken from the results file" in _flat(again.output)
    stored = read_results(results)
    assert stored["c"]["fingerprint"] == fingerprint(load_toml(b)[0]) != fingerprint(load_toml(a)[0])


def test_fingerprint_follows_the_source_of_a_module(tmp_path: Path) -> None:
    (tmp_path / "fpmod.py").write_text("def f(x):\n    return x * x\n")
    case = Case("c", "fpmod:f", (), "derivative", at={"x": 1.0}, origin=str(tmp_path / "s.toml"))
    first = fingerprint(case)
    assert fingerprint(case) == first
    (tmp_path / "fpmod.py").write_text("def f(x):\n    return x * x * x\n")
    assert fingerprint(case) != first
    for other in (Case("c", "fpmod:f", (), "derivative", at={"x": 2.0}, origin=case.origin),
                  Case("c", "fpmod:f", (), "derivative", at={"x": 1.0}, rtol=1e-3, origin=case.origin),
                  Case("c", "fpmod:f", (), "grad", at={"x": 1.0}, origin=case.origin)):
        assert fingerprint(other) != fingerprint(case)


# --------------------------------------------------------------------------
# Reports render any case
# --------------------------------------------------------------------------

HOSTILE_TEXT = ["[/]", "[link=https://evil.example]x[/link]", "[bold red]red[/]", "<script>alert(1)</script>",
                "a | b `c` *d* _e_ # f ~g~ ![i](j)", "quote\" '", "ü∂∫ 中文 \u202e", "&amp; &lt;", "line\nbreak",
                "{{ 7*7 }}", "nan"]
POINTS = [math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324]


def _report(name: str, point: list[Any]) -> Report:
    rows = [Row("numeric", "fail", [math.nan, math.inf], math.inf, math.nan, math.inf, 1e-10, 0.0, name, name, 0,
                math.nan, math.inf, None, 3, 5, math.nan, name),
            Row(name, "ok", [1.0, -math.inf])]
    return Report(name, "grad", [0], point, [2], [name, "y"], Reference(None, "none", name), rows, [name],
                  math.nan, name)


def _suite_result(name: str, point: list[Any]) -> SuiteResult:
    rep = _report(name, point)
    ok = {"id": name, "verdict": "fail", "rows": to_dict(rep)["rows"], "report": to_dict(rep), "elapsed": 0.5,
          "case": {"op": name}}
    bad = {"id": name + "/2", "verdict": "error", "rows": [], "error": name, "elapsed": 0.0, "case": {}}
    return SuiteResult(name, [ok, bad], elapsed=1.0)


def _cells(line: str) -> int:
    """Unescaped pipes of a Markdown table line (a pipe after an odd number of backslashes is text)."""
    return sum(1 for m in re.finditer(r"(\\*)\|", line) if len(m.group(1)) % 2 == 0)


def _assert_escaped(html: str, md: str, name: str) -> None:
    assert "<script>" not in html and "<script>" not in md
    if name == "{{ 7*7 }}":
        assert "{{ 7*7 }}" in html  # a value, never a template
    for line in md.splitlines():
        if line.startswith("|"):
            assert _cells(line) in (6, 12), line  # a table row keeps its cells
        else:
            assert "<" not in line and "](" not in line.replace("\\](", ""), line


RENDER = [(name, point) for point in [[p] for p in POINTS] + [[[math.nan, 1.0], [math.inf]]] for name in HOSTILE_TEXT]


@pytest.mark.parametrize("name, point", _sampled(RENDER, 3, [f"{p}-{n}" for n, p in RENDER]))
def test_every_format_renders_any_report(name: str, point: list[Any]) -> None:
    rep = _report(name, point)
    text, md, html = str(rep), rep.to_markdown(), rep.to_html()
    back = from_json(rep.to_json())  # NaN and inf as strings in standard JSON, numbers again when read
    json.loads(rep.to_json(), parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    assert str(back) == text and back.to_markdown() == md and back.to_html() == html
    assert back.function == name and back.rows[1].backend == name and back.rows[0].cause == name
    assert isinstance(back.rows[0].abs_error, float) and math.isinf(back.rows[0].abs_error)
    _assert_escaped(html, md, name)
    res = _suite_result(name, point)
    s_md, s_html, s_json = suite_to_markdown(res), suite_to_html(res), suite_to_json(res)
    _assert_escaped(s_html, s_md, name)
    data = json.loads(s_json)
    assert check_record(data["cases"][0]) is None and from_dict(data["cases"][0]["report"]).function == name


def test_nan_point_suite_renders_after_a_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import diffkit.cli

    monkeypatch.setattr(diffkit.cli, "_suite_plots", lambda result: [])  # matplotlib is tested elsewhere
    suite = _write(tmp_path, "".join(
        f'[[case]]\nid = {json.dumps(i)}\nf = "x**2"\nargs = [{v}]\nop = "derivative"\n\n'
        for i, v in [("[/]nan<script>", "nan"), ("[link=https://x]inf[/link]", "inf"), ("| pipe `x`", "-inf")]))
    results = str(tmp_path / "r.jsonl")
    first = runner.invoke(app, ["suite", suite, "--jobs", "3", "--results", results])
    assert first.exit_code in (0, 1) and "Traceback" not in first.output
    for ext in ("html", "md", "json"):  # every record now read back from the file
        out = tmp_path / f"report.{ext}"
        result = runner.invoke(app, ["suite", suite, "--results", results, "--resume", "--out", str(out)])
        assert result.exit_code == first.exit_code, result.output
        assert "3 cases taken from the results file" in _flat(result.output)
        if ext != "json":  # JSON is data: the text is kept as it is
            assert "<script>" not in out.read_text(encoding="utf-8")


def test_a_rendering_failure_keeps_the_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = _write(tmp_path, '[[case]]\nid = "e"\nf = "x**2"\nargs = [1.0]\nop = "derivative"\n')
    from diffkit.harness import report

    def broken(*a: Any, **k: Any) -> str:
        raise ValueError("Unknown format code 'g'")

    monkeypatch.setattr(report, "suite_to_markdown", broken)
    old = tmp_path / "report.md"
    old.write_text("the previous report")
    result = runner.invoke(app, ["suite", suite, "--jobs", "1", "--out", str(old)])
    assert result.exit_code == 3, result.output
    saved = tmp_path / "report.md.records.jsonl"
    assert f"the 1 records of the run are in {saved}" in _flat(result.output)
    assert list(read_results(str(saved))) == ["e"]
    assert old.read_text() == "the previous report"  # never half-written
    results = tmp_path / "r.jsonl"
    result = runner.invoke(app, ["suite", suite, "--jobs", "1", "--out", str(old), "--results", str(results)])
    assert result.exit_code == 3 and str(results) in _flat(result.output)


def test_markup_in_ids_is_printed_as_text(tmp_path: Path) -> None:
    ident = "[/][link=https://evil.example]click[/link][bold]b"
    suite = _write(tmp_path, f'[[case]]\nid = {json.dumps(ident)}\nf = "where(x > 0, sqrt(x), 0)"\n'
                             f'args = [-1.0]\nop = "derivative"\n\n')
    result = runner.invoke(app, ["suite", suite, "--jobs", "1"])
    assert result.exit_code == 1, result.output
    assert ident in result.stdout


def test_battery_size() -> None:
    n_toml = len(WRONG_KEYS) + len(WRONG_FILES) + 3 + 1 + 9  # + paths, too many cases, valid hostile ids
    n_results = len(BAD_LINES) + 1 + 16  # + half-written line, paths and options
    n_reports = len(HOSTILE_TEXT) * (len(POINTS) + 1) + 3 + 3
    n_code = len(MODULES)
    assert n_toml >= 100 and n_toml + n_results + n_reports + n_code >= 250, (n_toml, n_results, n_reports)


def test_help_says_a_suite_naming_code_is_code() -> None:
    text = _flat(runner.invoke(app, ["suite", "--help"], env={"COLUMNS": "200"}).output)
    assert "is code: it runs with your rights" in text and "--no-import" in text
    assert "never overwritten" in text and "Append" not in text
