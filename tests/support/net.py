"""Loopback addresses for tests."""

from __future__ import annotations

import socket
import threading
import time


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connecting is refused at once."""
    return f"http://127.0.0.1:{free_port()}"


class SilentUpstream:
    """A provider that accepts a request and never answers a byte: it only notes when the
    client closes the connection (the moment a cancelled call really ends)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.requests = 0
        self.closed_at: list[float] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # stopped
            threading.Thread(target=self._hold, args=(connection,), daemon=True).start()

    def _hold(self, connection: socket.socket) -> None:
        with connection:
            try:
                if connection.recv(65536):
                    with self._lock:
                        self.requests += 1
                while connection.recv(65536):
                    pass  # the rest of the request; then only the close counts
            except OSError:
                pass
            with self._lock:
                self.closed_at.append(time.monotonic())

    def stop(self) -> None:
        self._listener.close()
