"""Reading a provider's stream on a thread of its own, so the response thread can wait with
a timeout: while the provider is silent it can still write (a heartbeat is how a client that
went away is noticed), enforce a time limit, or cancel the call."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol


class ClosableIterator(Protocol):
    def __iter__(self) -> Iterator[Any]: ...

    def close(self) -> None: ...


class _Workers:
    """Daemon threads kept for the next pump once theirs ends: starting a thread makes the
    caller wait until the new thread runs, milliseconds on a busy server, before the first
    byte of every reply. Daemons, so a pump stuck on a silent provider never holds up exit."""

    def __init__(self) -> None:
        self._tasks: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def run(self, task: Callable[[], None]) -> None:
        with self._lock:
            start_one = self._idle == 0
            self._idle -= 0 if start_one else 1
        self._tasks.put(task)
        if start_one:
            threading.Thread(target=self._work, name="pump", daemon=True).start()

    def _work(self) -> None:
        while True:
            self._tasks.get()()
            with self._lock:
                self._idle += 1


_workers = _Workers()


def in_background(task: Callable[[], None]) -> None:
    """Run `task` on one of the kept daemon threads (started when none is idle)."""
    _workers.run(task)


class Pump:
    """Reads `items` on a thread of its own into a queue. Only that thread iterates (and
    closes) `items`; the reader takes them with `next(timeout)` or `batch(timeout)`."""

    END = object()

    def __init__(self, items: ClosableIterator) -> None:
        self._items = items
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        _workers.run(self._run)

    def _run(self) -> None:
        try:
            for item in self._items:
                self._queue.put(item)
        except Exception as error:  # handed to the reading thread, which decides
            self._queue.put(error)
        finally:
            self._items.close()
            self._queue.put(self.END)

    def batch(self, timeout: float) -> list[Any]:
        """Every item waiting now, at least one (an exception and END count as items), or
        [] when `timeout` passed first: a reader that writes them out at once makes one
        write, not one per item, when the provider sends several together."""
        first = self.next(timeout)
        if first is None:
            return []
        items = [first]
        while first is not self.END:
            try:
                first = self._queue.get_nowait()
            except queue.Empty:
                break
            items.append(first)
        return items

    def next(self, timeout: float) -> Any:
        """The next item, an exception, END, or None when `timeout` passed first."""
        try:
            return self._queue.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
