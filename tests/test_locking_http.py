"""Concurrent saves of the same provider over real HTTP (a threaded live server): exactly one
wins, every other one is refused with 409, none is lost silently, none is a 500."""

from __future__ import annotations

import re
import threading
from typing import Any

import httpx2

from tests.support.app import LiveServer
from tests.support.factories import make_provider
from tests.support.users import ADMIN_EMAIL, signed_in_client
from webapp.extensions import db
from webapp.models import LLMProvider

EDITORS = 6


def hidden(body: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]+)"', body)
    assert match, name
    return match.group(1)


def test_concurrent_saves_of_one_edit_page_keep_exactly_one_and_refuse_the_rest(
    live_server: LiveServer, admin: Any
) -> None:
    provider = make_provider(name="Acme", base_url="https://llm.example.com")
    url = f"/providers/{provider.id}"
    clients = [signed_in_client(live_server, ADMIN_EMAIL) for _ in range(EDITORS)]
    pages = [client.get(f"{url}/edit").text for client in clients]
    start = threading.Barrier(EDITORS)
    responses: list[httpx2.Response | BaseException] = [RuntimeError("not run")] * EDITORS

    def save(index: int) -> None:
        form = {
            "csrf_token": hidden(pages[index], "csrf_token"),
            "version": hidden(pages[index], "version"),
            "name": f"Acme by editor {index}",
            "api_format": "openai",
            "base_url": "https://llm.example.com",
            "api_prefix": "/v1",
            "headers": "{}",
            "llm_options_defaults": "{}",
            "message_overhead_tokens": "0",
        }
        start.wait(timeout=10)
        try:
            responses[index] = clients[index].post(url, data=form, timeout=30)
        except BaseException as error:  # reported by the assertion below
            responses[index] = error

    threads = [threading.Thread(target=save, args=(i,)) for i in range(EDITORS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for client in clients:
        client.close()

    statuses = [getattr(r, "status_code", r) for r in responses]
    assert sorted(statuses) == [303] + [409] * (EDITORS - 1), statuses
    winner = statuses.index(303)
    db.session.expire_all()
    saved = db.session.get(LLMProvider, provider.id)
    assert (saved.name, saved.version) == (f"Acme by editor {winner}", 2)
    for index, response in enumerate(responses):
        if index != winner:
            assert "Someone else changed this provider" in response.text  # type: ignore[union-attr]
            assert f"Acme by editor {index}" in response.text  # type: ignore[union-attr]
