"""Waiting in tests for something that happens on another thread or in another process."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    timeout: float = 30.0,
    what: str = "the condition never held",
    *,
    every: float = 0.2,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Return the condition's first true value, asking every `every` seconds; fail the test after `timeout`.

    An exception of a type in `ignoring` (a server not up yet) counts as not yet.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except ignoring:
            pass
        else:
            if value:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} (waited {timeout:g}s)")
        time.sleep(every)
