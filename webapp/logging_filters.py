"""Provider secrets are kept out of log records, whichever library writes them.

At DEBUG, httpcore2 logs the response headers of every provider call (a careless provider
echoes the credentials it was sent), and SQLAlchemy, once its logger is switched on, logs
every SQL parameter and every row — a provider row holds the decrypted API key and the
headers. A log record factory cleans each record as it is made, so every logger and every
handler (gunicorn's, pytest's, one added later) only ever sees the clean text:

- the engine's scrubber (`webapp.llm.secrets.scrub_known`) masks the secrets of every
  provider client this process built and every credential-shaped value;
- SQLAlchemy's parameter and row records lose their values (the statements stay): a row is
  logged before anything could tell which of its values is a secret.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from webapp.llm.secrets import scrub_known

SQL_VALUES_HIDDEN = "[values hidden: rows and parameters may hold provider secrets]"


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
    clean = scrub_known(message)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        clean = scrub_known(text)
        if clean != text:
            # Formatters use exc_text when it is set instead of formatting exc_info again.
            record.exc_text = clean
    if record.stack_info:
        record.stack_info = scrub_known(record.stack_info)


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
