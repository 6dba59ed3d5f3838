"""The test accounts, and signing them in: test client, HTTP client, browser."""

from __future__ import annotations

import re
from typing import Any

import httpx2
from flask.testing import FlaskClient

from tests.support.app import LiveServer

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
    client = httpx2.Client(base_url=live_server.url, timeout=10)
    token = csrf_token(client, "/login")
    response = client.post(
        "/login", data={"csrf_token": token, "email": email, "password": PASSWORD}
    )
    assert response.status_code == 303, response.text
    return client


def browser_sign_in(page: Any, live_server: LiveServer, email: str) -> None:
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/**")
    assert "/login" not in page.url
