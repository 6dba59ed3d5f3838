"""The HTTP client under every provider call: no redirects, optionally no private hosts,
and a way for another thread to cut a call that is waiting on a silent provider.

An OpenAI-compatible API has no reason to redirect, and following one would carry the
provider's key and headers to whatever host it names (past the private-address block,
too): redirects are never followed, and a 3xx is reported as an error that says where it
pointed (see webapp.llm.errors).

With the private-address block on, the check happens where the connection is made: each
name is resolved once, every address it resolves to must be public, and the socket then
connects to exactly the address that was checked — so DNS rebinding, or a name that
resolves inward after the provider was saved, is refused too.

A thread blocked reading a provider's socket cannot be interrupted by closing the response
from another thread; shutting the socket down can. `Cancellation` collects the sockets of
the calls made while it is `active` (opened by our backend, or reused from the pool and
found on the response), and `cancel()` shuts them down.

A response whose content is over (a stream's `[DONE]`) still has the end of its body on the
wire; closing it before that end closes the connection too. `finish_body` reads that end,
within a short deadline, so the connection goes back to the pool and the next call to the
provider skips the TCP (and TLS) handshake.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.request import getproxies

import httpcore2
import httpx2
import openai
from httpcore2._backends.sync import SyncBackend

from webapp.addresses import is_public_address


class PrivateAddressError(httpcore2.ConnectError):
    """The provider's host resolves to an address this server does not connect to."""


class Cancellation:
    """The sockets of one provider call, so another thread can cut it short."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.cancelled = False

    def add(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if sock not in self._sockets:
                self._sockets.append(sock)
            cut_now = self.cancelled
        if cut_now:
            _shut(sock)

    def add_response(self, response: httpx2.Response) -> None:
        """The socket a response arrives on (a pooled connection never passes the backend)."""
        stream = response.extensions.get("network_stream")
        self.add(stream.get_extra_info("socket") if stream is not None else None)

    def cancel(self) -> None:
        """Stop the call: a read blocked on any of its sockets ends with an error at once."""
        with self._lock:
            self.cancelled = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    @contextlib.contextmanager
    def active(self) -> Iterator[Cancellation]:
        """Collect the sockets this thread opens for provider calls while inside."""
        previous = getattr(_calls, "current", None)
        _calls.current = self
        try:
            yield self
        finally:
            _calls.current = previous


_calls = threading.local()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


@dataclass
class _Attempt:
    """One request as it went over a connection (see `_ProviderTransport`)."""

    requests_on_connection: int  # this one included: 1 on a new connection
    sent_at: float
    answered: bool = False  # some byte of a response arrived


class ProviderStream(httpcore2.NetworkStream):
    """A connection's socket stream whose reads can be given a deadline (`finish_body`):
    httpcore passes the same read timeout to every read of a body. Each request written
    joins the thread's active `Cancellation` (a pooled connection never passes the backend)
    and is noted as the thread's `_Attempt`."""

    def __init__(self, stream: httpcore2.NetworkStream) -> None:
        self._stream = stream
        self._deadline: float | None = None
        self._requests = 0
        self._writing = False

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """Every read inside gives up (ReadTimeout) `seconds` from now at the latest."""
        self._deadline = time.monotonic() + seconds
        try:
            yield
        finally:
            # The connection may go back to the pool: its next request reads as usual.
            self._deadline = None

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._deadline is not None:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise httpcore2.ReadTimeout("the end of the body did not arrive in time")
            timeout = left if timeout is None else min(timeout, left)
        self._writing = False
        data = self._stream.read(max_bytes, timeout)
        attempt: _Attempt | None = getattr(_calls, "attempt", None)
        if data and attempt is not None:
            attempt.answered = True
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not self._writing:  # a write after a read (or the first) begins a request
            self._writing = True
            self._requests += 1
            _calls.attempt = _Attempt(self._requests, time.monotonic())
            cancellation: Cancellation | None = getattr(_calls, "current", None)
            if cancellation is not None:
                cancellation.add(self.get_extra_info("socket"))
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.NetworkStream:
        return ProviderStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


def finish_body(response: httpx2.Response, rest: Iterator[bytes], within: float) -> None:
    """Read `rest` (what is left of the response's body) to its end within `within`
    seconds, then close the response: read to its end, its connection returns to the pool;
    cut short (a provider that keeps the body open), the connection is closed instead.

    On a connection that did not come from our backend (behind a proxy) there is no
    deadline to set: the response is closed at once, as before.
    """
    stream = response.extensions.get("network_stream")
    if isinstance(stream, ProviderStream) and not response.is_closed:
        with stream.deadline(within), contextlib.suppress(httpx2.HTTPError, httpx2.StreamError):
            for _ in rest:
                pass
    response.close()


class ProviderBackend(SyncBackend):
    """httpcore's socket backend: resolves once, connects only to public addresses when
    asked, and hands each socket to the thread's active `Cancellation`."""

    def __init__(self, *, public_only: bool) -> None:
        self.public_only = public_only

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
        if self.public_only and private:
            raise PrivateAddressError(
                f"{host} resolves to {private[0]}, a private or loopback address, "
                "which this server does not connect to (MODELDESK_BLOCK_PRIVATE_URLS)"
            )
        error: Exception | None = None
        for address in addresses:
            try:
                stream = super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore2.ConnectError as failed:
                error = failed
                continue
            cancellation = getattr(_calls, "current", None)
            if cancellation is not None:
                cancellation.add(stream.get_extra_info("socket"))
            return ProviderStream(stream)
        raise error or httpcore2.ConnectError(f"{host} has no address")


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise httpcore2.ConnectError(f"cannot resolve {host}: {error}") from error
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# How soon after a request went out on a reused connection a hang-up counts as the
# connection's keep-alive running out (the provider never saw the request), not as the
# provider failing while it worked on it.
STALE_CONNECTION_SECONDS = 1.0


class _ProviderTransport(httpx2.HTTPTransport):
    """httpx's transport with our backend under its connection pool, sending a request once
    more when the provider hung up on a reused connection just as the request went out.

    A pooled connection can be closed by the provider just as it is reused: both sides'
    keep-alive timers run out together (httpx's and many servers' are 5 s), and the request
    meets a closed socket — "server disconnected without sending a response", or a reset,
    at once. The provider never saw that request, so it is sent again, once, on a connection
    the pool opens or finds alive. Anything else is not retried: a new connection, a hang-up
    after some of the response or later than STALE_CONNECTION_SECONDS (the provider may have
    done the work), a timeout, or a call that was stopped.
    """

    def __init__(self, limits: httpx2.Limits, *, public_only: bool) -> None:
        super().__init__(limits=limits)
        # httpx builds its pool without a way to pass a network backend: rebuild it the
        # same way, with ours (httpx2 2.x keeps the pool in `_pool`).
        self._pool = httpcore2.ConnectionPool(
            ssl_context=self._pool._ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=ProviderBackend(public_only=public_only),
        )

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        _calls.attempt = None
        try:
            return super().handle_request(request)
        except (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.WriteError):
            if not _hung_up_on_reuse(getattr(_calls, "attempt", None)):
                raise
            return super().handle_request(request)


def _hung_up_on_reuse(attempt: _Attempt | None) -> bool:
    call: Cancellation | None = getattr(_calls, "current", None)
    return (
        attempt is not None
        and attempt.requests_on_connection > 1
        and not attempt.answered
        and time.monotonic() - attempt.sent_at < STALE_CONNECTION_SECONDS
        and not (call is not None and call.cancelled)
    )


def http_client(timeout: openai.Timeout, *, block_private_addresses: bool) -> httpx2.Client:
    """The SDK's default HTTP client, never following redirects; public hosts only when
    `block_private_addresses`.

    Behind an HTTP proxy from the environment (HTTPS_PROXY …) the proxy is kept unless the
    block is on (an address cannot be checked through a proxy): a call is then cancelled
    through the response's socket, once the provider has started answering.
    """
    if getproxies() and not block_private_addresses:
        return openai.DefaultHttpxClient(timeout=timeout, follow_redirects=False)
    transport = _ProviderTransport(
        openai.DEFAULT_CONNECTION_LIMITS, public_only=block_private_addresses
    )
    return openai.DefaultHttpxClient(timeout=timeout, follow_redirects=False, transport=transport)
