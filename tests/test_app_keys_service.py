"""App keys: the secret exists once and only its hash is stored; revoked, expired and unknown
secrets authenticate nobody; a scope names models (a preset id is its model's)."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from webapp.extensions import db
from webapp.models import AppKey
from webapp.models.types import utcnow
from webapp.services import app_keys


def test_a_new_key_keeps_only_a_hash_and_a_prefix_of_its_secret(app: Flask) -> None:
    created = app_keys.create_key("billing-bot", model_keys=["Mock-Basic "], rpm=60, tpm=1000)

    assert created.key is not None and created.secret is not None
    stored = db.session.get(AppKey, created.key.id)
    assert stored is not None
    assert created.secret.startswith("mdk-") and len(created.secret) > 40
    assert created.secret not in {stored.name, stored.prefix, stored.secret_hash}
    assert created.secret.startswith(stored.prefix) and len(stored.prefix) == 12
    assert stored.secret_hash == app_keys.hash_secret(created.secret)
    assert stored.model_keys == ["mock-basic"]

    grant = app_keys.authenticate(created.secret)
    assert grant is not None
    assert (grant.name, grant.rpm, grant.tpm) == ("billing-bot", 60, 1000)


def test_unknown_revoked_and_expired_secrets_authenticate_nobody(app: Flask) -> None:
    live = app_keys.create_key("live")
    revoked = app_keys.create_key("revoked")
    expired = app_keys.create_key("expired", expires_days=1)
    assert live.secret and revoked.secret and expired.secret and expired.key and revoked.key

    app_keys.revoke_key(revoked.key)
    expired.key.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()

    assert app_keys.authenticate(live.secret) is not None
    assert app_keys.authenticate(revoked.secret) is None
    assert app_keys.authenticate(expired.secret) is None
    assert app_keys.authenticate(live.secret + "x") is None
    assert app_keys.authenticate("") is None


def test_a_scope_covers_its_models_and_their_presets_only(app: Flask) -> None:
    scoped = app_keys.create_key("scoped", model_keys=["mock-basic"])
    everything = app_keys.create_key("everything")
    assert scoped.secret and everything.secret

    grant = app_keys.authenticate(scoped.secret)
    assert grant is not None
    assert grant.allows("mock-basic") and grant.allows("mock-basic@creative")
    assert not grant.allows("mock-lite") and not grant.allows("mock-basic-2")
    unscoped = app_keys.authenticate(everything.secret)
    assert unscoped is not None and unscoped.allows("anything@at-all")


def test_names_are_required_unique_and_limits_positive(app: Flask) -> None:
    assert app_keys.create_key("taken").key is not None

    assert app_keys.create_key(" taken ").errors == {"name": ["has already been taken"]}
    assert "name" in app_keys.create_key("   ").errors
    assert "rpm" in app_keys.create_key("zero", rpm=0).errors
    assert "tpm" in app_keys.create_key("negative", tpm=-5).errors
    assert [key.name for key in app_keys.list_keys()] == ["taken"]
