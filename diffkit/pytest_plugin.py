"""diffkit's pytest plugin: ``backends`` and ``check_gradient`` fixtures and two Hypothesis profiles.

Registered as the ``pytest11`` entry point ``diffkit`` (pyproject.toml), so it
loads in every pytest run where diffkit is installed. It therefore only
defines things: the fixture is used only by tests that ask for it, the
profiles are registered but never loaded unless asked for, and Hypothesis is
imported only if it is installed.

* fixture ``backends``: a test that takes it runs once per name of
  :func:`diffkit.backends` (``"symbolic"``, ``"numeric"``, ``"forward"``,
  ``"reverse"``)::

      def test_square(backends):
          assert dk.grad(lambda x: x * x, backend=backends)(3.0) == 6.0

* fixture ``check_gradient``: :func:`diffkit.testing.check_gradient`, so a
  gradient written by hand or by another framework is one line to test::

      def test_my_gradient(check_gradient):
          check_gradient(loss, my_loss_grad, points=[(w0, x0), (w1, x1)])

* Hypothesis profiles: ``diffkit-ci`` (derandomized, so every run draws the
  same examples; ``max_examples`` from the environment variable
  ``DIFFKIT_HYPOTHESIS_EXAMPLES``, default 100; no deadline) and
  ``thorough`` (5,000 examples, random, no deadline). Choose one with
  Hypothesis's own ``--hypothesis-profile=thorough``, or ``--diffkit-thorough``.

Example:
    >>> from diffkit.pytest_plugin import register_profiles, ci_examples
    >>> register_profiles()
    ('diffkit-ci', 'thorough')
    >>> ci_examples({"DIFFKIT_HYPOTHESIS_EXAMPLES": "25"}), ci_examples({})
    (25, 100)
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Mapping

import pytest

CI_PROFILE = "diffkit-ci"
THOROUGH_PROFILE = "thorough"
THOROUGH_EXAMPLES = 5000
ENV_EXAMPLES = "DIFFKIT_HYPOTHESIS_EXAMPLES"


def ci_examples(environ: Mapping[str, str] | None = None) -> int:
    """``max_examples`` of the ``diffkit-ci`` profile: ``$DIFFKIT_HYPOTHESIS_EXAMPLES``, default 100.

    A value that is not a positive integer is ignored with a warning: the plugin
    loads in every pytest run and must not break one.
    """
    env = os.environ if environ is None else environ
    raw = env.get(ENV_EXAMPLES, "").strip()
    if raw:
        try:
            n = int(raw)
            if n >= 1:
                return n
        except ValueError:
            pass
        warnings.warn(f"{ENV_EXAMPLES}={raw!r} is not a positive integer; using 100", stacklevel=2)
    return 100


def register_profiles() -> tuple[str, ...]:
    """Register the ``diffkit-ci`` and ``thorough`` Hypothesis profiles (loading neither).

    Returns the names registered; none when Hypothesis is not installed.
    """
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:
        return ()
    # Drawing a function and a point inside its domain filters some points out,
    # and one symbolic derivative can take a while: neither is a test problem.
    common: dict[str, Any] = dict(deadline=None, print_blob=True,
                                  suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile(CI_PROFILE, derandomize=True, database=None,
                              max_examples=ci_examples(), **common)
    # Random (not derandomized): every thorough run explores new examples. No example
    # database: a failure prints its blob (@reproduce_failure) and nothing is written.
    settings.register_profile(THOROUGH_PROFILE, max_examples=THOROUGH_EXAMPLES, database=None, **common)
    return (CI_PROFILE, THOROUGH_PROFILE)


register_profiles()


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("diffkit")
    group.addoption("--diffkit-thorough", action="store_true", default=False,
                    help=f"load the Hypothesis profile '{THOROUGH_PROFILE}' "
                         f"({THOROUGH_EXAMPLES} examples per property; "
                         f"same as --hypothesis-profile={THOROUGH_PROFILE})")


@pytest.hookimpl(trylast=True)
def pytest_configure(config: Any) -> None:
    # trylast: after Hypothesis's own plugin has loaded any --hypothesis-profile
    if config.getoption("diffkit_thorough", default=False):
        from hypothesis import settings

        settings.load_profile(THOROUGH_PROFILE)


def pytest_generate_tests(metafunc: Any) -> None:
    if "backends" in metafunc.fixturenames and not _parametrized_by_test(metafunc, "backends"):
        from .backends import backends as names

        metafunc.parametrize("backends", list(names()), indirect=True)


def _parametrized_by_test(metafunc: Any, name: str) -> bool:
    """Whether the test parametrizes ``name`` itself (``@pytest.mark.parametrize("backends", ...)``)."""
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if name in names:
            return True
    return False


@pytest.fixture
def check_gradient() -> Any:
    """:func:`diffkit.testing.check_gradient`: ``check_gradient(f, grad_f, points, op=..., argnums=...)``
    raises an AssertionError naming the point, element, values and cause where ``grad_f`` is wrong."""
    from .testing import check_gradient as check

    return check


@pytest.fixture
def backends(request: Any) -> str:
    """The name of one backend; a test taking this fixture runs once per backend."""
    return str(request.param)
