"""Password hashing and checking, a bounded number at a time.

One scrypt check costs ~116 ms of CPU and 32 MiB here: a storm of sign-ins (200 at once)
would take GiBs of memory and starve every other page of CPU. Every hash and every check of
a password — sign-in, set-up, a new or reset password, a new user — takes a slot of the
app's `PasswordGate` (one app per server process: the gate is process-wide), which has
MAX_PASSWORD_CHECKS slots (default: the number of cores). Past it a request waits up to
PASSWORD_CHECK_WAIT_SECONDS for a slot, then is refused with `PasswordChecksBusy` instead of
queueing without end. The hash parameters are unchanged.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from flask import Flask, current_app, has_app_context
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.config import DEFAULT_PASSWORD_CHECK_WAIT_SECONDS, cpu_cores

# What a refused request is told to wait before trying again.
RETRY_AFTER_SECONDS = 5


class PasswordChecksBusy(Exception):
    """Every slot stayed taken for the whole wait: the person should try again shortly."""


class PasswordGate:
    """A semaphore of `slots` with a bounded wait, and a count of who is waiting."""

    def __init__(self, slots: int, wait_seconds: float) -> None:
        self.slots = slots
        self.wait_seconds = wait_seconds
        self.waiting = 0
        self._semaphore = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one slot inside; PasswordChecksBusy when none freed up within the wait."""
        with self._lock:
            self.waiting += 1
        try:
            acquired = self._semaphore.acquire(timeout=self.wait_seconds)
        finally:
            with self._lock:
                self.waiting -= 1
        if not acquired:
            raise PasswordChecksBusy(
                f"all {self.slots} password check slots stayed busy for {self.wait_seconds:g} s"
            )
        try:
            yield
        finally:
            self._semaphore.release()


# Outside an app (a script hashing a password): a gate of its own, as wide as the machine.
_outside_app = PasswordGate(cpu_cores(), DEFAULT_PASSWORD_CHECK_WAIT_SECONDS)


def init_password_gate(app: Flask) -> None:
    """The app's gate, sized from MAX_PASSWORD_CHECKS and PASSWORD_CHECK_WAIT_SECONDS."""
    app.extensions["password_gate"] = PasswordGate(
        max(1, int(app.config["MAX_PASSWORD_CHECKS"])),
        max(0.0, float(app.config["PASSWORD_CHECK_WAIT_SECONDS"])),
    )


def password_gate() -> PasswordGate:
    if has_app_context():
        return current_app.extensions["password_gate"]
    return _outside_app


def hash_password(password: str, method: str) -> str:
    """A new hash of `password` by `method` (a werkzeug method), within a slot."""
    with password_gate().slot():
        return generate_password_hash(password, method=method)


def password_matches(password_hash: str, password: str) -> bool:
    """Whether `password` is the one `password_hash` was made from, within a slot."""
    with password_gate().slot():
        return check_password_hash(password_hash, password)
