"""How the controller's process uses Python's cyclic garbage collector.

The desired state is millions of small objects at the largest sizes (four
million flows at 100,000 ports), made in bursts: a bridge's tables compiled
when it connects, a topology's views. Python runs a full collection, which
walks every object the process holds, whenever the objects that survived the
young generations have grown by a quarter and ten middle-generation
collections have passed: ten of them while one fabric of 20,000 guests was
compiled, half of its compile time, each a pause of every thread for up to a
second. A full collection now waits for a thousand middle-generation ones
(seven million surviving allocations); the young generations, whose pauses
are short enough for a switch-over to wait on, are collected as before. What
start-up made is frozen out of every collection once the controller runs
(daemon.py).
"""

from __future__ import annotations

import gc

YOUNG, MIDDLE = 700, 10  # Python's defaults: short pauses, often
FULL_AFTER_MIDDLE = 1000  # Python's default is 10


def tune_collector() -> None:
    gc.set_threshold(YOUNG, MIDDLE, FULL_AFTER_MIDDLE)
