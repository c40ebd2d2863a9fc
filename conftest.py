"""Collection at the repository root: the scipy extra's modules and page are doctested only
where SciPy is installed (the test extra installs it; a bare checkout skips them)."""

import importlib.util

collect_ignore = []
if importlib.util.find_spec("scipy") is None:
    collect_ignore += ["diffkit/scipy.py", "diffkit/scipy_special.py", "docs/scipy.md"]
