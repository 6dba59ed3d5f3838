"""Capability probes on configured models: run them, record when, apply what they observed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webapp.extensions import db
from webapp.llm.probe import CAPABILITY_COLUMNS, DEFAULT_TIME_LIMIT, ProbeReport

__all__ = [
    "CAPABILITY_COLUMNS",
    "DEFAULT_TIME_LIMIT",
    "ProbeReport",
    "apply_observed",
    "probe_model",
]
from webapp.llm.probe import probe_capabilities as run_probes
from webapp.models import LLMModel
from webapp.models.types import utcnow
from webapp.services import records
from webapp.services.llm_config import model_spec, provider_client

# A person waits on the model page while the five probes run (at once).
PAGE_TIME_LIMIT = 15.0


def probe_model(
    llm_model: LLMModel, *, client: Any = None, time_limit: float = DEFAULT_TIME_LIMIT
) -> ProbeReport:
    """Send the five small capability requests to the model (at once, each within
    `time_limit` seconds) and record `capabilities_probed_at`. Changes no flag."""
    report = run_probes(
        model_spec(llm_model),
        client or provider_client(llm_model.llm_provider),
        time_limit=time_limit,
    )
    records.stamp(llm_model, capabilities_probed_at=utcnow())
    return report


def apply_observed(llm_model: LLMModel, observed: Mapping[str, bool | None]) -> list[str]:
    """Set each capability flag to its observed value; None (could not tell) and unknown
    names change nothing. Returns the columns whose value changed."""
    changed = []
    for column in CAPABILITY_COLUMNS:
        value = observed.get(column)
        if value is None or getattr(llm_model, column) == value:
            continue
        setattr(llm_model, column, bool(value))
        changed.append(column)
    if changed:
        db.session.commit()
    return changed
