"""Threads that give way at every bytecode of the functions under test.

A read-modify-write of a counter that no lock guards loses updates when two
threads interleave inside it; CPython's interpreter lock makes that rare enough
that a plain test with threads never sees it. Giving way at every bytecode of
the code under test makes it certain, so such a test fails without the lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def giving_way_in(*functions: Callable) -> Iterator[None]:
    """Threads started inside the block give way at every bytecode of `functions`."""
    codes = {f.__code__ for f in functions}

    def give_way(frame, event, arg):
        if event == "opcode":
            time.sleep(0)  # lets another thread take the interpreter here
        return give_way

    def on_call(frame, event, arg):
        if frame.f_code not in codes:
            return None
        frame.f_trace_opcodes = True
        return give_way

    threading.settrace(on_call)
    try:
        yield
    finally:
        threading.settrace(None)


def run_in_threads(count: int, work: Callable[[int], object], timeout: float = 30.0) -> None:
    """`work(n)` on `count` threads at once (n = 0..count-1); every one must end within
    `timeout`, and what one raises is raised here."""
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            work(n)
        except BaseException as error:  # handed to the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"threads still running after {timeout}s"
    if errors:
        raise errors[0]
