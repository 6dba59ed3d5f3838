"""Importing models when another request has committed some of the same ids meanwhile."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text

from tests.support.factories import make_model, make_provider
from webapp.extensions import db
from webapp.models import LLMModel, LLMProvider
from webapp.services import model_import


def model_counts(provider: LLMProvider) -> dict[str, int]:
    query = (
        select(LLMModel.model, func.count())
        .where(LLMModel.llm_provider_id == provider.id)
        .group_by(LLMModel.model)
    )
    return dict(db.session.execute(query).all())


@pytest.fixture
def stale_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The import's look at existing ids misses rows committed just before it: the state
    of a race where another request commits between the check and the insert."""
    monkeypatch.setattr(model_import, "_existing_model_ids", lambda _provider: set())


def test_ids_committed_between_check_and_insert_are_skipped_and_the_rest_added(
    app: Any, stale_check: None
) -> None:
    provider = make_provider()
    make_model(provider, model="b", name="Theirs b", enabled=True)
    make_model(provider, model="d", name="Theirs d")

    outcome = model_import.import_models(provider, ["a", "b", "c", "d", "e"])

    assert outcome.added == ["a", "c", "e"]
    assert outcome.skipped == ["b", "d"]
    db.session.expire_all()
    assert model_counts(provider) == {"a": 1, "b": 1, "c": 1, "d": 1, "e": 1}
    theirs = db.session.scalars(select(LLMModel).where(LLMModel.model == "b")).one()
    assert (theirs.name, theirs.enabled) == ("Theirs b", True)


def test_every_id_already_committed_adds_nothing_and_raises_nothing(
    app: Any, stale_check: None
) -> None:
    provider = make_provider()
    for model_id in ("a", "b"):
        make_model(provider, model=model_id, name=model_id)

    outcome = model_import.import_models(provider, ["a", "b"])

    assert (outcome.added, outcome.skipped) == ([], ["a", "b"])
    assert model_counts(provider) == {"a": 1, "b": 1}


def test_importing_into_a_provider_deleted_meanwhile_adds_nothing_and_raises_nothing(
    app: Any,
) -> None:
    provider = make_provider()
    provider_id = provider.id  # loaded, as in the request that read it
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM llm_providers WHERE id = :id"), {"id": provider_id})

    outcome = model_import.import_models(provider, ["a", "b"])

    assert (outcome.added, outcome.skipped) == ([], ["a", "b"])
    assert db.session.scalar(select(func.count()).select_from(LLMModel)) == 0
