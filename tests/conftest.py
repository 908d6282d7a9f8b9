"""Options every test can see, and the seed of the tests' order."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite the golden files from what the code makes now (refused in CI)")


@pytest.fixture
def update_golden(request) -> bool:
    """Whether to rewrite golden files instead of comparing with them: only on a person's word."""
    asked = request.config.getoption("--update-golden")
    if asked and os.environ.get("CI"):
        pytest.fail("golden files are never rewritten in CI")
    return asked


def pytest_sessionstart(session) -> None:
    """pytest-randomly runs the tests in an order drawn from a seed and says it in the header,
    which `-q` (as `make test` runs) leaves out: say it anyway, so that an order that fails can
    be run again (`pytest -p randomly --randomly-seed=N`)."""
    config = session.config
    seed = getattr(config.option, "randomly_seed", None)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if seed is not None and reporter is not None and config.get_verbosity() < 0:
        reporter.write_line(f"Using --randomly-seed={seed}")
