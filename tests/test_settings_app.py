"""Configuration from the environment; production refuses to start without its secrets."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask_migrate import upgrade

from tests.support.net import closed_port_url
from webapp import create_app
from webapp.config import ConfigError, normalize_database_url
from webapp.models import User

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LONG_SECRET = "s" * 32


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("MODELDESK_", "MOCK_LLM_", "OPENROUTER_", "RATELIMIT_")) or name in (
            "DATABASE_URL",
            "SECRET_KEY",
            "REDIS_URL",
        ):
            monkeypatch.delenv(name)
    return monkeypatch


def test_development_defaults_to_sqlite_in_instance_folder(clean_env: Any, tmp_path: Path) -> None:
    app = create_app({"INSTANCE_PATH": str(tmp_path)})
    assert app.config["MODELDESK_ENV"] == "development"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'modeldesk.sqlite3'}"
    assert app.config["MOCK_LLM_ENABLED"] is True


def test_development_generates_secrets_once_with_private_mode(
    clean_env: Any, tmp_path: Path
) -> None:
    first = create_app({"INSTANCE_PATH": str(tmp_path)})
    second = create_app({"INSTANCE_PATH": str(tmp_path)})
    key_file = tmp_path / "modeldesk_encryption_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.config["MODELDESK_ENCRYPTION_KEY"] == second.config["MODELDESK_ENCRYPTION_KEY"]
    assert len(first.config["MODELDESK_ENCRYPTION_KEY"]) >= 32
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]


def test_environment_variables_are_read(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("DATABASE_URL", "postgres://u@db.example/app")
    clean_env.setenv("MOCK_LLM_STREAM_DELAY", "0.5")
    clean_env.setenv("MOCK_LLM_BASE_URL", "http://127.0.0.1:9999")
    clean_env.setenv("SECRET_KEY", "s")
    app = create_app({"INSTANCE_PATH": str(tmp_path)})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db.example/app"
    assert app.config["MOCK_LLM_STREAM_DELAY"] == 0.5
    assert app.config["MOCK_LLM_BASE_URL"] == "http://127.0.0.1:9999"
    assert app.config["SECRET_KEY"] == "s"


def test_rate_limits_count_in_process_memory_without_redis(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app = create_app({"INSTANCE_PATH": str(tmp_path)})
    assert app.config["RATELIMIT_STORAGE_URI"] == "memory://"


def test_rate_limits_are_shared_through_redis_url(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("REDIS_URL", "redis://127.0.0.1:6379/3")
    clean_env.setenv("MODELDESK_REDIS_PREFIX", "staging")
    app = create_app({"INSTANCE_PATH": str(tmp_path)})
    assert app.config["REDIS_URL"] == "redis://127.0.0.1:6379/3"
    assert app.config["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6379/3"
    assert app.config["RATELIMIT_KEY_PREFIX"] == "staging"


def test_an_explicit_rate_limit_storage_wins_over_redis_url(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("REDIS_URL", "redis://127.0.0.1:6379/3")
    clean_env.setenv("RATELIMIT_STORAGE_URI", "memory://")
    app = create_app({"INSTANCE_PATH": str(tmp_path)})
    assert app.config["RATELIMIT_STORAGE_URI"] == "memory://"


def test_sign_in_still_answers_when_redis_is_unreachable(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("REDIS_URL", closed_port_url().replace("http://", "redis://"))
    app = create_app({"INSTANCE_PATH": str(tmp_path), "WTF_CSRF_ENABLED": False})
    with app.app_context():
        upgrade()
    client = app.test_client()
    statuses = [client.post("/login", data={}).status_code for _ in range(11)]
    # Counted in this process instead: the limit still holds, and nothing is a 500.
    assert statuses[-1] == 429
    assert 500 not in statuses


def test_the_instance_name_is_sent_only_when_configured(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    unnamed = create_app({"INSTANCE_PATH": str(tmp_path)}).test_client()
    assert "X-ModelDesk-Instance" not in unnamed.get("/healthz").headers
    clean_env.setenv("MODELDESK_INSTANCE_NAME", "web-2")
    named = create_app({"INSTANCE_PATH": str(tmp_path)}).test_client()
    assert named.get("/healthz").headers["X-ModelDesk-Instance"] == "web-2"


def test_reply_and_provider_call_limits_come_from_the_environment(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("LLM_REQUEST_TIMEOUT", "12.5")
    clean_env.setenv("LLM_CONNECT_TIMEOUT", "2")
    clean_env.setenv("MODELDESK_MAX_STREAMS_PER_USER", "5")
    clean_env.setenv("MODELDESK_MAX_REPLY_SECONDS", "90")
    clean_env.setenv("MODELDESK_MAX_REPLY_CHARS", "1000")
    app = create_app({"INSTANCE_PATH": str(tmp_path)})
    settings = app.extensions["llm_client_settings"]
    assert (settings.request_timeout, settings.connect_timeout) == (12.5, 2.0)
    assert app.extensions["user_streams"].limit == 5
    limits = app.extensions["reply_limits"]
    assert (limits.max_seconds, limits.max_chars) == (90.0, 1000)


def test_passwords_are_hashed_with_the_configured_method(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert create_app({"INSTANCE_PATH": str(tmp_path)}).config["PASSWORD_HASH_METHOD"] == "scrypt"
    clean_env.setenv("MODELDESK_PASSWORD_HASH_METHOD", "pbkdf2:sha256:1")
    app = create_app({"INSTANCE_PATH": str(tmp_path)})
    with app.app_context():
        user = User(email="a@example.com", role="member", password_hash="")
        user.set_password("correct horse battery")
        assert user.password_hash.startswith("pbkdf2:sha256:1$")
        assert user.check_password("correct horse battery")
        assert not user.check_password("wrong horse battery")


def test_password_checks_at_once_are_the_cores_unless_the_environment_says(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    gate = create_app({"INSTANCE_PATH": str(tmp_path)}).extensions["password_gate"]
    assert (gate.slots, gate.wait_seconds) == (os.cpu_count(), 10.0)
    clean_env.setenv("MODELDESK_MAX_PASSWORD_CHECKS", "3")
    clean_env.setenv("MODELDESK_PASSWORD_CHECK_WAIT_SECONDS", "2.5")
    gate = create_app({"INSTANCE_PATH": str(tmp_path)}).extensions["password_gate"]
    assert (gate.slots, gate.wait_seconds) == (3, 2.5)


def test_test_environment_has_no_stream_delay(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("MODELDESK_ENV", "test")
    assert create_app({"INSTANCE_PATH": str(tmp_path)}).config["MOCK_LLM_STREAM_DELAY"] == 0.0


@pytest.mark.parametrize(
    ("present", "missing"),
    [({}, "SECRET_KEY"), ({"SECRET_KEY": LONG_SECRET}, "MODELDESK_ENCRYPTION_KEY")],
)
def test_production_requires_secrets(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, present: dict[str, str], missing: str
) -> None:
    clean_env.setenv("MODELDESK_ENV", "production")
    for name, value in present.items():
        clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match=missing):
        create_app({"INSTANCE_PATH": str(tmp_path)})
    assert not (tmp_path / missing.lower()).exists()


@pytest.mark.parametrize("short", ["SECRET_KEY", "MODELDESK_ENCRYPTION_KEY"])
def test_production_refuses_short_secrets(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, short: str
) -> None:
    clean_env.setenv("MODELDESK_ENV", "production")
    clean_env.setenv("SECRET_KEY", LONG_SECRET)
    clean_env.setenv("MODELDESK_ENCRYPTION_KEY", LONG_SECRET)
    clean_env.setenv(short, "x" * 31)
    with pytest.raises(ConfigError, match=rf"^{short} is too short \(31 characters\)"):
        create_app({"INSTANCE_PATH": str(tmp_path)})


def test_production_has_mock_off_unless_enabled(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("MODELDESK_ENV", "production")
    clean_env.setenv("SECRET_KEY", LONG_SECRET)
    clean_env.setenv("MODELDESK_ENCRYPTION_KEY", LONG_SECRET)
    assert create_app({"INSTANCE_PATH": str(tmp_path)}).config["MOCK_LLM_ENABLED"] is False
    clean_env.setenv("MOCK_LLM_ENABLED", "1")
    assert create_app({"INSTANCE_PATH": str(tmp_path)}).config["MOCK_LLM_ENABLED"] is True


def test_unknown_environment_is_refused(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("MODELDESK_ENV", "staging")
    with pytest.raises(ConfigError, match="MODELDESK_ENV"):
        create_app({"INSTANCE_PATH": str(tmp_path)})


def test_database_url_forms() -> None:
    assert normalize_database_url("postgresql://h/d") == "postgresql+psycopg://h/d"
    assert normalize_database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_production_start_prints_one_line_naming_the_variable(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "MODELDESK_ENV": "production", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "routes"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "ModelDesk cannot start: SECRET_KEY is not set" in done.stderr
    assert "Traceback" not in done.stderr


def test_production_start_with_a_short_key_prints_one_line_naming_it(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "MODELDESK_ENV": "production",
        "HOME": str(tmp_path),
        "SECRET_KEY": LONG_SECRET,
        "MODELDESK_ENCRYPTION_KEY": "short-key",
    }
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "routes"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "ModelDesk cannot start: MODELDESK_ENCRYPTION_KEY is too short (9 characters)" in (
        done.stderr
    )
    assert "short-key" not in done.stderr
    assert "Traceback" not in done.stderr
