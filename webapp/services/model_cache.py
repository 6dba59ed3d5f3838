"""Models with their provider and presets, kept per process between replies.

Every reply needs its model's whole configuration (provider, presets); reading it costs two
queries and the ORM's object building each time, for rows that rarely change. The claim that
starts a reply returns the configuration's version alongside (`version_columns`: the model's,
its provider's and its presets' optimistic-locking versions and timestamps, from scalar
subqueries), so the cached copy is used while the version matches and an edit is seen by the
very next reply.

The cached rows are detached from any session, fully loaded, and only read.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import ColumnElement, Engine, literal_column
from sqlalchemy.orm import Session, joinedload, selectinload

from webapp.models import LLMModel

# Models remembered per process; past it the cache starts afresh (a deployment with more
# models than this simply reads some of them each time).
MAX_CACHED_MODELS = 1_000

Version = tuple[Any, ...]


def version_columns(llm_model_id: str) -> list[ColumnElement[Any]]:
    """Scalar subqueries that change whenever the model, its provider or any of its presets
    is edited, added or deleted, for a RETURNING or SELECT list; `llm_model_id` is the
    qualified column holding the model's id (e.g. "chat_messages.llm_model_id").

    Written out in SQL: SQLAlchemy renders a RETURNING list without table names, which would
    make these subqueries compare a column with itself.
    """
    model = f"(SELECT {{}} FROM llm_models m WHERE m.id = {llm_model_id})"
    provider = (
        "(SELECT {} FROM llm_providers p JOIN llm_models m ON m.llm_provider_id = p.id "
        f"WHERE m.id = {llm_model_id})"
    )
    presets = f"(SELECT {{}} FROM llm_presets s WHERE s.llm_model_id = {llm_model_id})"
    parts = (
        model.format("m.version"),
        model.format("m.updated_at"),
        provider.format("p.version"),
        provider.format("p.updated_at"),
        presets.format("count(*)"),
        presets.format("max(s.updated_at)"),
        presets.format("coalesce(sum(s.version), 0)"),
    )
    return [literal_column(part) for part in parts]


class ModelCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[int, tuple[Version, LLMModel]] = {}

    def get(self, engine: Engine, model_id: int, version: Version) -> LLMModel | None:
        """The model as of `version`: the cached copy when it matches, else read now (in a
        session of its own, then detached) and kept. None when the model is gone."""
        with self._lock:
            cached = self._models.get(model_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        with Session(engine) as session:
            llm_model = session.get(
                LLMModel,
                model_id,
                options=[joinedload(LLMModel.llm_provider), selectinload(LLMModel.llm_presets)],
            )
            session.expunge_all()
        if llm_model is None:
            return None
        with self._lock:
            if len(self._models) >= MAX_CACHED_MODELS:
                self._models.clear()
            self._models[model_id] = (version, llm_model)
        return llm_model

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
