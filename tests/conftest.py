"""Options every test can see, the seed of the tests' order, and what a failed lab test's
controller said."""

from __future__ import annotations

import os
from collections import deque

import pytest

from sdnvirt.lab.lab import Lab

LOG_TAIL = 60  # lines of a lab's controller log shown with a test of it that failed


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A lab test that fails shows the end of its lab's controller log with the failure: CI keeps
    nothing else, and a failure that comes once in many runs must say why the first time."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed or call.when == "teardown":
        return
    for lab in {id(v): v for v in getattr(item, "funcargs", {}).values() if isinstance(v, Lab)}.values():
        log = lab.paths.controller_log
        if log.is_file():
            with log.open(errors="replace") as lines:
                report.sections.append((f"lab {lab.name}: the last {LOG_TAIL} lines of {log}",
                                        "".join(deque(lines, LOG_TAIL))))
