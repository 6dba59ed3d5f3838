"""The test accounts, and signing them in: test client, HTTP client, browser."""

from __future__ import annotations

import re
from typing import Any

import httpx2
from flask.testing import FlaskClient

from tests.support.app import LiveServer
from webapp.extensions import db
from webapp.models import User
from webapp.services.users import SessionUser

ADMIN_EMAIL = "admin@example.com"
MEMBER_EMAIL = "member@example.com"
PASSWORD = "correct horse battery"


def sign_in(client: FlaskClient, email: str) -> None:
    """Sign a test client in through the real form (CSRF off for the test client only)."""
    response = client.post("/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 303, response.get_data(as_text=True)


def csrf_token(client: httpx2.Client, path: str = "/") -> str:
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert token is not None
    return token.group(1)


def signed_in_client(live_server: LiveServer, email: str = MEMBER_EMAIL) -> httpx2.Client:
    """An HTTP client with a session cookie, signed in through the real form (with CSRF)."""
    return signed_in_at(live_server.url, email)


def signed_in_at(url: str, email: str = MEMBER_EMAIL) -> httpx2.Client:
    """An HTTP client for the app at `url` (a live server, nginx in front of a cluster),
    signed in through the real form (with CSRF)."""
    client = httpx2.Client(base_url=url, timeout=10)
    token = csrf_token(client, "/login")
    response = client.post(
        "/login", data={"csrf_token": token, "email": email, "password": PASSWORD}
    )
    assert response.status_code == 303, response.text
    return client


def browser_sign_in(page: Any, live_server: LiveServer, email: str) -> None:
    """Give the browser a signed-in session, then open the home page.

    The session comes from signing in over HTTP (the real form, with CSRF) rather than by
    typing into the form in every browser test: that flow is walked in Chromium by
    test_csp_browser, and typing it costs most of a second per test.
    """
    client = signed_in_client(live_server, email)
    cookies = [
        {"name": cookie.name, "value": cookie.value or "", "url": live_server.url}
        for cookie in client.cookies.jar
    ]
    client.close()
    assert cookies
    page.context.add_cookies(cookies)
    page.goto(f"{live_server.url}/")
    assert "/login" not in page.url


def session_of(user_id: int) -> SessionUser:
    """What a current session of this user names (for services given the session user)."""
    user = db.session.get(User, user_id)
    assert user is not None
    return SessionUser.of(user)
