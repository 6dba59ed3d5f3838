"""API keys are encrypted at rest, survive a wrong key gracefully, and can be rotated."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from tests.support.app import TEST_ENCRYPTION_KEY
from tests.support.factories import make_provider
from webapp.models import UNREADABLE, LLMProvider
from webapp.services.keys import KeyRotationError, rotate_encryption_key

SECRET = "sk-live-abcdefghijklmnop1234"


def raw_api_key(db: Any, provider_id: int) -> str:
    return db.session.execute(
        text("SELECT api_key FROM llm_providers WHERE id = :id"), {"id": provider_id}
    ).scalar_one()


def reload(db: Any, provider_id: int) -> LLMProvider:
    db.session.expire_all()
    return db.session.get(LLMProvider, provider_id)


def test_api_key_is_not_stored_in_plaintext(db: Any) -> None:
    provider = make_provider(api_key=SECRET)
    raw = raw_api_key(db, provider.id)
    assert SECRET not in raw and "abcdefgh" not in raw
    assert reload(db, provider.id).api_key == SECRET


def test_same_key_encrypts_differently_each_time(db: Any) -> None:
    first = make_provider(name="A", api_key=SECRET)
    second = make_provider(name="B", api_key=SECRET)
    assert raw_api_key(db, first.id) != raw_api_key(db, second.id)


def test_no_key_is_null(db: Any) -> None:
    provider = make_provider()
    assert raw_api_key(db, provider.id) is None
    assert provider.api_key_status == "none"


def test_hint_shows_only_last_four_characters(db: Any) -> None:
    provider = make_provider(api_key=SECRET)
    assert provider.api_key_status == "set"
    assert provider.api_key_hint == "…1234"
    assert SECRET[:-4] not in provider.api_key_hint


def test_wrong_encryption_key_reads_as_unreadable_not_a_crash(app: Flask, db: Any) -> None:
    provider = make_provider(api_key=SECRET)
    app.config["MODELDESK_ENCRYPTION_KEY"] = "another-key"
    loaded = reload(db, provider.id)
    assert loaded.api_key is UNREADABLE
    assert loaded.api_key_status == "unreadable"
    assert loaded.api_key_hint == ""
    # Listing all providers keeps working.
    assert [p.name for p in db.session.scalars(select(LLMProvider))] == ["Acme"]


def test_unreadable_key_can_be_replaced(app: Flask, db: Any) -> None:
    provider = make_provider(api_key=SECRET)
    app.config["MODELDESK_ENCRYPTION_KEY"] = "another-key"
    loaded = reload(db, provider.id)
    loaded.api_key = "sk-new-key-5678"
    db.session.commit()
    assert reload(db, provider.id).api_key == "sk-new-key-5678"


def test_unreadable_key_is_never_written_back(app: Flask, db: Any) -> None:
    provider = make_provider(api_key=SECRET)
    original = raw_api_key(db, provider.id)
    app.config["MODELDESK_ENCRYPTION_KEY"] = "another-key"
    loaded = reload(db, provider.id)
    loaded.name = "Renamed"
    db.session.commit()
    assert raw_api_key(db, provider.id) == original


def test_rotation_re_encrypts_every_key(app: Flask, db: Any) -> None:
    first = make_provider(name="A", api_key=SECRET)
    second = make_provider(name="B", api_key="sk-other-key-9999")
    make_provider(name="C")
    assert rotate_encryption_key(db.session, TEST_ENCRYPTION_KEY, "new-key") == 2
    app.config["MODELDESK_ENCRYPTION_KEY"] = "new-key"
    assert reload(db, first.id).api_key == SECRET
    assert reload(db, second.id).api_key == "sk-other-key-9999"


def test_rotation_with_wrong_old_key_changes_nothing(app: Flask, db: Any) -> None:
    provider = make_provider(api_key=SECRET)
    before = raw_api_key(db, provider.id)
    with pytest.raises(KeyRotationError, match="Acme"):
        rotate_encryption_key(db.session, "not-the-key", "new-key")
    assert raw_api_key(db, provider.id) == before


def test_rotate_command(app: Flask, db: Any, runner: Any) -> None:
    provider = make_provider(api_key=SECRET)
    result = runner.invoke(
        args=["keys", "rotate", "--old-key", TEST_ENCRYPTION_KEY, "--new-key", "rotated"]
    )
    assert result.exit_code == 0, result.output
    assert "re-encrypted 1 API key(s)" in result.output
    # It ends by saying what the running app needs to read the keys again.
    assert result.output.rstrip().endswith("MODELDESK_ENCRYPTION_KEY=rotated")
    app.config["MODELDESK_ENCRYPTION_KEY"] = "rotated"
    assert reload(db, provider.id).api_key == SECRET


def test_rotate_command_refuses_a_wrong_old_key(app: Flask, db: Any, runner: Any) -> None:
    make_provider(api_key=SECRET)
    result = runner.invoke(args=["keys", "rotate", "--old-key", "wrong", "--new-key", "x"])
    assert result.exit_code != 0
    assert "nothing was changed" in result.output
