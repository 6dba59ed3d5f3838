"""Sign-in, sign-out and set-up over a real connection: racing browsers, rotated CSRF
tokens, and session cookies replayed after they were revoked."""

from __future__ import annotations

import threading
from typing import Any

import httpx2

from tests.support.app import LiveServer
from tests.support.users import ADMIN_EMAIL, PASSWORD, csrf_token, signed_in_client
from webapp.extensions import db
from webapp.models import User
from webapp.services.users import change_password

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


def _replay(live_server: LiveServer, cookies: httpx2.Cookies) -> httpx2.Response:
    """Another client sending a copied session cookie: what an attacker holding it gets."""
    with httpx2.Client(base_url=live_server.url, timeout=10, cookies=cookies) as thief:
        return thief.get("/providers/")


def _signed_out(response: httpx2.Response) -> bool:
    return response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_a_csrf_token_from_before_sign_in_is_refused_after_it(
    live_server: LiveServer, admin: Any
) -> None:
    with httpx2.Client(base_url=live_server.url, timeout=10) as client:
        before = csrf_token(client, "/login")
        session_before = client.cookies["session"]
        response = client.post(
            "/login", data={"csrf_token": before, "email": ADMIN_EMAIL, "password": PASSWORD}
        )
        assert response.status_code == 303, response.text
        assert client.cookies["session"] != session_before
        refused = client.post("/logout", data={"csrf_token": before})
        assert refused.status_code == 400
        assert client.get("/providers/").status_code == 200  # still signed in
        after = csrf_token(client, "/")
        assert after != before
        assert client.post("/logout", data={"csrf_token": after}).status_code == 303


def test_a_session_cookie_replayed_after_sign_out_is_refused(
    live_server: LiveServer, admin: Any
) -> None:
    client = signed_in_client(live_server, ADMIN_EMAIL)
    copied = httpx2.Cookies(client.cookies)
    assert _replay(live_server, copied).status_code == 200
    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert response.status_code == 303
    client.close()
    assert _signed_out(_replay(live_server, copied))


def test_a_new_password_ends_the_other_sessions(live_server: LiveServer, admin: Any) -> None:
    client = signed_in_client(live_server, ADMIN_EMAIL)
    assert client.get("/providers/").status_code == 200
    assert change_password(admin, "another horse battery", "another horse battery") == {}
    assert _signed_out(client.get("/providers/"))
    client.close()


def test_users_set_password_command_ends_the_users_sessions(
    live_server: LiveServer, admin: Any, runner: Any
) -> None:
    client = signed_in_client(live_server, ADMIN_EMAIL)
    assert client.get("/providers/").status_code == 200
    new = "a whole new password"
    result = runner.invoke(args=["users", "set-password", ADMIN_EMAIL], input=f"{new}\n{new}\n")
    assert result.exit_code == 0, result.output
    assert _signed_out(client.get("/providers/"))
    client.close()
    short = runner.invoke(args=["users", "set-password", ADMIN_EMAIL], input="short\nshort\n")
    assert short.exit_code != 0 and "at least 8 characters" in short.output
    nobody = runner.invoke(args=["users", "set-password", "x@example.com"], input=f"{new}\n{new}\n")
    assert nobody.exit_code != 0 and "no user has the email" in nobody.output
    with httpx2.Client(base_url=live_server.url, timeout=10) as fresh:
        token = csrf_token(fresh, "/login")
        signed_in = fresh.post(
            "/login", data={"csrf_token": token, "email": ADMIN_EMAIL, "password": new}
        )
        assert signed_in.status_code == 303
