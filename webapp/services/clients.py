"""One cached `openai.OpenAI` client per provider configuration, and secret scrubbing."""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openai
from flask import current_app, has_app_context

from webapp.logging_filters import remember_secrets
from webapp.models import LLMProvider

# Sent as "Authorization: Bearer <placeholder>" for providers with no key (Ollama, the mock):
# the SDK refuses an empty key, and keyless servers ignore the header.
NO_API_KEY_PLACEHOLDER = "no-key"

# Header names whose values are secrets whatever they contain.
_SECRET_HEADER = re.compile(r"(authorization|api[-_]?key|token|secret|cookie|password)", re.I)
# "Bearer <token>", "Basic <credentials>": the credential alone is just as secret (a provider
# that echoes what it received may print it without the scheme).
_SCHEME_AND_CREDENTIAL = re.compile(r"^\s*[A-Za-z][\w-]*\s+(\S+)\s*$")
_MIN_SECRET_LENGTH = 6
_CACHE_SIZE = 128


@dataclass(frozen=True)
class ClientSettings:
    """Timeouts and retries for provider calls (the SDK's own default is 600 s, 2 retries)."""

    request_timeout: float = 60.0
    connect_timeout: float = 5.0
    max_retries: int = 0

    @classmethod
    def from_app(cls) -> ClientSettings:
        if not has_app_context():
            return cls()
        config = current_app.config
        return cls(
            request_timeout=float(config.get("LLM_REQUEST_TIMEOUT", cls.request_timeout)),
            connect_timeout=float(config.get("LLM_CONNECT_TIMEOUT", cls.connect_timeout)),
            max_retries=int(config.get("LLM_MAX_RETRIES", cls.max_retries)),
        )


class _ClientCache:
    """A small LRU of clients keyed by everything that shapes a client.

    Building an `openai.OpenAI` costs milliseconds (an HTTP connection pool); reusing it
    keeps connections warm. Editing a provider changes its key, so a stale client is never
    used; the old one simply ages out.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._clients: OrderedDict[tuple[Any, ...], openai.OpenAI] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], build: Callable[[], openai.OpenAI]) -> openai.OpenAI:
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                self._clients.move_to_end(key)
                return client
            client = build()
            self._clients[key] = client
            if len(self._clients) > self._size:
                self._clients.popitem(last=False)
            return client

    def clear(self) -> None:
        with self._lock:
            self._clients.clear()


_cache = _ClientCache(_CACHE_SIZE)


def provider_api_key(provider: LLMProvider) -> str | None:
    """The usable API key, or None (no key, or a key the current encryption key can't read)."""
    return provider.api_key if provider.api_key_status == "set" else None


def client_for(provider: LLMProvider, settings: ClientSettings | None = None) -> openai.OpenAI:
    """The OpenAI SDK client for a provider: base_url + api_prefix, key, default headers."""
    settings = settings or ClientSettings.from_app()
    api_key = provider_api_key(provider) or NO_API_KEY_PLACEHOLDER
    headers = dict(provider.headers or {})
    key = (provider.endpoint, api_key, json.dumps(headers, sort_keys=True), settings)

    def build() -> openai.OpenAI:
        # Before this client sends anything, whatever the provider echoes back of its
        # secrets is masked in the logs (once per client, not on every request).
        remember_secrets(provider_secrets(provider))
        return openai.OpenAI(
            base_url=provider.endpoint,
            api_key=api_key,
            default_headers=headers,
            timeout=openai.Timeout(settings.request_timeout, connect=settings.connect_timeout),
            max_retries=settings.max_retries,
        )

    return _cache.get(key, build)


def clear_client_cache() -> None:
    _cache.clear()


def provider_secrets(provider: LLMProvider) -> list[str]:
    """Every configured value that must never be shown: the key and secret-looking headers
    (and the credential inside a "<scheme> <credential>" value)."""
    values = [provider_api_key(provider) or ""]
    values += [
        str(value)
        for name, value in (provider.headers or {}).items()
        if _SECRET_HEADER.search(name)
    ]
    secrets = []
    for value in values:
        secrets.append(value)
        credential = _SCHEME_AND_CREDENTIAL.match(value)
        if credential:
            secrets.append(credential.group(1))
    return [secret for secret in secrets if len(secret) >= _MIN_SECRET_LENGTH]


def scrub(text: str, secrets: list[str]) -> str:
    """Replace each secret (and a Bearer token of any kind) in text with a mask."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return re.sub(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}", r"\1[redacted]", text)
