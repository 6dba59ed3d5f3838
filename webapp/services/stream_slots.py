"""A per-process cap on concurrent chat streams.

Each open stream holds a server thread for its whole duration. Past the cap a new reply is
refused at once with "busy, try again" rather than queueing behind the others until the
thread pool is exhausted and every page of this process stalls.
"""

from __future__ import annotations

import threading

from flask import Flask, current_app


class StreamSlots:
    """A counting semaphore that says no instead of waiting."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit)

    def try_acquire(self) -> bool:
        return self._free.acquire(blocking=False)

    def release(self) -> None:
        self._free.release()


def init_stream_slots(app: Flask) -> None:
    app.extensions["stream_slots"] = StreamSlots(max(1, int(app.config["MAX_CONCURRENT_STREAMS"])))


def stream_slots() -> StreamSlots:
    return current_app.extensions["stream_slots"]
