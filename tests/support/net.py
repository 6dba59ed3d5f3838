"""Loopback addresses for tests."""

from __future__ import annotations

import contextlib
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
    """A provider that accepts a request and then goes silent — at once, or after sending
    `first_reply` (e.g. a stream's head and first chunk): it only notes when the client
    closes the connection (the moment a cancelled call really ends)."""

    def __init__(self, first_reply: bytes = b"") -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._first_reply = first_reply
        self.accepted = 0
        self.requests = 0
        self.closed_at: list[float] = []
        self._lock = threading.Lock()
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # stopped
            with self._lock:
                self.accepted += 1
                self._held.append(connection)
            threading.Thread(target=self._hold, args=(connection,), daemon=True).start()

    @property
    def open(self) -> int:
        """Connections the client has not closed yet."""
        with self._lock:
            return self.accepted - len(self.closed_at)

    def _hold(self, connection: socket.socket) -> None:
        with connection:
            try:
                if connection.recv(65536):
                    with self._lock:
                        self.requests += 1
                    connection.sendall(self._first_reply)
                while connection.recv(65536):
                    pass  # the rest of the request; then only the close counts
            except OSError:
                pass
            with self._lock:
                self.closed_at.append(time.monotonic())

    def stop(self) -> None:
        """Stop listening and drop the connections held open, so no caller waits on."""
        _close_listener(self._listener)
        with self._lock:
            held, self._held = self._held, []
        for connection in held:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class TcpProxy:
    """A loopback TCP proxy to a server (a database) that a test can cut and restore: while
    cut, open connections are dropped and new ones refused, as when the server goes away."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        if listener is not None:
            _close_listener(listener)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def _close_listener(listener: socket.socket) -> None:
    # close() alone does not wake a thread blocked in accept(): it would go on accepting.
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)
    listener.close()
