"""Sign-in storms over real HTTP: however many people sign in at once, no more password
checks run at once than the gate has slots, and one who waits too long for a slot is told
to try again (503, Retry-After, the email kept) rather than left hanging."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from flask import Flask

import webapp.passwords
from tests.support.app import LiveServer, make_config
from tests.support.users import MEMBER_EMAIL, PASSWORD, csrf_token
from tests.support.waiting import wait_for
from webapp import create_app
from webapp.extensions import db as _db
from webapp.passwords import PasswordGate

SLOTS = 2
# Under the sign-in form's rate limit (10 a minute from one address).
SIGN_INS = 6
WAIT = 30.0


class HeldChecks:
    """Stands in for werkzeug's password check: counts the checks running at once (and
    the most ever), and holds each until released, so they pile up at the gate."""

    def __init__(self, check: Callable[[str, str], bool]) -> None:
        self._check = check
        self._lock = threading.Lock()
        self.released = threading.Event()
        self.running = 0
        self.most = 0
        self.calls = 0

    def __call__(self, password_hash: str, password: str) -> bool:
        with self._lock:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
        try:
            self.released.wait(WAIT)
            return self._check(password_hash, password)
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldChecks]:
    checks = HeldChecks(webapp.passwords.check_password_hash)
    monkeypatch.setattr(webapp.passwords, "check_password_hash", checks)
    yield checks
    checks.released.set()


def gated_server(app: Flask, tmp_path: Any, slots: int, wait_seconds: float) -> LiveServer:
    config = make_config(
        app.config["SQLALCHEMY_DATABASE_URI"],
        str(tmp_path),
        MAX_PASSWORD_CHECKS=slots,
        PASSWORD_CHECK_WAIT_SECONDS=wait_seconds,
    )
    return LiveServer(create_app(config)).start()


@pytest.fixture
def servers(app: Flask, tmp_path: Any) -> Iterator[list[LiveServer]]:
    started: list[LiveServer] = []
    yield started
    for server in started:
        server.stop()
        with server.app.app_context():
            _db.engine.dispose()


def sign_in_form(server: LiveServer) -> tuple[httpx2.Client, str]:
    client = httpx2.Client(base_url=server.url, timeout=WAIT + 30)
    return client, csrf_token(client, "/login")


def post_sign_in(client: httpx2.Client, token: str) -> httpx2.Response:
    data = {"csrf_token": token, "email": MEMBER_EMAIL, "password": PASSWORD}
    return client.post("/login", data=data)


def gate_of(server: LiveServer) -> PasswordGate:
    return server.app.extensions["password_gate"]


def test_simultaneous_sign_ins_run_no_more_checks_at_once_than_the_slots(
    app: Flask, member: Any, servers: list[LiveServer], held: HeldChecks, tmp_path: Any
) -> None:
    server = gated_server(app, tmp_path, SLOTS, WAIT)
    servers.append(server)
    forms = [sign_in_form(server) for _ in range(SIGN_INS)]
    answers: list[httpx2.Response] = []
    threads = [
        threading.Thread(target=lambda form=form: answers.append(post_sign_in(*form)))
        for form in forms
    ]
    for thread in threads:
        thread.start()

    # Every sign-in has reached the gate: SLOTS are checking, the others wait their turn.
    gate = gate_of(server)
    assert wait_for(lambda: held.running == SLOTS and gate.waiting == SIGN_INS - SLOTS, 30)
    held.released.set()
    for thread in threads:
        thread.join(timeout=WAIT + 30)

    assert [answer.status_code for answer in answers] == [303] * SIGN_INS
    assert held.calls == SIGN_INS
    assert held.most == SLOTS
    for client, _ in forms:
        client.close()


def test_a_sign_in_that_waits_too_long_for_a_check_is_told_to_try_again(
    app: Flask, member: Any, servers: list[LiveServer], held: HeldChecks, tmp_path: Any
) -> None:
    server = gated_server(app, tmp_path, slots=1, wait_seconds=0.2)
    servers.append(server)
    first, second = sign_in_form(server), sign_in_form(server)
    answers: list[httpx2.Response] = []
    holding = threading.Thread(target=lambda: answers.append(post_sign_in(*first)))
    holding.start()
    assert wait_for(lambda: held.running == 1, 30)

    refused = post_sign_in(*second)

    assert refused.status_code == 503
    # The form's rate limiter may raise it to the end of its window; never below 1 s.
    assert int(refused.headers["Retry-After"]) >= 1
    assert "Too many sign-ins at once: try again in a few seconds." in refused.text
    assert f'value="{MEMBER_EMAIL}"' in refused.text
    held.released.set()
    holding.join(timeout=WAIT + 30)
    assert [answer.status_code for answer in answers] == [303]
    # Once the storm is over, the same person gets in.
    assert post_sign_in(second[0], csrf_token(second[0], "/login")).status_code == 303
    for client, _ in (first, second):
        client.close()
