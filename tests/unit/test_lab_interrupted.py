"""`lab up` stopped by a signal ends all or nothing, even when the KeyboardInterrupt its handler
raises lands where Python ignores exceptions (seen in a fresh-check: inside importlib's weakref
callback, printed as "Exception ignored in", and `lab up` went on to exit 0 with the lab up)."""

from __future__ import annotations

import gc
import os
import signal
import weakref
from pathlib import Path

import pytest

from sdnvirt.cli.lab import _interrupted_by, build


class Lab:
    """Enough of a lab: its build runs `during`, then says whether it was taken down."""

    def __init__(self, during):
        self.during = during
        self.downs = 0

    def up(self, source: Path, ssl: bool = False) -> None:
        self.during()

    def down(self) -> None:
        self.downs += 1


class Collected:
    pass


def signalled_in_a_weakref_callback() -> None:
    """SIGTERM arrives while a weakref callback runs: its KeyboardInterrupt is ignored there."""
    target = Collected()
    ref = weakref.ref(target, lambda _: os.kill(os.getpid(), signal.SIGTERM))
    del target
    gc.collect()
    assert ref() is None


@pytest.fixture
def interrupted():
    kept = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield _interrupted_by(signal.SIGINT, signal.SIGTERM)
    finally:
        for number, handler in kept.items():
            signal.signal(number, handler)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the ignored interruption
def test_an_interruption_python_ignored_still_takes_the_lab_down(interrupted):
    lab = Lab(signalled_in_a_weakref_callback)
    with pytest.raises(KeyboardInterrupt):
        build(lab, Path("lab.yaml"), False, interrupted)
    assert interrupted.is_set() and lab.downs == 1


def test_an_interruption_raised_where_it_counts_is_the_builds_own(interrupted):
    def stopped() -> None:
        os.kill(os.getpid(), signal.SIGINT)  # Lab.up's own cleanup takes care of it

    lab = Lab(stopped)
    with pytest.raises(KeyboardInterrupt):
        build(lab, Path("lab.yaml"), False, interrupted)
    assert lab.downs == 0


def test_an_uninterrupted_build_is_left_up(interrupted):
    lab = Lab(lambda: None)
    build(lab, Path("lab.yaml"), False, interrupted)
    assert not interrupted.is_set() and lab.downs == 0
