"""MkDocs hook: draw the site's figures (``docs/figures.py``) before each build.

``on_pre_build`` runs before MkDocs collects the documentation files, so the
figures written into ``docs/img/generated/`` are part of the build, and a
page that shows one never shows a stale picture. The script runs in a child
process with the same Python: a failure stops the build with its output.

Under ``mkdocs serve`` the figures are drawn once, at the first build (the
folder is inside docs/, so redrawing on every rebuild would trigger another
rebuild). Set ``DIFFKIT_DOCS_FIGURES=0`` to reuse the figures already on disk
(a quick rebuild while editing text; the build fails if one is missing).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.figures")
_DRAWN = "DIFFKIT_DOCS_FIGURES_DRAWN"
"""Set in this process once the figures are drawn: ``mkdocs serve`` reloads this hook with the config."""


def on_pre_build(config: Any, **kwargs: Any) -> None:
    """Run ``docs/figures.py --out docs/img/generated`` unless already done in this process."""
    if os.environ.get(_DRAWN) or os.environ.get("DIFFKIT_DOCS_FIGURES") == "0":
        return
    from mkdocs.exceptions import PluginError

    docs = Path(config["docs_dir"])
    out = docs / "img" / "generated"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(docs / "figures.py"), "--out", str(out)],
                          capture_output=True, text=True, cwd=docs.parent)
    if proc.returncode != 0:
        raise PluginError(f"docs/figures.py failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    for line in proc.stdout.splitlines():
        log.info(line)
    log.info(f"figures drawn in {time.perf_counter() - t0:.1f} s")
    os.environ[_DRAWN] = "1"
