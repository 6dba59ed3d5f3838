"""Waiting for something another thread or process does: poll with a deadline, never sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Generous: CI is a loaded 2-core box, and a passing wait returns as soon as it can.
DEFAULT_TIMEOUT = 10.0


def wait_for(
    condition: Callable[[], T], timeout: float = DEFAULT_TIMEOUT, interval: float = 0.02
) -> T:
    """Call `condition` until it returns something truthy or `timeout` seconds have passed.

    Returns the last value, so the caller asserts on it: a deadline that passes fails the
    test's own assertion instead of hanging. `timeout=0` checks once.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
