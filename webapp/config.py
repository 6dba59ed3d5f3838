"""Configuration: defaults, then the environment, then an explicit mapping (tests).

Every variable read here is documented in the README's configuration table.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENVIRONMENTS = ("development", "test", "production")
DEFAULT_PASSWORD_CHECK_WAIT_SECONDS = 10.0


class ConfigError(RuntimeError):
    """The app cannot start with this configuration; the message says what to set."""


def cpu_cores() -> int:
    """The cores of this machine (1 when Python cannot tell)."""
    return os.cpu_count() or 1


def _env_flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _env_int(name: str) -> int:
    raw = os.environ[name].strip()
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from exc
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {raw!r}")
    return value


DEFAULT_REDIS_KEY_PREFIX = "modeldesk"

INTEGER_SETTINGS = {
    "MODELDESK_TRUSTED_PROXIES": "TRUSTED_PROXY_COUNT",
    "MODELDESK_MAX_STREAMS": "MAX_CONCURRENT_STREAMS",
    "MODELDESK_MAX_STREAMS_PER_USER": "MAX_STREAMS_PER_USER",
    "MODELDESK_REPLY_STARTS_AT_ONCE": "REPLY_STARTS_AT_ONCE",
    "MODELDESK_MAX_REPLY_SECONDS": "MAX_REPLY_SECONDS",
    "MODELDESK_MAX_REPLY_CHARS": "MAX_REPLY_CHARS",
    "MODELDESK_DB_POOL_SIZE": "DB_POOL_SIZE",
    "MODELDESK_MAX_PASSWORD_CHECKS": "MAX_PASSWORD_CHECKS",
}


def from_environment() -> dict[str, Any]:
    """Read the settings the environment provides; unset variables are left out."""
    env = os.environ.get("MODELDESK_ENV", "development").strip() or "development"
    if env not in ENVIRONMENTS:
        raise ConfigError(f"MODELDESK_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")
    settings: dict[str, Any] = {"MODELDESK_ENV": env}
    passthrough = {
        "DATABASE_URL": "SQLALCHEMY_DATABASE_URI",
        "SECRET_KEY": "SECRET_KEY",
        "MODELDESK_ENCRYPTION_KEY": "MODELDESK_ENCRYPTION_KEY",
        "MOCK_LLM_BASE_URL": "MOCK_LLM_BASE_URL",
        "OPENROUTER_HTTP_REFERER": "OPENROUTER_HTTP_REFERER",
        "OPENROUTER_X_TITLE": "OPENROUTER_X_TITLE",
        "RATELIMIT_STORAGE_URI": "RATELIMIT_STORAGE_URI",
        "REDIS_URL": "REDIS_URL",
        "MODELDESK_REDIS_PREFIX": "REDIS_KEY_PREFIX",
        "MODELDESK_INSTANCE_NAME": "INSTANCE_NAME",
        "MODELDESK_REPLY_BUS": "REPLY_BUS",
        "MODELDESK_PASSWORD_HASH_METHOD": "PASSWORD_HASH_METHOD",
    }
    for variable, key in passthrough.items():
        value = os.environ.get(variable, "").strip()
        if value:
            settings[key] = value
    if "MOCK_LLM_ENABLED" in os.environ:
        settings["MOCK_LLM_ENABLED"] = _env_flag(os.environ["MOCK_LLM_ENABLED"])
    for variable, key in INTEGER_SETTINGS.items():
        if os.environ.get(variable, "").strip():
            settings[key] = _env_int(variable)
    if "MODELDESK_BLOCK_PRIVATE_URLS" in os.environ:
        settings["BLOCK_PRIVATE_URLS"] = _env_flag(os.environ["MODELDESK_BLOCK_PRIVATE_URLS"])
    for name in ("LLM_REQUEST_TIMEOUT", "LLM_CONNECT_TIMEOUT"):
        if os.environ.get(name, "").strip():
            settings[name] = _env_float(name, 0.0)
    if os.environ.get("MODELDESK_USAGE_FLUSH_SECONDS", "").strip():
        settings["USAGE_FLUSH_SECONDS"] = _env_float("MODELDESK_USAGE_FLUSH_SECONDS", 1.0)
    if os.environ.get("MODELDESK_PASSWORD_CHECK_WAIT_SECONDS", "").strip():
        settings["PASSWORD_CHECK_WAIT_SECONDS"] = _env_float(
            "MODELDESK_PASSWORD_CHECK_WAIT_SECONDS", DEFAULT_PASSWORD_CHECK_WAIT_SECONDS
        )
    if "MOCK_LLM_STREAM_DELAY" in os.environ:
        settings["MOCK_LLM_STREAM_DELAY"] = _env_float("MOCK_LLM_STREAM_DELAY", 0.02)
    return settings


def defaults(env: str, instance_path: str) -> dict[str, Any]:
    """Defaults that depend on the environment (mock on outside production, no delay in test)."""
    return {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{Path(instance_path) / 'modeldesk.sqlite3'}",
        "MOCK_LLM_ENABLED": env != "production",
        "MOCK_LLM_STREAM_DELAY": 0.0 if env == "test" else 0.02,
        "MOCK_LLM_BASE_URL": "http://127.0.0.1:5000",
        "LLM_REQUEST_TIMEOUT": 60.0,
        "LLM_CONNECT_TIMEOUT": 5.0,
        "LLM_MAX_RETRIES": 0,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": env == "production",
        "REMEMBER_COOKIE_SECURE": env == "production",
        # One token per session: a chat page left open for hours still posts.
        "WTF_CSRF_TIME_LIMIT": None,
        "RATELIMIT_HEADERS_ENABLED": True,
        # A Redis outage must not turn sign-in into a 500: count per process until it is back.
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "REDIS_KEY_PREFIX": DEFAULT_REDIS_KEY_PREFIX,
        "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
        "TRUSTED_PROXY_COUNT": 0,
        "BLOCK_PRIVATE_URLS": False,
        "MAX_CONCURRENT_STREAMS": 32,
        "MAX_STREAMS_PER_USER": 3,
        # Replies set up at once per process (claim, history, request); the rest wait their
        # turn (webapp/services/reply_limits.py, StartGate).
        "REPLY_STARTS_AT_ONCE": cpu_cores(),
        "MAX_REPLY_SECONDS": 600,
        "MAX_REPLY_CHARS": 200_000,
        # While a provider is silent, an SSE comment this often notices a browser that left.
        "REPLY_HEARTBEAT_SECONDS": 1.0,
        # How a page follows a reply another process writes (webapp/services/reply_bus.py):
        # auto, redis, postgres or none.
        "REPLY_BUS": "auto",
        "DB_POOL_SIZE": 10,
        # Usage records are written in batches this often (0: only on flush(), as the tests
        # do, so no test's events land in the next one's database).
        "USAGE_FLUSH_SECONDS": 0.0 if env == "test" else 1.0,
        "USAGE_BATCH_SIZE": 200,
        "USAGE_MAX_PENDING": 100_000,
        # werkzeug's default; the test configuration picks a cheap one.
        "PASSWORD_HASH_METHOD": "scrypt",
        # Password hashes and checks at once per process (webapp.passwords), and how long
        # one waits for a slot before the request is refused.
        "MAX_PASSWORD_CHECKS": cpu_cores(),
        "PASSWORD_CHECK_WAIT_SECONDS": DEFAULT_PASSWORD_CHECK_WAIT_SECONDS,
    }


def normalize_database_url(url: str) -> str:
    """Accept the common `postgres://` and `postgresql://` forms and use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def instance_secret(instance_path: str, filename: str) -> str:
    """A random secret generated once and kept in the instance folder (mode 0600).

    Development only: it lets the quickstart run with no set-up while keeping sessions and
    encrypted API keys readable across restarts.
    """
    path = Path(instance_path) / filename
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    # O_EXCL: two processes starting at once must not each write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


# Production secrets shorter than this are refused: a short SECRET_KEY can be guessed offline
# from one signed session cookie, and the encryption key guards every stored API key.
MIN_SECRET_LENGTH = 32
GENERATE_SECRET = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"

REQUIRED_IN_PRODUCTION = {
    "SECRET_KEY": f"SECRET_KEY is not set: set it to a long random string ({GENERATE_SECRET})",
    "MODELDESK_ENCRYPTION_KEY": "MODELDESK_ENCRYPTION_KEY is not set: set it to a long random "
    "string that encrypts provider API keys (keep it; stored keys need it to decrypt)",
}


def finalize(settings: dict[str, Any], instance_path: str) -> dict[str, Any]:
    """Fill in secrets (generated in development/test, required in production)."""
    env = settings["MODELDESK_ENV"]
    for key, message in REQUIRED_IN_PRODUCTION.items():
        if settings.get(key):
            continue
        if env == "production":
            raise ConfigError(message)
        settings[key] = instance_secret(instance_path, key.lower())
    if env == "production":
        for key in REQUIRED_IN_PRODUCTION:
            check_secret_length(key, str(settings[key]))
    settings["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(
        settings["SQLALCHEMY_DATABASE_URI"]
    )
    settings.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(settings))
    return settings


def check_secret_length(name: str, value: str) -> None:
    """Refuse a secret shorter than MIN_SECRET_LENGTH, naming the variable (never the value)."""
    if len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{name} is too short ({len(value)} characters): set it to at least "
            f"{MIN_SECRET_LENGTH} random characters ({GENERATE_SECRET})"
        )


def engine_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Pool settings for server databases; SQLite keeps SQLAlchemy's defaults."""
    if settings["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return {}
    pool_size = int(settings["DB_POOL_SIZE"])
    # Checked-out connections are released before a reply streams, so a pool much smaller
    # than the thread count serves many concurrent chats. No pre-ping on every checkout: only
    # connections idle for a while are checked (webapp/db_pool.py), which survives restarts.
    return {
        "pool_size": pool_size,
        "max_overflow": pool_size,
        "pool_timeout": 10,
        "pool_recycle": 1800,
    }


def build(instance_path: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults ← environment ← overrides, then secrets."""
    settings = from_environment()
    if overrides and "MODELDESK_ENV" in overrides:
        settings["MODELDESK_ENV"] = overrides["MODELDESK_ENV"]
    env = settings["MODELDESK_ENV"]
    chosen = {**settings, **dict(overrides or {})}
    merged = {**defaults(env, instance_path), **shared_state_defaults(chosen), **chosen}
    return finalize(merged, instance_path)


def shared_state_defaults(chosen: Mapping[str, Any]) -> dict[str, Any]:
    """Where counters shared by every process live: Redis when `REDIS_URL` is set (so limits
    hold across gunicorn workers and instances), else this process's memory."""
    return {
        "RATELIMIT_STORAGE_URI": chosen.get("REDIS_URL") or "memory://",
        # Keys under one prefix: several deployments (or test runs) can share a Redis.
        "RATELIMIT_KEY_PREFIX": chosen.get("REDIS_KEY_PREFIX", DEFAULT_REDIS_KEY_PREFIX),
    }
