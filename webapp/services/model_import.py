"""Importing models from a provider's /models endpoint: list what it serves, add the chosen."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from webapp.extensions import db
from webapp.llm.errors import describe_upstream_error
from webapp.models import LLMModel, LLMProvider, ValidationError
from webapp.models.validation import is_storable
from webapp.services import records
from webapp.services.llm_config import provider_spec
from webapp.services.providers import quick_client

MAX_IMPORT_IDS = 5000
MAX_MODEL_ID_LENGTH: int = LLMModel.__table__.c.model.type.length


@dataclass(frozen=True)
class ImportCandidate:
    model_id: str
    exists: bool


@dataclass
class ImportListing:
    """What the provider lists, each id marked new or already added; or why it failed."""

    candidates: list[ImportCandidate] = field(default_factory=list)
    error: str | None = None

    @property
    def new_count(self) -> int:
        return sum(not candidate.exists for candidate in self.candidates)


@dataclass(frozen=True)
class ImportOutcome:
    added: list[str]
    skipped: list[str]


def _clean_model_ids(ids: Iterable[Any]) -> tuple[list[str], list[str]]:
    """Usable model ids (stripped, deduplicated, in order) and the ones that are not."""
    usable: list[str] = []
    rejected: list[str] = []
    seen: set[str] = set()
    for raw in ids:
        model_id = raw.strip() if isinstance(raw, str) else ""
        if not model_id or len(model_id) > MAX_MODEL_ID_LENGTH or not is_storable(model_id):
            rejected.append(str(raw)[:80])
        elif model_id not in seen:
            seen.add(model_id)
            usable.append(model_id)
    return usable, rejected


def _existing_model_ids(provider_id: int) -> set[str]:
    query = select(LLMModel.model).where(LLMModel.llm_provider_id == provider_id)
    return set(db.session.scalars(query))


def fetch_import_listing(provider: LLMProvider) -> ImportListing:
    """Ask the provider's /models endpoint what it serves (short timeouts, no retries)."""
    try:
        page = quick_client(provider).models.list()
        data = getattr(page, "data", None)
        if not isinstance(data, list):
            return ImportListing(error="the provider answered, but not with a list of models")
        ids, _ = _clean_model_ids(getattr(item, "id", None) for item in data)
    except Exception as error:  # the edge: any failure is shown, not raised
        return ImportListing(error=describe_upstream_error(error, provider_spec(provider).secrets))
    existing = _existing_model_ids(provider.id)
    candidates = [ImportCandidate(model_id, model_id in existing) for model_id in sorted(ids)]
    return ImportListing(candidates[:MAX_IMPORT_IDS])


@dataclass(frozen=True)
class ProviderCheck:
    """A provider's `/models` answered — how fast, with how many models — or why not."""

    latency_ms: float
    model_count: int | None
    error: str | None


def check_provider(provider: LLMProvider) -> ProviderCheck:
    """List the provider's models (the "Check connection" of the providers pages)."""
    start = time.perf_counter()
    listing = fetch_import_listing(provider)
    latency_ms = round((time.perf_counter() - start) * 1000, 1)
    count = None if listing.error else len(listing.candidates)
    return ProviderCheck(latency_ms, count, listing.error)


def import_models(provider: LLMProvider, model_ids: Iterable[str]) -> ImportOutcome:
    """Create the given models, disabled, named after their id, in one transaction.

    Create-only: ids the provider already has (also ones another request commits while this
    one runs) are skipped, never changed; ids that cannot be model ids are skipped too. A
    clash on one id never loses the others: after a failed batch each id gets its own
    savepoint.
    """
    wanted, rejected = _clean_model_ids(list(model_ids)[:MAX_IMPORT_IDS])
    if not wanted:
        return ImportOutcome([], rejected)
    provider_id = provider.id  # read now: a rollback expires the row (it may be gone)
    inserted = _insert_batch(provider_id, wanted)
    if inserted is None:
        inserted = _insert_one_by_one(provider_id, wanted)
    added = [model_id for model_id in wanted if model_id in inserted]
    skipped = [model_id for model_id in wanted if model_id not in inserted] + rejected
    return ImportOutcome(added, skipped)


def _new_ids(provider_id: int, wanted: list[str]) -> list[str]:
    """The wanted ids the provider does not have yet, sorted: every importer inserts in the
    same order, so two of them wait for each other instead of deadlocking (PostgreSQL)."""
    records.lock_for_writing(db.session)
    existing = _existing_model_ids(provider_id)
    return sorted(model_id for model_id in wanted if model_id not in existing)


def _new_model(provider_id: int, model_id: str) -> LLMModel:
    # By id, not by relation: a row rolled back to its savepoint must not stay in the
    # provider's collection and come back at the next flush.
    return LLMModel(llm_provider_id=provider_id, model=model_id, name=model_id, enabled=False)


def _insert_batch(provider_id: int, wanted: list[str]) -> set[str] | None:
    """All new ids in one flush (the common case); None when another request got in first."""
    new_ids = _new_ids(provider_id, wanted)
    db.session.add_all(_new_model(provider_id, model_id) for model_id in new_ids)
    try:
        db.session.commit()
    except (IntegrityError, ValidationError):
        db.session.rollback()
        return None
    return set(new_ids)


def _insert_one_by_one(provider_id: int, wanted: list[str]) -> set[str]:
    """Each new id in its own savepoint: one that someone else committed meanwhile (the
    unique constraint, or validation seeing their row) is skipped, the others are kept."""
    inserted: set[str] = set()
    for model_id in _new_ids(provider_id, wanted):
        try:
            with db.session.begin_nested():
                db.session.add(_new_model(provider_id, model_id))
        except (IntegrityError, ValidationError):
            continue
        inserted.add(model_id)
    db.session.commit()
    return inserted
