"""Secret scrubbing: one implementation for upstream errors, log records and replies.

A provider's secrets are its API key and all its header values (and the credential inside a
"<scheme> <credential>" value, which a provider echoing what it received may print without
the scheme). `scrub` masks the secrets it is given and, beyond them, text that is shaped
like a credential whoever it belongs to:

- credentials after an auth scheme (`Bearer …`, `Basic …`);
- the values of fields whose names look secret (`Authorization`, `X-Api-Key`, `…-token`,
  `password`, …) in the shapes errors and logs print them: `name: value`, `name=value`,
  `'name': 'value'`, `"name": "value"`, `(b'name', b'value')`.

The secrets of every provider client this process built are remembered (`remember_secrets`)
so the log scrubber can mask them wherever they appear.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping

MASK = "[redacted]"
MIN_SECRET_LENGTH = 6
_MAX_KNOWN_SECRETS = 512

_SCHEME_AND_CREDENTIAL = re.compile(r"^\s*[A-Za-z][\w-]*\s+(\S+)\s*$")

# Bounded repeats: a long run of word characters must not make a log call slow.
_SECRET_NAME = (
    r"[\w-]{0,40}(?:authorization|api[-_]?key|secret|password|passwd|cookie)[\w-]{0,40}"
    r"|[\w-]{0,40}token\b"
)
# 'name': 'value' and "name": "value" (dict and JSON reprs), (b'name', b'value') (header lists).
_QUOTED_PAIR = re.compile(
    rf"""(?i)(b?(['"])(?:{_SECRET_NAME})\2\s*:\s*b?(['"]))((?:\\.|(?!\3).)*)(\3)"""
)
_TUPLE_PAIR = re.compile(
    rf"""(?i)(\(\s*b?(['"])(?:{_SECRET_NAME})\2\s*,\s*b?(['"]))((?:\\.|(?!\3).)*)(\3\s*\))"""
)
# name: value, name=value, name="value" (header lines, key=value log lines).
_BARE_PAIR = re.compile(
    rf"""(?i)((?<![\w-])(?:{_SECRET_NAME})\s*[:=]\s*)(?!(?:(?:bearer|basic)\s+)?\[redacted\])"""
    rf"""("[^"]*"|'[^']*'|(?:(?:bearer|basic|token)\s+)?(?:\[redacted\]|[^\s,;'"()\[\]{{}}]+))"""
)
# Most lines (request logs, SQL statements) name none of these: they skip the patterns above.
_MAY_NAME_A_SECRET = re.compile(
    r"(?i)authorization|api[-_]?key|secret|passw|cookie|token|bearer|basic"
)
_SCHEME_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic)(\s+)(?!\[redacted\])[A-Za-z0-9._~+/-]{6,}=*")


def secret_values(api_key: str | None, headers: Mapping[str, str] | None) -> list[str]:
    """Every configured value that must never be shown: the key and every header value,
    whatever its name (and the credential inside a "<scheme> <credential>" value). Values
    shorter than MIN_SECRET_LENGTH are left out: masking "1" everywhere would garble text."""
    values = [api_key or ""]
    values += [value for value in (headers or {}).values() if isinstance(value, str)]
    secrets = []
    for value in values:
        secrets.append(value)
        credential = _SCHEME_AND_CREDENTIAL.match(value)
        if credential:
            secrets.append(credential.group(1))
    return [secret for secret in secrets if len(secret) >= MIN_SECRET_LENGTH]


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with each of `secrets` and every credential-shaped value masked."""
    return _scrub_shapes(_mask(text, sorted(secrets, key=len, reverse=True)))


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """`text` with each of `secrets` masked, and nothing else changed (for model output,
    where credential-shaped text the provider did not send is the user's business)."""
    return _mask(text, sorted(secrets, key=len, reverse=True))


class StreamScrubber:
    """Masks secrets in text that arrives in pieces, even a secret split across two.

    `feed` returns what is safe to pass on now; the tail that could still grow into a
    secret is held back until the next piece (or `flush`) decides it.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted(set(secrets), key=len, reverse=True)
        self._pending = ""

    def feed(self, text: str) -> str:
        if not self._secrets:
            return text
        pending = _mask(self._pending + text, self._secrets)
        hold = self._held_back(pending)
        self._pending = pending[len(pending) - hold :] if hold else ""
        return pending[: len(pending) - hold]

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return rest

    def _held_back(self, text: str) -> int:
        """The length of the longest tail of `text` that begins some secret."""
        longest = 0
        for secret in self._secrets:
            start = max(len(text) - len(secret) + 1, 0)
            index = text.find(secret[0], start)
            while index != -1:
                if secret.startswith(text[index:]):
                    longest = max(longest, len(text) - index)
                    break
                index = text.find(secret[0], index + 1)
        return longest


def _mask(text: str, longest_first: Iterable[str]) -> str:
    for secret in longest_first:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _scrub_shapes(text: str) -> str:
    if not _MAY_NAME_A_SECRET.search(text):
        return text
    text = _SCHEME_CREDENTIAL.sub(rf"\1\2{MASK}", text)
    text = _QUOTED_PAIR.sub(rf"\1{MASK}\5", text)
    text = _TUPLE_PAIR.sub(rf"\1{MASK}\5", text)
    return _BARE_PAIR.sub(rf"\1{MASK}", text)


class _KnownSecrets:
    """The secrets of the providers this process has talked to (a bounded, ordered set)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._secrets: dict[str, None] = {}
        # Longest first, so a secret that contains another is masked whole. Replaced, never
        # mutated: readers on other threads take the current tuple without the lock.
        self.ordered: tuple[str, ...] = ()

    def add(self, secrets: Iterable[str]) -> None:
        fresh = [s for s in secrets if len(s) >= MIN_SECRET_LENGTH and s not in self._secrets]
        if not fresh:
            return
        with self._lock:
            for secret in fresh:
                self._secrets.pop(secret, None)
                self._secrets[secret] = None
            while len(self._secrets) > self._limit:
                del self._secrets[next(iter(self._secrets))]
            self.ordered = tuple(sorted(self._secrets, key=len, reverse=True))


_known = _KnownSecrets(_MAX_KNOWN_SECRETS)


def remember_secrets(secrets: Iterable[str]) -> None:
    """Mask these values in every log record from now on (called before they are sent)."""
    _known.add(secrets)


def scrub_known(text: str) -> str:
    """`scrub` with the secrets of every provider this process has built a client for."""
    return _scrub_shapes(_mask(text, _known.ordered))
