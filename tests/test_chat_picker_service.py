"""The chat picker's marks: which enabled models can be sent to, and why not; and the
readable reason when a provider cannot be reached at all."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from tests.support.factories import make_model, make_provider
from tests.support.net import closed_port_url
from webapp.models import LLMModel
from webapp.models.types import utcnow
from webapp.services import check_model_connection
from webapp.services import conversations as chats


def reasons(groups: list[chats.PickerGroup]) -> dict[str, dict[str, str | None]]:
    return {
        group.llm_provider.name: {c.llm_model.name: c.reason for c in group.choices}
        for group in groups
    }


def test_models_are_grouped_by_provider_and_marked_with_the_reason(app: Flask, db: Any) -> None:
    hosted = make_provider(name="Hosted", requires_api_key=True)
    make_model(hosted, model="h1", name="Keyless hosted", enabled=True)
    keyed = make_provider(name="Keyed", requires_api_key=True, api_key="sk-keyed-1234")
    make_model(keyed, model="k1", name="Fine", enabled=True)
    make_model(
        keyed,
        model="k2",
        name="Broken",
        enabled=True,
        connection_failed_at=utcnow(),
        connection_error="could not reach llm.example.com: name not found",
    )
    make_model(keyed, model="k3", name="Off", enabled=False)
    local = make_provider(name="Local")
    make_model(local, model="l1", name="Llama", enabled=True)

    groups = chats.picker_groups()

    assert reasons(groups) == {
        "Hosted": {"Keyless hosted": "needs an API key — ask an admin"},
        "Keyed": {
            "Broken": "its last connection test failed: "
            "could not reach llm.example.com: name not found",
            "Fine": None,
        },
        "Local": {"Llama": None},
    }
    assert [c.usable for g in groups for c in g.choices] == [False, False, True, True]


def test_a_provider_with_every_model_disabled_is_not_offered(app: Flask, db: Any) -> None:
    make_model(make_provider(name="Dormant"), model="d1", enabled=False)

    assert chats.picker_groups() == []


@pytest.fixture
def needs_key(app: Flask) -> LLMModel:
    provider = make_provider(name="Hosted", requires_api_key=True)
    return make_model(provider, model="h1", name="Hosted One", enabled=True)


def test_a_member_cannot_choose_a_model_that_needs_a_key(needs_key: LLMModel) -> None:
    draft = chats.Draft(llm_model_id=needs_key.id, content="Hi")

    choice, errors = chats.choose(draft)

    assert choice is None
    assert errors == {"llm_model_id": ["Hosted One: needs an API key — ask an admin."]}


def test_an_admin_may_still_choose_it(needs_key: LLMModel) -> None:
    draft = chats.Draft(llm_model_id=needs_key.id, content="Hi")

    choice, errors = chats.choose(draft, allow_unusable=True)

    assert errors == {} and choice is not None and choice.llm_model.id == needs_key.id


def test_the_composer_starts_on_a_usable_model(app: Flask, db: Any, member: Any) -> None:
    make_model(make_provider(name="A hosted", requires_api_key=True), model="a", enabled=True)
    usable = make_model(make_provider(name="B local"), model="b", enabled=True)

    composer = chats.composer_for(member.id, None)

    assert composer.llm_model_id == usable.id
    assert composer.selected is not None and composer.selected.usable


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://api.example.invalid", "could not reach api.example.invalid: name not found"),
        (None, "could not reach 127.0.0.1: connection refused"),
    ],
)
def test_an_unreachable_provider_is_described_in_words(
    app: Flask, db: Any, base_url: str | None, expected: str
) -> None:
    provider = make_provider(base_url=base_url or closed_port_url())
    model = make_model(provider, enabled=True)

    result = check_model_connection(model)

    assert not result.success
    assert expected in result.errors[0]
    assert "Errno" not in result.errors[0]
    db.session.expire_all()
    assert chats.unusable_reason(model) == f"its last connection test failed: {result.errors[0]}"
