"""Reply limits: how many replies a process, and each user, may stream at once, and how
long and large one reply may grow.

`replies.init_replies` puts one of each on the app; `replies.open_reply` takes a stream slot
and a user's slot before it claims a reply, and the `ReplyStream` enforces the `ReplyLimits`.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass


class StreamSlots:
    """A counting semaphore that says no instead of waiting.

    Each open stream holds a server thread for its whole duration. Past the cap a new reply
    is refused at once rather than queueing until the thread pool is exhausted and every
    page of this process stalls.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self.open >= self.limit:
                return False
            self.open += 1
            return True

    def release(self) -> None:
        with self._lock:
            if self.open <= 0:
                raise ValueError("released more stream slots than were taken")
            self.open -= 1


class UserStreams:
    """How many replies each user has streaming in this process, capped per user, so one
    person's tabs cannot take every stream slot."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[int] = Counter()
        self._lock = threading.Lock()

    def try_acquire(self, user_id: int) -> bool:
        with self._lock:
            if self._open[user_id] >= self.limit:
                return False
            self._open[user_id] += 1
            return True

    def release(self, user_id: int) -> None:
        with self._lock:
            self._open[user_id] -= 1
            if self._open[user_id] <= 0:
                del self._open[user_id]


@dataclass(frozen=True)
class ReplyLimits:
    """How long and how large one reply may grow, and how often a silent one is pinged."""

    max_seconds: float = 600.0
    max_chars: int = 200_000
    heartbeat_seconds: float = 1.0
