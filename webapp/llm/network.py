"""The HTTP client under every provider call: no redirects, and optionally no private hosts.

An OpenAI-compatible API has no reason to redirect, and following one would carry the
provider's key and headers to whatever host it names (past the private-address block,
too): redirects are never followed, and a 3xx is reported as an error that says where it
pointed (see webapp.llm.errors).

With the private-address block on, the check happens where the connection is made: each
name is resolved once, every address it resolves to must be public, and the socket then
connects to exactly the address that was checked — so DNS rebinding, or a name that
resolves inward after the provider was saved, is refused too.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

import httpcore2
import httpx2
import openai
from httpcore2._backends.sync import SyncBackend

from webapp.addresses import is_public_address


class PrivateAddressError(httpcore2.ConnectError):
    """The provider's host resolves to an address this server does not connect to."""


class PublicOnlyBackend(SyncBackend):
    """httpcore's socket backend, connecting only to public addresses."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        addresses = _resolve(host, port)
        private = [address for address in addresses if not is_public_address(address)]
        if private:
            raise PrivateAddressError(
                f"{host} resolves to {private[0]}, a private or loopback address, "
                "which this server does not connect to (MODELDESK_BLOCK_PRIVATE_URLS)"
            )
        error: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore2.ConnectError as failed:
                error = failed
        raise error or httpcore2.ConnectError(f"{host} has no address")


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise httpcore2.ConnectError(f"cannot resolve {host}: {error}") from error
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _PublicOnlyTransport(httpx2.HTTPTransport):
    """httpx's transport with the public-only backend under its connection pool."""

    def __init__(self, limits: httpx2.Limits, **kwargs: Any) -> None:
        super().__init__(limits=limits, **kwargs)
        # httpx builds its pool without a way to pass a network backend: rebuild it the
        # same way, with ours (httpx2 2.x keeps the pool in `_pool`).
        self._pool = httpcore2.ConnectionPool(
            ssl_context=self._pool._ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PublicOnlyBackend(),
        )


def http_client(timeout: openai.Timeout, *, block_private_addresses: bool) -> httpx2.Client:
    """The SDK's default HTTP client, never following redirects; public hosts only when
    `block_private_addresses`."""
    transport = (
        _PublicOnlyTransport(limits=openai.DEFAULT_CONNECTION_LIMITS)
        if block_private_addresses
        else None
    )
    return openai.DefaultHttpxClient(timeout=timeout, follow_redirects=False, transport=transport)
