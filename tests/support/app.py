"""The app as the tests build it: the test configuration, and a real loopback server."""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask
from werkzeug.serving import make_server

from tests.support.waiting import wait_for

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
        **extra,
    }


class LiveServer:
    """The app (or any WSGI app) served by a real threaded HTTP server on a free loopback port."""

    def __init__(self, app: Flask | Any) -> None:
        self.app = app
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, then wait for the replies still open to end: a reply notices a
        reader that left at its next write or heartbeat and then saves itself, which must
        not race the test's teardown emptying the tables."""
        self._server.shutdown()
        self._thread.join(timeout=5)
        slots = getattr(self.app, "extensions", {}).get("stream_slots")
        if slots is not None:
            assert wait_for(lambda: slots.open == 0, timeout=20), "a reply never ended"
