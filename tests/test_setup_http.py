"""The one-time set-up page over a real connection: browsers racing to create the first admin."""

from __future__ import annotations

import threading
from typing import Any

import httpx2

from tests.support.app import LiveServer
from tests.support.users import PASSWORD, csrf_token
from webapp.extensions import db
from webapp.models import User

BROWSERS = 8


def _setup_form(live_server: LiveServer, number: int) -> tuple[httpx2.Client, dict[str, str]]:
    """A browser that has opened /setup: its own session cookie and CSRF token."""
    client = httpx2.Client(base_url=live_server.url, timeout=30)
    data = {
        "csrf_token": csrf_token(client, "/setup"),
        "email": f"admin{number}@example.com",
        "password": PASSWORD,
        "password_confirmation": PASSWORD,
    }
    return client, data


def _post_all_at_once(clients: list[tuple[httpx2.Client, dict[str, str]]]) -> list[Any]:
    start = threading.Barrier(len(clients))
    answers: list[Any] = [None] * len(clients)

    def post(index: int) -> None:
        client, data = clients[index]
        start.wait(timeout=10)
        try:
            answers[index] = client.post("/setup", data=data)
        except Exception as error:  # reported by the assertion below, not lost in a thread
            answers[index] = error

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def test_parallel_setup_posts_create_exactly_one_admin(live_server: LiveServer) -> None:
    """The losers are sent to sign in; none gets a second admin or a 500."""
    clients = [_setup_form(live_server, n) for n in range(BROWSERS)]
    try:
        answers = _post_all_at_once(clients)
    finally:
        for client, _data in clients:
            client.close()
    statuses = [getattr(a, "status_code", repr(a)) for a in answers]
    locations = sorted(a.headers.get("Location", "") for a in answers if hasattr(a, "headers"))
    assert statuses == [303] * BROWSERS, statuses
    assert locations == ["/login"] * (BROWSERS - 1) + ["/providers/"], locations
    db.session.remove()
    users = db.session.scalars(db.select(User)).all()
    assert [(u.role, u.email.startswith("admin")) for u in users] == [("admin", True)]
