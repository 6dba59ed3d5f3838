"""The servers as processes: gunicorn with gunicorn.conf.py holds long SSE streams, and the
development server (`flask up`, behind scripts/dev.sh) seeds and serves a streaming chat."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx2
import pytest

from tests.support.chat_http import deltas_text, read_frames, send
from tests.support.cluster import APP_VARIABLES, start_process, wait_healthy
from tests.support.net import free_port
from tests.support.users import csrf_token

# Under pytest-xdist the modules that start gunicorn (and nginx) run on one worker, one
# after another: two clusters starting at once would crowd a 2-core box.
pytestmark = pytest.mark.xdist_group("gunicorn")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gunicorn_server(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, _migrated: str
) -> Iterator[str]:
    """gunicorn from the project root with its own config, a 2 s worker heartbeat timeout.

    One per module: the tests only read from it, and it takes a few seconds to start and stop.
    """
    tmp_path = tmp_path_factory.mktemp("gunicorn")
    port = free_port()
    env = {
        **os.environ,
        "MODELDESK_ENV": "production",
        "SECRET_KEY": "gunicorn-test-secret-0123456789abcdef",
        "MODELDESK_ENCRYPTION_KEY": "gunicorn-test-key-0123456789abcdef",
        "MOCK_LLM_ENABLED": "1",
        "MOCK_LLM_STREAM_DELAY": "0.05",
        "DATABASE_URL": database_url,
        "MODELDESK_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "MODELDESK_THREADS": "8",
        "MODELDESK_WORKER_TIMEOUT": "2",
        "HOME": str(tmp_path),
    }
    command = [sys.executable, "-m", "gunicorn", "--no-control-socket", "wsgi:app"]
    server = start_process("gunicorn", command, env, tmp_path / "gunicorn.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server)
        yield url
    finally:
        server.terminate()
        server.wait_ended()


def test_a_stream_longer_than_the_worker_timeout_completes_while_others_are_served(
    gunicorn_server: str,
) -> None:
    body = {
        "model": "mock",
        "stream": True,
        # ~250 characters in 18-character pieces, 0.3 s apart: about 4 s, twice the timeout.
        "messages": [{"role": "user", "content": "x" * 230}],
    }
    headers = {"X-Mock-Fault": "chunk_delay=0.3"}
    frames: list[str] = []
    health_latencies: list[float] = []

    def read_stream() -> None:
        with httpx2.stream(
            "POST",
            f"{gunicorn_server}/mock_llm/v1/chat/completions",
            json=body,
            headers=headers,
            timeout=30,
        ) as response:
            frames.extend(line for line in response.iter_lines() if line.startswith("data: "))

    reader = threading.Thread(target=read_stream)
    started = time.monotonic()
    reader.start()
    while reader.is_alive():
        begin = time.monotonic()
        assert httpx2.get(f"{gunicorn_server}/healthz", timeout=5).status_code == 200
        health_latencies.append(time.monotonic() - begin)
        time.sleep(0.25)
    reader.join()
    assert time.monotonic() - started > 3
    assert frames[-1] == "data: [DONE]"
    assert len(health_latencies) >= 8
    assert max(health_latencies) < 1.0


def test_production_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "MODELDESK_ENV": "production",
        "HOME": str(tmp_path),
        "SECRET_KEY": "s",
        "MODELDESK_BIND": f"127.0.0.1:{free_port()}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--no-control-socket", "wsgi:app"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "ModelDesk cannot start: MODELDESK_ENCRYPTION_KEY is not set" in done.stderr
    assert "Traceback" not in done.stderr


def test_headers_and_health_under_gunicorn(gunicorn_server: str) -> None:
    response = httpx2.get(f"{gunicorn_server}/login", follow_redirects=False)
    assert "Content-Security-Policy" in response.headers
    assert httpx2.get(f"{gunicorn_server}/healthz").json() == {"status": "ok", "database": "ok"}


def test_the_dev_server_seeds_the_mock_at_its_own_port_and_a_reply_streams(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    database = tmp_path / "dev.sqlite3"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(APP_VARIABLES)},
        "DATABASE_URL": f"sqlite:///{database}",
        "SECRET_KEY": "dev-server-test-secret-0123456789abcdef",
        "MODELDESK_ENCRYPTION_KEY": "dev-server-test-key-0123456789abcdef",
        "HOME": str(tmp_path),
    }
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "up", "--port", str(port)]
    server = start_process("flask up", command, env, tmp_path / "up.log")
    try:
        wait_healthy(url, server)
        with closing(sqlite3.connect(database)) as connection:
            (mock_base_url,) = connection.execute(
                "SELECT base_url FROM llm_providers WHERE name = 'Mock (Local)'"
            ).fetchone()
            (model_id,) = connection.execute(
                "SELECT id FROM llm_models WHERE key = 'mock'"
            ).fetchone()
        assert mock_base_url == url

        with httpx2.Client(base_url=url, timeout=30) as client:
            setup = csrf_token(client, "/setup")
            account = {"email": "dev@example.com", "password": "a-long-password-1"}
            confirm = {"password_confirmation": account["password"]}
            made = client.post("/setup", data={"csrf_token": setup, **account, **confirm})
            assert made.status_code == 303, made.text
            message_id = send(client, model_id, "Hello from the dev server")
            with client.stream("GET", f"/messages/{message_id}/stream") as response:
                frames = list(read_frames(response.iter_lines()))
        assert deltas_text(frames).startswith("Mock response (model=mock)")
        assert frames[-1].event == "end" and "status-complete" in frames[-1].data
    finally:
        server.terminate()
        server.wait_ended()
