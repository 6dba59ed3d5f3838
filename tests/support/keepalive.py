"""An OpenAI-compatible provider that keeps connections alive, and counts them.

werkzeug's development server (LiveServer) closes every connection after a streamed
response, so connection reuse cannot be seen through it. `KeepAliveProvider` is a plain
`http.server` on HTTP/1.1 that answers chat completions (streamed with chunked encoding, as
real providers do: one chunk per event, the body's terminator written on its own after
`[DONE]`) and the model list, and counts the TCP connections it accepted.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.waiting import wait_for

MODEL = "keepalive-model"
PIECES = ["Connections ", "are ", "reused."]
REPLY = "".join(PIECES)
HOLD_INTERVAL = 0.05
USAGE = {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


class KeepAliveProvider:
    """The provider on a free loopback port. `hold_after_done`: keep a stream's body open
    after `[DONE]` (never writing its terminator), like a provider that does not end its
    body; `hold_before_done`: the same before `[DONE]`, so a reply stays mid-stream until
    the client hangs up (noted in `left_at`)."""

    def __init__(self) -> None:
        self.accepted = 0
        self.open_streams = 0
        self.hold_after_done = False
        self.hold_before_done = False
        # Hang up on this many requests that come on a connection which already served one,
        # without reading or answering them: a keep-alive timer that ran out just then.
        self.hang_up_on_reused = 0
        # Hang up on this many requests that open a connection, after reading them whole:
        # a provider that failed while it worked on the request.
        self.hang_up_on_new = 0
        # Say nothing to a request on a reused connection (no headers even) until the
        # client hangs up (noted in `left_at`) or the provider stops: a slow first token.
        self.silent_on_reused = False
        self.requests = 0  # chat requests that reached the provider
        # What ends each SSE line: "\n", or "\r\n" as some servers write.
        self.line_end = "\n"
        self.stopping = threading.Event()
        # When (time.monotonic()) each client that hung up on a stream before its end left.
        self.left_at: list[float] = []
        self._lock = threading.Lock()
        self._server = _Server(self)
        self.url = f"http://127.0.0.1:{self._server.server_port}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> KeepAliveProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()
        # Handler threads end once their clients hang up or a held stream is released.
        assert wait_for(lambda: self.open_streams == 0, timeout=10), "a stream never ended"

    def count_connection(self) -> None:
        with self._lock:
            self.accepted += 1

    def take_hang_up_on_reused(self) -> bool:
        with self._lock:
            self.hang_up_on_reused, hang_up = _take(self.hang_up_on_reused)
            return hang_up

    def take_hang_up_on_new(self) -> bool:
        with self._lock:
            self.hang_up_on_new, hang_up = _take(self.hang_up_on_new)
            return hang_up

    def count_request(self) -> None:
        with self._lock:
            self.requests += 1

    def stream_opened(self, change: int) -> None:
        with self._lock:
            self.open_streams += change


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, provider: KeepAliveProvider) -> None:
        self.provider = provider
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        accepted = super().get_request()
        self.provider.count_connection()
        return accepted


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read the counts, not a request log."""

    def do_GET(self) -> None:
        models = {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0}]}
        self._json(models)

    served = 0  # requests answered on this connection

    def do_POST(self) -> None:
        self.served += 1
        provider = self.server.provider
        if self.served > 1 and provider.take_hang_up_on_reused():
            # Closed with the request unread: the client's next read meets a reset.
            self._hang_up()
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        provider.count_request()
        if self.served == 1 and provider.take_hang_up_on_new():
            self._hang_up()
            return
        if self.served > 1 and provider.silent_on_reused:
            self._say_nothing()
            return
        if body.get("stream"):
            self._stream()
            return
        message = {"role": "assistant", "content": REPLY}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        self._json(_completion("chat.completion", [choice], usage=USAGE))

    def _say_nothing(self) -> None:
        """Wait, unanswering, until the client hangs up (its end of the socket reads as
        closed) or the provider stops."""
        provider = self.server.provider
        self.close_connection = True
        while not provider.stopping.wait(HOLD_INTERVAL):
            readable, _, _ = select.select([self.connection], [], [], 0)
            if readable and not self.connection.recv(1, socket.MSG_PEEK):
                provider.left_at.append(time.monotonic())
                return

    def _hang_up(self) -> None:
        self.close_connection = True
        self.connection.close()

    def _json(self, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self) -> None:
        provider = self.server.provider
        provider.stream_opened(+1)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            end = provider.line_end
            for event in _events():
                # A comment line first, and the JSON split over two data lines: both are
                # SSE a client must read (the data lines join with a newline).
                data = json.dumps(event).replace(", ", ",\n", 1).split("\n")
                lines = [": chunk", *(f"data: {part}" for part in data)]
                self._chunk((end.join(lines) + end + end).encode())
            if provider.hold_before_done:
                self._hold()
            self._chunk(f"data: [DONE]{end}{end}".encode())
            if provider.hold_after_done:
                self._hold()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            if not provider.stopping.is_set():
                provider.left_at.append(time.monotonic())
        finally:
            provider.stream_opened(-1)

    def _hold(self) -> None:
        """Keep the body open, sending SSE comments (which a client ignores) until the
        client hangs up (the write fails: OSError) or the provider stops."""
        provider = self.server.provider
        while not provider.stopping.wait(HOLD_INTERVAL):
            self._chunk(b": still here\n\n")
        raise ConnectionAbortedError("the provider stopped")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _take(count: int) -> tuple[int, bool]:
    """One off a countdown: (what is left, whether there was one)."""
    return (count - 1, True) if count > 0 else (0, False)


def _events() -> list[dict[str, Any]]:
    deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in PIECES]
    events = [_completion("chat.completion.chunk", [_delta(delta)]) for delta in deltas]
    events.append(_completion("chat.completion.chunk", [_delta({}, "stop")]))
    events.append(_completion("chat.completion.chunk", [], usage=USAGE))
    return events


def _delta(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "finish_reason": finish_reason}


def _completion(kind: str, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": "ka-1", "object": kind, "created": 0, "model": MODEL, "choices": choices, **extra}
