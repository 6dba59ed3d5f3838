"""API keys and header values are encrypted at rest, survive a wrong key gracefully, and can
be rotated."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from tests.support.app import TEST_ENCRYPTION_KEY
from tests.support.factories import make_provider
from webapp.models import UNREADABLE, LLMProvider, ValidationError
from webapp.models.types import is_unreadable
from webapp.services.keys import KeyRotationError, Rotated, rotate_encryption_key
from webapp.services.llm_config import provider_spec

SECRET = "sk-live-abcdefghijklmnop1234"
# Header values of every kind, secret-looking or not: none may be stored as it is.
HEADERS = {
    "api-key": "azure-key-0123456789",
    "x-api-key": "anthropic-key-4567890",
    "Ocp-Apim-Subscription-Key": "ocp-subscription-31415",
    "Authorization": "Bearer hdr-bearer-token-2718",
    "X-Title": "my-app-title",
}


def raw_api_key(db: Any, provider_id: int) -> str:
    return db.session.execute(
        text("SELECT api_key FROM llm_providers WHERE id = :id"), {"id": provider_id}
    ).scalar_one()


def raw_headers(db: Any, provider_id: int) -> str:
    return db.session.execute(
        text("SELECT CAST(headers AS TEXT) FROM llm_providers WHERE id = :id"), {"id": provider_id}
    ).scalar_one()


def raw_rows(db: Any) -> str:
    """Every column of every provider row, as the database holds it."""
    return repr(db.session.execute(text("SELECT * FROM llm_providers")).all())


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
    assert rotate_encryption_key(db.session, TEST_ENCRYPTION_KEY, "new-key") == Rotated(2, 0)
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
    assert "re-encrypted 1 API key(s) and 0 header value(s)" in result.output
    # It ends by saying what the running app needs to read the keys again.
    assert result.output.rstrip().endswith("MODELDESK_ENCRYPTION_KEY=rotated")
    app.config["MODELDESK_ENCRYPTION_KEY"] = "rotated"
    assert reload(db, provider.id).api_key == SECRET


def test_rotate_command_refuses_a_wrong_old_key(app: Flask, db: Any, runner: Any) -> None:
    make_provider(api_key=SECRET)
    result = runner.invoke(args=["keys", "rotate", "--old-key", "wrong", "--new-key", "x"])
    assert result.exit_code != 0
    assert "nothing was changed" in result.output


# --- header values --------------------------------------------------------------------------


def test_no_header_value_is_stored_in_plaintext(db: Any) -> None:
    provider = make_provider(api_key=SECRET, headers=HEADERS)
    raw = raw_headers(db, provider.id)
    everything = raw_rows(db)
    for name, value in HEADERS.items():
        assert name in raw  # names stay readable
        assert value not in raw and value not in everything
    assert "hdr-bearer" not in everything and "my-app" not in everything
    loaded = reload(db, provider.id)
    assert loaded.headers == HEADERS
    assert all(type(value) is str for value in loaded.headers.values())


def test_the_same_header_value_encrypts_differently_each_time(db: Any) -> None:
    first = make_provider(name="A", headers={"X-Title": "my-app-title"})
    second = make_provider(name="B", headers={"X-Title": "my-app-title"})
    assert raw_headers(db, first.id) != raw_headers(db, second.id)


def test_no_headers_is_an_empty_object(db: Any) -> None:
    provider = make_provider()
    assert raw_headers(db, provider.id).replace(" ", "") == "{}"
    assert reload(db, provider.id).headers == {}


def test_an_unreadable_header_value_is_never_sent_nor_written_back(app: Flask, db: Any) -> None:
    provider = make_provider(headers={"X-Api-Key": "anthropic-key-4567890", "X-Title": "t-app"})
    stored = raw_headers(db, provider.id)
    app.config["MODELDESK_ENCRYPTION_KEY"] = "another-key"
    loaded = reload(db, provider.id)
    assert all(is_unreadable(value) for value in loaded.headers.values())
    assert loaded.unreadable_header_names == ["X-Api-Key", "X-Title"]
    assert provider_spec(loaded).headers == {}
    assert "anthropic-key" not in repr(loaded.headers)
    # Saving something else leaves the stored values exactly as they were.
    loaded.name = "Renamed"
    db.session.commit()
    assert raw_headers(db, provider.id) == stored
    # A new value for one header replaces it; the other stays as stored, still unreadable.
    loaded.headers = {**loaded.headers, "X-Title": "new-title"}
    db.session.commit()
    reloaded = reload(db, provider.id)
    assert reloaded.headers["X-Title"] == "new-title"
    assert reloaded.headers["X-Api-Key"] == loaded.headers["X-Api-Key"]
    app.config["MODELDESK_ENCRYPTION_KEY"] = TEST_ENCRYPTION_KEY
    assert reload(db, provider.id).headers["X-Api-Key"] == "anthropic-key-4567890"


def test_rotation_re_encrypts_every_header_value(app: Flask, db: Any) -> None:
    first = make_provider(name="A", api_key=SECRET, headers=HEADERS)
    second = make_provider(name="B", headers={"X-Title": "my-app-title"})
    before = raw_headers(db, first.id)
    assert rotate_encryption_key(db.session, TEST_ENCRYPTION_KEY, "new-key") == Rotated(1, 6)
    assert raw_headers(db, first.id) != before
    app.config["MODELDESK_ENCRYPTION_KEY"] = "new-key"
    assert reload(db, first.id).headers == HEADERS
    assert reload(db, first.id).api_key == SECRET
    assert reload(db, second.id).headers == {"X-Title": "my-app-title"}
    for value in HEADERS.values():
        assert value not in raw_rows(db)


def test_rotation_refuses_an_undecryptable_header_value_and_changes_nothing(
    app: Flask, db: Any
) -> None:
    readable = make_provider(name="Readable", api_key=SECRET, headers={"X-Title": "my-app-title"})
    app.config["MODELDESK_ENCRYPTION_KEY"] = "another-key"
    other = make_provider(name="Other", headers={"X-Api-Key": "written-with-another-key"})
    app.config["MODELDESK_ENCRYPTION_KEY"] = TEST_ENCRYPTION_KEY
    before = raw_rows(db)
    with pytest.raises(KeyRotationError, match=r"Other \(X-Api-Key header\)"):
        rotate_encryption_key(db.session, TEST_ENCRYPTION_KEY, "new-key")
    assert raw_rows(db) == before
    assert reload(db, readable.id).headers == {"X-Title": "my-app-title"}
    assert reload(db, other.id).unreadable_header_names == ["X-Api-Key"]


def test_rotate_command_counts_header_values(app: Flask, db: Any, runner: Any) -> None:
    provider = make_provider(headers={"X-Title": "my-app-title", "X-Api-Key": "xk-0123456"})
    result = runner.invoke(
        args=["keys", "rotate", "--old-key", TEST_ENCRYPTION_KEY, "--new-key", "rotated"]
    )
    assert result.exit_code == 0, result.output
    assert "re-encrypted 0 API key(s) and 2 header value(s)" in result.output
    app.config["MODELDESK_ENCRYPTION_KEY"] = "rotated"
    assert reload(db, provider.id).headers == {"X-Title": "my-app-title", "X-Api-Key": "xk-0123456"}


ASCII_ONLY = "value of X-A must be ASCII text (HTTP sends header values so)"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("café", ASCII_ONLY),
        ("\u2022\u2022\u2022\u2022 (hidden)", ASCII_ONLY),
        ("a\x7fb", "value of X-A must not contain control characters"),
        ("a\x01b", "value of X-A must not contain control characters"),
        ("a\x0bb", "value of X-A must not contain control characters"),
        ("a\r\nX-Injected: 1", "value of X-A must not contain CR, LF or NUL"),
        ("a\x00b", "value of X-A must not contain CR, LF or NUL"),
        (" padded", "value of X-A must not start or end with a space or tab"),
        ("padded\t", "value of X-A must not start or end with a space or tab"),
    ],
)
def test_a_header_value_that_cannot_be_sent_is_refused_at_save(
    db: Any, value: str, message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        make_provider(headers={"X-A": value})
    assert refused.value.errors == {"headers": [message]}
    db.session.rollback()
    assert db.session.execute(text("SELECT COUNT(*) FROM llm_providers")).scalar_one() == 0


def test_a_header_value_with_an_inner_tab_or_nothing_is_sendable(db: Any) -> None:
    provider = make_provider(headers={"X-A": "a\tb", "X-B": "", "X-C": "~!#$%&'*+-.^_`|"})
    assert reload(db, provider.id).headers == {"X-A": "a\tb", "X-B": "", "X-C": "~!#$%&'*+-.^_`|"}
