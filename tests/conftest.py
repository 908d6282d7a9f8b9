"""Options every test can see."""

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
