"""Reply limits: how many replies a process, and each user, may stream at once, how many
it starts at once, and how long and large one reply may grow.

`replies.init_replies` puts one of each on the app; `replies.open_reply` takes a stream slot
and a user's slot before it claims a reply, passes the `StartGate` to claim and set it up,
and the `ReplyStream` enforces the `ReplyLimits`.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
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


class StartGate:
    """How many replies this process sets up at once (claim, history, request): the rest wait
    their turn, in order.

    Starting a reply is CPU work (and one database round trip) before its first token; a
    burst of new replies all doing it at once shares the CPU (and the GIL) among themselves,
    so every one of them gets its first token late — and overflows the connection pool, whose
    extra connections cost a connect each. Taken in turns, each start finishes quickly and
    its reply streams while the next one starts.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._free = limit
        self._waiting: deque[threading.Event] = deque()

    def acquire(self, timeout: float) -> bool:
        """Take a place, waiting in line up to `timeout` seconds; False when the wait ran out
        (the place in line is then given up)."""
        with self._lock:
            if self._free > 0 and not self._waiting:
                self._free -= 1
                return True
            turn = threading.Event()
            self._waiting.append(turn)
        if turn.wait(timeout):  # the leaving holder handed its place over (FIFO)
            return True
        with self._lock:
            if turn.is_set():  # handed over just as the wait ran out
                return True
            self._waiting.remove(turn)
            return False

    def release(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._free += 1

    @property
    def queued(self) -> int:
        """How many starts wait their turn now."""
        with self._lock:
            return len(self._waiting)

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._free += 1


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
