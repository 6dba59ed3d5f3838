"""The app as the tests build it: the test configuration, and a real loopback server."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from flask import Flask
from werkzeug.serving import make_server

from tests.support.waiting import wait_for
from webapp import create_app
from webapp.extensions import db as _db

TEST_ENCRYPTION_KEY = "test-encryption-key-0123456789abcdef"


def make_config(database_url: str, instance_path: str, **extra: Any) -> dict[str, Any]:
    return {
        "MODELDESK_ENV": "test",
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": "test-secret-key-0123456789abcdef-sessions",
        "MODELDESK_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "INSTANCE_PATH": instance_path,
        # One pbkdf2 round instead of scrypt: hashing was a quarter of the suite's time.
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1",
        # Whatever the shell exports, the test apps share no Redis: parallel workers number
        # their replies from 1 each and sign in as the same users, so a shared reply bus or
        # rate-limit counter would mix them up. Tests that want Redis say so.
        "REDIS_URL": None,
        "RATELIMIT_STORAGE_URI": extra.get("REDIS_URL") or "memory://",
        "REPLY_BUS": "auto",
        **extra,
    }


def stop_replies(app: Flask) -> None:
    """Replies belong to the server: stop any a test left running before its tables are
    emptied, and close the app's reply bus."""
    runs = app.extensions["reply_runs"]
    runs.finish(timeout=0)
    runs.close()


@contextlib.contextmanager
def live_app(database_url: str, instance_path: str) -> Iterator[LiveServer]:
    """The app served over HTTP on a free loopback port, as one process of a deployment: its
    own replies, its own connections. Its mock provider base URL is its own address, as in
    development. On the way out it stops serving, stops the replies it still writes and
    closes its database connections."""
    served = create_app(make_config(database_url, instance_path))
    server = LiveServer(served)
    served.config["MOCK_LLM_BASE_URL"] = server.url
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            stop_replies(served)
            with served.app_context():
                _db.engine.dispose()


class LiveServer:
    """The app (or any WSGI app) served by a real threaded HTTP server on a free loopback port."""

    def __init__(self, app: Flask | Any) -> None:
        self.app = app
        # Only the app's own requests are waited for: a stub upstream touches no database.
        self._requests = _RequestCounter(app) if isinstance(app, Flask) else None
        self._server = make_server("127.0.0.1", 0, self._requests or app, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    @property
    def active_requests(self) -> list[str]:
        """ "METHOD /path" of the app's requests whose response is still open."""
        return list(self._requests.paths) if self._requests is not None else []

    def stop(self) -> None:
        """Stop serving, then wait for the requests still running to end: a reply notices a
        reader that left at its next write or heartbeat, a page may still wait on a slow
        provider, and whatever they write or hold must not outlive the test (its teardown
        empties the tables and disposes of the connections)."""
        self._server.shutdown()
        self._thread.join(timeout=5)
        requests = self._requests
        if requests is not None:
            assert wait_for(lambda: requests.active == 0, timeout=30), (
                f"requests never ended: {requests.paths}"
            )


MOCK_API_PREFIX = "/mock_llm/"


class _RequestCounter:
    """WSGI middleware counting the app's requests whose response has not been closed yet."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.paths: list[str] = []
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        return len(self.paths)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"].startswith(MOCK_API_PREFIX):
            # The mock API touches no database; a faulty reply may sleep on past its test.
            return self.app(environ, start_response)
        path = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}"
        with self._lock:
            self.paths.append(path)
        try:
            body = self.app(environ, start_response)
        except BaseException:
            self._done(path)
            raise
        return _ClosingBody(body, lambda: self._done(path))

    def _done(self, path: str) -> None:
        with self._lock:
            self.paths.remove(path)


class _ClosingBody:
    """A response body that reports once the app's work on it is over: when it has been
    read to its end (a generator's cleanup has run by then) or closed (the client left).
    The end counts because werkzeug closes a body only after draining whatever the client
    sent past the request, which waits for the browser to hang up."""

    def __init__(self, body: Any, on_done: Any) -> None:
        self._body = body
        self._on_done = on_done
        self._reported = False

    def __iter__(self) -> Any:
        yield from self._body
        self._report()

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._report()

    def _report(self) -> None:
        if not self._reported:
            self._reported = True
            self._on_done()
