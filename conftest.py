"""Collection at the repository root: the scipy extra's modules and page are doctested only
where SciPy is installed (the test extra installs it; a bare checkout skips them)."""

import importlib.util

collect_ignore = []
if importlib.util.find_spec("scipy") is None:
    collect_ignore += ["diffkit/scipy.py", "diffkit/scipy_special.py", "docs/scipy.md"]


def pytest_configure(config):
    # With -n, let idle workers steal queued tests: a few long tests (examples, fault
    # battery) otherwise leave one worker waiting at the end (112 s instead of 123 s on 2 cores).
    if getattr(config.option, "dist", None) == "load" and getattr(config.option, "numprocesses", None):
        config.option.dist = "worksteal"
