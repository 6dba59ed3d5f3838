"""Checking pooled connections only when they may have died: after sitting idle a while.

SQLAlchemy's `pool_pre_ping` costs a round trip on every checkout — on the chat stream's hot
path, several per reply. A connection in steady use is alive (a query on it just worked), and
one that died under load fails its statement once, which invalidates the whole pool (every
connection older than the failure is replaced). So only a connection that sat unused longer
than `IDLE_PING_SECONDS` — past a database restart, a failover, a proxy's idle cut — is
pinged on checkout; a dead one is replaced before anyone uses it. `pool_recycle` still
retires every connection after a while.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, event, exc

IDLE_PING_SECONDS = 10.0
_CHECKED_IN_AT = "modeldesk_checked_in_at"


def ping_idle_connections(engine: Engine, idle_seconds: float = IDLE_PING_SECONDS) -> None:
    """Install the idle check on `engine`'s pool."""

    @event.listens_for(engine, "checkin")
    def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in = record.info.get(_CHECKED_IN_AT)
        if checked_in is None or time.monotonic() - checked_in < idle_seconds:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception as error:
            # The pool replaces the connection and checks out another (up to three tries).
            raise exc.DisconnectionError(f"an idle connection was dead: {error}") from error
