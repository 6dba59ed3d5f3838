"""A readable, secret-free sentence for whatever went wrong talking to a provider."""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping

import openai

from webapp.llm.secrets import scrub


def describe_upstream_error(error: BaseException, secrets: Iterable[str]) -> str:
    """A readable one-line reason for a failed provider call, with secrets removed."""
    if isinstance(error, openai.APITimeoutError):
        message = "the provider did not answer in time (timeout)"
    elif isinstance(error, openai.APIConnectionError):
        message = f"the connection to the provider failed: {_connection_failure(error)}"
    elif isinstance(error, openai.APIStatusError) and 300 <= error.status_code < 400:
        message = _redirect_message(error)
    elif isinstance(error, openai.APIStatusError):
        body = error.body if isinstance(error.body, Mapping) else {}
        detail = body.get("message") or error.message
        message = f"the provider answered HTTP {error.status_code}: {detail}"
    elif isinstance(error, openai.APIError):
        message = f"the provider reported an error: {error.message}"
    else:
        message = f"the request failed: {type(error).__name__}: {error}"
    return scrub(message, secrets)


def _redirect_message(error: openai.APIStatusError) -> str:
    location = error.response.headers.get("location")
    target = str(error.response.url.join(location)) if location else "another address"
    return (
        f"the provider redirected (HTTP {error.status_code}) to {target}; ModelDesk does not "
        "follow redirects: set the provider's base URL to where it points"
    )


def _connection_failure(error: openai.APIConnectionError) -> str:
    """What went wrong, in words: the socket error's "[Errno -2] Name or service not known"
    alone does not tell a reader which host or what to fix."""
    reason = _os_error_reason(error)
    if reason is None:
        # Reset or dropped mid-stream, or a proxy's answer: the cause's own text says which.
        return str(error.__cause__ or error)
    host = error.request.url.host if error.request is not None else "the provider"
    return f"could not reach {host}: {reason}"


def _os_error_reason(error: BaseException) -> str | None:
    """The reason of the operating-system error under the HTTP libraries' wrappers, if any."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return _NAME_ERRORS.get(current.errno, "the name could not be looked up")
        if isinstance(current, ConnectionRefusedError):
            return "connection refused (nothing listens on that port)"
        if isinstance(current, OSError) and current.strerror:
            return current.strerror[:1].lower() + current.strerror[1:]
        current = current.__cause__ or current.__context__
    return None


# getaddrinfo's errors by number: the name does not exist, or DNS did not answer.
_NAME_ERRORS = {
    socket.EAI_NONAME: "name not found",
    socket.EAI_AGAIN: "name lookup failed for now (DNS did not answer)",
}
