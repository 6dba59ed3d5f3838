"""One cached `openai.OpenAI` client per provider configuration."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openai

from webapp.llm.network import http_client
from webapp.llm.secrets import remember_secrets
from webapp.llm.specs import ProviderSpec

# Sent as "Authorization: Bearer <placeholder>" for providers with no key (Ollama, the mock):
# the SDK refuses an empty key, and keyless servers ignore the header.
NO_API_KEY_PLACEHOLDER = "no-key"

_CACHE_SIZE = 128


@dataclass(frozen=True)
class ClientSettings:
    """Timeouts and retries for provider calls (the SDK's own default is 600 s, 2 retries)."""

    request_timeout: float = 60.0
    connect_timeout: float = 5.0
    max_retries: int = 0
    # MODELDESK_BLOCK_PRIVATE_URLS: connect only to public addresses (webapp.llm.network).
    block_private_addresses: bool = False


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


_cache = _ClientCache(_CACHE_SIZE)


def client_for(provider: ProviderSpec, settings: ClientSettings) -> openai.OpenAI:
    """The OpenAI SDK client for a provider: its endpoint, key and default headers."""
    api_key = provider.api_key or NO_API_KEY_PLACEHOLDER
    headers = dict(provider.headers)
    key = (provider.endpoint, api_key, json.dumps(headers, sort_keys=True), settings)

    def build() -> openai.OpenAI:
        # Before this client sends anything, whatever the provider echoes back of its
        # secrets is masked in the logs (once per client, not on every request).
        remember_secrets(provider.secrets)
        timeout = openai.Timeout(settings.request_timeout, connect=settings.connect_timeout)
        return openai.OpenAI(
            base_url=provider.endpoint,
            api_key=api_key,
            default_headers=headers,
            timeout=timeout,
            max_retries=settings.max_retries,
            http_client=http_client(
                timeout, block_private_addresses=settings.block_private_addresses
            ),
        )

    return _cache.get(key, build)
