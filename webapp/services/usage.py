"""Usage: one record per request served — a gateway call (an app key) or a chat reply (a user)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

GATEWAY = "gateway"
CHAT = "chat"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class UsageEvent:
    """What one request cost and how it went.

    `status` is the HTTP status the caller got (a chat reply: 200 when it completed, else the
    status its result code maps to); `error_code` names why it failed (an OpenAI error code on
    the gateway, a result code in the chat). Token counts come from the upstream's usage;
    `estimated` says they were counted here because the upstream sent none.
    """

    source: str
    status: int
    total_ms: float
    stream: bool
    model_key: str | None = None
    llm_model_id: int | None = None
    preset_key: str | None = None
    app_key_id: int | None = None
    user_id: int | None = None
    error_code: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    estimated: bool = False
    ttft_ms: float | None = None
    created_at: datetime = field(default_factory=_now)


_pending: list[UsageEvent] = []
_pending_lock = threading.Lock()


def record(event: UsageEvent) -> None:
    """Keep `event` for the usage tables; never blocks on the database (the hot path calls it)."""
    with _pending_lock:
        _pending.append(event)


def take_pending() -> list[UsageEvent]:
    """The events recorded since the last call, oldest first."""
    with _pending_lock:
        events = list(_pending)
        _pending.clear()
    return events
