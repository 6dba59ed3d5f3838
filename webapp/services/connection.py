"""Connection test for a model (the spec's TestLLMModelConnection)."""

from __future__ import annotations

import time
from typing import Any

from webapp.extensions import db
from webapp.models import LLMModel
from webapp.models.types import utcnow
from webapp.services import result as codes
from webapp.services.chat import describe_upstream_error
from webapp.services.clients import client_for, provider_secrets
from webapp.services.result import Result

PING_REQUEST: dict[str, Any] = {
    "messages": [{"role": "user", "content": "ping"}],
    "max_tokens": 1,
    "temperature": 0,
}


def check_model_connection(llm_model: LLMModel, *, client: Any = None) -> Result:
    """Send one tiny completion to the model.

    Success sets `connection_tested_at` and returns `latency_ms`; any failure clears it and
    returns the reason (secrets removed). Works whether or not the model is enabled.
    """
    provider = llm_model.llm_provider
    client = client if client is not None else client_for(provider)
    start = time.perf_counter()
    try:
        client.chat.completions.create(model=llm_model.model, **PING_REQUEST)
    except Exception as error:  # the edge: any failure means "not working"
        latency_ms = round((time.perf_counter() - start) * 1000, 1)
        llm_model.connection_tested_at = None
        db.session.commit()
        message = describe_upstream_error(error, provider_secrets(provider))
        return Result.failure(codes.LLM_REQUEST_FAILED, message, latency_ms=latency_ms)
    latency_ms = round((time.perf_counter() - start) * 1000, 1)
    llm_model.connection_tested_at = utcnow()
    db.session.commit()
    return Result.ok(latency_ms=latency_ms, tested_at=llm_model.connection_tested_at)
