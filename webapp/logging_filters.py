"""Provider secrets are kept out of log records, whichever library writes them.

At DEBUG, httpcore2 logs the response headers of every provider call (a careless provider
echoes the credentials it was sent), and SQLAlchemy, once its logger is switched on, logs
every SQL parameter and every row — a provider row holds the decrypted API key and the
headers. A log record factory cleans each record as it is made, so every logger and every
handler (gunicorn's, pytest's, one added later) only ever sees the clean text:

- secrets this process has put into a provider client are masked wherever they appear;
- so are credentials after an auth scheme (`Bearer …`) and the values of fields whose names
  look secret (`Authorization`, `X-Api-Key`, `…-token`, `password`, …) in the shapes logs
  print them: `name: value`, `name=value`, `'name': 'value'`, `"name": "value"`,
  `(b'name', b'value')`;
- SQLAlchemy's parameter and row records lose their values (the statements stay): a row is
  logged before anything could tell which of its values is a secret.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import Any

MASK = "[redacted]"
SQL_VALUES_HIDDEN = "[values hidden: rows and parameters may hold provider secrets]"
_MIN_SECRET_LENGTH = 6
_MAX_KNOWN_SECRETS = 512

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
    rf"""(?i)((?<![\w-])(?:{_SECRET_NAME})\s*[:=]\s*)(?!\[redacted\])"""
    rf"""("[^"]*"|'[^']*'|(?:(?:bearer|basic|token)\s+)?(?:\[redacted\]|[^\s,;'"()\[\]{{}}]+))"""
)
# Most lines (request logs, SQL statements) name none of these: they skip the patterns above.
_MAY_NAME_A_SECRET = re.compile(
    r"(?i)authorization|api[-_]?key|secret|passw|cookie|token|bearer|basic"
)
_SCHEME_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic)(\s+)(?!\[redacted\])[A-Za-z0-9._~+/-]{6,}=*")


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
        fresh = [s for s in secrets if len(s) >= _MIN_SECRET_LENGTH and s not in self._secrets]
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


def scrub_log_text(text: str) -> str:
    """`text` with known secrets, scheme credentials and secret-named values masked."""
    for secret in _known.ordered:
        if secret in text:
            text = text.replace(secret, MASK)
    if not _MAY_NAME_A_SECRET.search(text):
        return text
    text = _SCHEME_CREDENTIAL.sub(rf"\1\2{MASK}", text)
    text = _QUOTED_PAIR.sub(rf"\1{MASK}\5", text)
    text = _TUPLE_PAIR.sub(rf"\1{MASK}\5", text)
    return _BARE_PAIR.sub(rf"\1{MASK}", text)


def _hide_sql_values(record: logging.LogRecord) -> None:
    """SQLAlchemy logs a row as ("Row %r", row) and parameters as ("[%s] %r", stats, params)."""
    if not isinstance(record.msg, str) or not record.msg.endswith("%r"):
        return
    args = record.args if isinstance(record.args, tuple) else ()
    if record.msg.endswith("Row %r") or (record.msg.endswith("] %r") and len(args) == 2):
        record.msg = record.msg[: -len("%r")] + SQL_VALUES_HIDDEN
        record.args = args[:-1]


def scrub_record(record: logging.LogRecord) -> None:
    """Clean one record in place: message, exception text and stack."""
    if record.name.startswith("sqlalchemy.engine"):
        _hide_sql_values(record)
    try:
        message = record.getMessage()
    except Exception:  # a broken log call: logging reports it when a handler formats it
        return
    clean = scrub_log_text(message)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        clean = scrub_log_text(text)
        if clean != text:
            # Formatters use exc_text when it is set instead of formatting exc_info again.
            record.exc_text = clean
    if record.stack_info:
        record.stack_info = scrub_log_text(record.stack_info)


def _scrubbing_factory(make_record: Callable[..., logging.LogRecord]) -> Any:
    def scrubbed_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        scrub_record(record)
        return record

    scrubbed_record.scrubs_secrets = True  # type: ignore[attr-defined]
    return scrubbed_record


def install_log_scrubbing() -> None:
    """Clean every log record this process makes from now on (idempotent)."""
    current = logging.getLogRecordFactory()
    if not getattr(current, "scrubs_secrets", False):
        logging.setLogRecordFactory(_scrubbing_factory(current))
