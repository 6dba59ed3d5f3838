"""A readable, secret-free sentence for whatever went wrong talking to a provider."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import openai

from webapp.llm.secrets import scrub


def describe_upstream_error(error: BaseException, secrets: Iterable[str]) -> str:
    """A readable one-line reason for a failed provider call, with secrets removed."""
    if isinstance(error, openai.APITimeoutError):
        message = "the provider did not answer in time (timeout)"
    elif isinstance(error, openai.APIConnectionError):
        # Refused, reset, or dropped mid-stream: the cause says which.
        cause = error.__cause__ or error
        message = f"the connection to the provider failed: {cause}"
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
