"""diffkit's own tests run Hypothesis with the ``diffkit-ci`` profile unless another is chosen.

``--hypothesis-profile=thorough`` (or ``--diffkit-thorough``) overrides it: Hypothesis's
plugin loads the chosen profile after this file is imported. The profiles are
registered by :mod:`diffkit.pytest_plugin` (also when that plugin is not installed
as an entry point, e.g. in a source checkout without ``pip install -e .``).
"""

from diffkit.pytest_plugin import CI_PROFILE, register_profiles

try:
    from hypothesis import settings
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    settings = None

if settings is not None and register_profiles():
    settings.load_profile(CI_PROFILE)


def pytest_configure(config):  # type: ignore[no-untyped-def]
    # In a checkout where the entry point is not installed, register the plugin here
    # so that its fixtures (``backends``) exist; installed, it is registered already.
    import diffkit.pytest_plugin as plugin

    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, "diffkit")


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    # Tests marked slow (the full fault battery, the full benchmarks) run under -m slow;
    # each has a small form that runs by default, so CI covers every check in some size.
    import pytest

    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="the full form runs under -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
