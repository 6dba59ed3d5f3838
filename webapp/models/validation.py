"""Per-field validation shared by the models, and the flush hook that enforces it.

Every model has `validation_errors() -> dict[str, list[str]]`. A flush of an invalid
instance raises `ValidationError`, so no path (views, CLI, seeds, scripts) stores bad data.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import event
from sqlalchemy.orm import Session

from webapp.addresses import is_public_address
from webapp.models.types import UnreadableHeaderValue

Errors = dict[str, list[str]]

# Ids and counters are 32-bit integer columns: nothing above this can be stored or found.
MAX_INT = 2**31 - 1

# NUL cannot be stored in PostgreSQL text, and lone surrogates cannot be encoded: the one rule
# for user text that the database could not keep.
UNSTORABLE_CHARACTERS = re.compile(r"[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "must not contain NUL or unpaired surrogate characters"

RESERVED_OPTION_KEYS = frozenset(
    {"model", "messages", "tools", "tool_choice", "response_format", "stream", "stream_options"}
)

# RFC 9110 field-name token characters.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Header values go on the wire as ASCII (httpx2 encodes them so and raises UnicodeEncodeError
# otherwise); h11 refuses CR, LF, NUL, VT, FF and leading or trailing space / tab; RFC 9110
# allows no control character but HTAB (DEL and the other C0 ones get a request refused).
_HEADER_VALUE_LINE_BREAK = re.compile(r"[\r\n\x00]")
_HEADER_VALUE_CONTROL = re.compile(r"[\x01-\x08\x0b-\x1f\x7f]")
_HEADER_VALUE_NON_ASCII = re.compile(r"[^\x00-\x7f]")


class ValidationError(ValueError):
    """Raised when invalid data would be written; `.errors` maps field → messages."""

    def __init__(self, errors: Errors) -> None:
        self.errors = errors
        summary = "; ".join(f"{field} {', '.join(msgs)}" for field, msgs in errors.items())
        super().__init__(summary or "invalid")


def add(errors: Errors, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def normalize_key(value: str | None) -> str | None:
    """Strip and lower-case a locator key; a blank key is no key."""
    if value is None:
        return None
    normalized = str(value).strip().lower()
    return normalized or None


def strip_text(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def is_storable(text: str) -> bool:
    """True when every database can store `text` as it is (see UNSTORABLE_MESSAGE)."""
    return UNSTORABLE_CHARACTERS.search(text) is None


def check_present(errors: Errors, field: str, value: Any) -> None:
    if value is None or (isinstance(value, str) and not value.strip()):
        add(errors, field, "can't be blank")


def check_max_length(errors: Errors, field: str, value: str | None, limit: int) -> None:
    if isinstance(value, str) and len(value) > limit:
        add(errors, field, f"is too long (at most {limit} characters)")


def check_non_negative_int(errors: Errors, field: str, value: Any, *, nullable: bool) -> None:
    if value is None:
        if not nullable:
            add(errors, field, "can't be blank")
        return
    if isinstance(value, bool) or not isinstance(value, int):
        add(errors, field, "must be a whole number")
    elif value < 0:
        add(errors, field, "must be greater than or equal to 0")
    elif value > MAX_INT:
        add(errors, field, "is too large")


def check_http_url(errors: Errors, field: str, value: str | None) -> None:
    if not value:
        return
    try:
        parts = urlsplit(value)
    except ValueError:
        add(errors, field, "must be an http(s) URL")
        return
    if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", value):
        add(errors, field, "must be an http(s) URL")
    elif parts.query or parts.fragment:
        add(errors, field, "must not have a query string or fragment")


def is_private_target(url: str) -> bool:
    """True when the URL's host is loopback, private, link-local or otherwise not public.

    Host names are resolved now, at save time; the engine checks the address again at
    every connection (webapp.llm.network), so a name that later resolves inward is caught
    there.
    """
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if not host or host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return not is_public_address(host)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False  # unresolvable: the request itself will fail
    return any(not is_public_address(str(info[4][0])) for info in infos)


def check_public_url(errors: Errors, field: str, value: str | None) -> None:
    if value and field not in errors and is_private_target(value):
        add(errors, field, "points at a private or loopback address, which this server blocks")


def check_api_prefix(errors: Errors, field: str, value: str | None) -> None:
    if value is None:
        add(errors, field, "can't be null (use an empty string for no prefix)")
    elif value and (not value.startswith("/") or re.search(r"[\s?#]", value)):
        add(errors, field, "must be empty or a path starting with /")


def base_url_without_prefix(base_url: str | None, api_prefix: str | None) -> str | None:
    """The base URL without the API prefix it already ends with ("…/v1" with prefix "/v1":
    requests would go to "…/v1/v1"); None when it does not end with it."""
    prefix = (api_prefix or "").rstrip("/")
    base = (base_url or "").strip().rstrip("/")
    if not prefix.startswith("/") or not isinstance(base_url, str):
        return None
    parts = urlsplit(base)
    if not parts.netloc or parts.query or parts.fragment or not parts.path.endswith(prefix):
        return None
    return base[: -len(prefix)]


def check_base_url_prefix(
    errors: Errors, field: str, base_url: str | None, api_prefix: str | None
) -> None:
    fixed = base_url_without_prefix(base_url, api_prefix)
    if fixed is not None:
        add(
            errors,
            field,
            f"already ends with the API prefix {api_prefix} (requests would go to"
            f" {(api_prefix or '').rstrip('/')}{api_prefix}): use {fixed}",
        )


def check_headers(errors: Errors, field: str, value: Any) -> None:
    if not isinstance(value, dict):
        add(errors, field, "must be a JSON object")
        return
    for name, header_value in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            add(errors, field, f"has an invalid header name: {name!r}")
        elif isinstance(header_value, UnreadableHeaderValue):
            continue  # the stored ciphertext, kept as it is (see UnreadableHeaderValue)
        elif not isinstance(header_value, str):
            add(errors, field, f"value of {name} must be a string")
        else:
            check_header_value(errors, field, name, header_value)


def check_header_value(errors: Errors, field: str, name: str, value: str) -> None:
    """A value the HTTP client can send as it is, or the one reason it cannot."""
    if _HEADER_VALUE_LINE_BREAK.search(value):
        add(errors, field, f"value of {name} must not contain CR, LF or NUL")
    elif _HEADER_VALUE_CONTROL.search(value):
        add(errors, field, f"value of {name} must not contain control characters")
    elif _HEADER_VALUE_NON_ASCII.search(value):
        add(errors, field, f"value of {name} must be ASCII text (HTTP sends header values so)")
    elif value != value.strip(" \t"):
        add(errors, field, f"value of {name} must not start or end with a space or tab")


def check_options(errors: Errors, field: str, value: Any) -> None:
    if not isinstance(value, dict):
        add(errors, field, "must be a JSON object")
        return
    reserved = sorted(k for k in value if k in RESERVED_OPTION_KEYS)
    if reserved:
        add(errors, field, f"contains reserved keys: {', '.join(reserved)}")


def check_boolean(errors: Errors, field: str, value: Any) -> None:
    if not isinstance(value, bool):
        add(errors, field, "must be true or false")


def validate_objects(objects: Iterable[object]) -> None:
    for obj in objects:
        validator = getattr(obj, "validation_errors", None)
        if validator is None:
            continue
        errors = validator()
        if errors:
            raise ValidationError(errors)


@event.listens_for(Session, "before_flush")
def _validate_before_flush(session: Session, _context: Any, _instances: Any) -> None:
    # Uniqueness checks query the database: no autoflush inside the flush.
    with session.no_autoflush:
        validate_objects(list(session.new) + [o for o in session.dirty if session.is_modified(o)])


def storable(text: str) -> str:
    """Text every database can store: NUL is the one character PostgreSQL refuses (in text
    that is not the user's to fix, such as a model's reply)."""
    return text.replace("\x00", "\ufffd")
