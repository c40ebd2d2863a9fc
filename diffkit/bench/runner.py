"""One benchmark run: every section in one process, as a JSON-able dict.

The sections are independent modules (``ad``: diffkit against autograd, JAX
and PyTorch; ``numeric``: accuracy against numdifftools and
scipy.differentiate; ``symbolic``: setup, call time and expression size).
A section that fails is recorded with its error and the run goes on.
"""

from __future__ import annotations

import importlib
import time
import traceback
from typing import Any, Callable, Sequence

from ..errors import InvalidArgument
from .report import SCHEMA, machine, targets

SECTIONS: dict[str, str] = {"ad": "diffkit.bench.ad", "numeric": "diffkit.bench.accuracy",
                            "symbolic": "diffkit.bench.symbolic"}
"""Section name -> module with ``run(quick, progress=None) -> list[dict]``."""


def run(quick: bool = False, sections: Sequence[str] | None = None, peers: bool = True,
        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure the sections and return the run (schema ``diffkit.bench/1``).

    Args:
        quick: shorter time budgets and fewer sizes (``diffkit bench --quick``).
        sections: which of :data:`SECTIONS` to run; all by default.
        peers: also measure the other tools that are installed.
        progress: called with a short message as each part starts.
    """
    chosen = list(SECTIONS) if sections is None else list(sections)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        raise InvalidArgument(f"diffkit bench: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    t0 = time.perf_counter()
    out: dict[str, Any] = {"schema": SCHEMA, "quick": quick, "peers": peers, "sections": {}, "errors": {}}
    tools: list[dict[str, Any]] = []
    for name in chosen:
        if progress:
            progress(name)
        module = importlib.import_module(SECTIONS[name])
        try:
            kwargs: dict[str, Any] = {"progress": progress}
            if name == "ad":
                from . import peers as _peers

                kwargs["tools"] = _peers.available_tools(include_peers=peers)
                tools = [{"name": t.name, "version": t.version} for t in kwargs["tools"]]
            elif not peers:
                kwargs["peers"] = False
            out["sections"][name] = module.run(quick, **kwargs)
        except Exception as e:  # noqa: BLE001 - one broken section must not lose the others
            out["errors"][name] = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"
    for r in out["sections"].get("numeric", []):
        if r.get("method") and r.get("version"):
            tools.append({"name": r["method"], "version": r["version"]})
    out["machine"] = machine(tools)
    out["seconds"] = time.perf_counter() - t0
    out["targets"] = targets(out)
    return out
