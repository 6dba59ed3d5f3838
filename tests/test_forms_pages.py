"""Forms never lose the page (Flask test client): a failed save tells htmx to show the form's
own page in the address bar, and plain posts land on addresses a reload can GET."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.support.factories import make_model, make_preset, make_provider
from webapp.extensions import db
from webapp.models import Conversation, User

BOOSTED = {"HX-Request": "true", "HX-Boosted": "true"}


def test_a_failed_boosted_save_names_the_form_page(admin_client: FlaskClient) -> None:
    provider = make_provider(name="Acme")
    model = make_model(provider, model="m1", name="M1")
    preset = make_preset(model, name="P1")
    cases = [
        (f"/providers/{provider.id}", {"name": ""}, f"/providers/{provider.id}/edit"),
        ("/providers/", {"name": ""}, "/providers/new"),
        (f"/models/{model.id}", {"name": ""}, f"/models/{model.id}/edit"),
        ("/models/", {"name": ""}, "/models/new"),
        (
            f"/models/{model.id}/presets/{preset.id}",
            {"name": ""},
            f"/models/{model.id}/presets/{preset.id}/edit",
        ),
        (f"/models/{model.id}/presets/", {"name": ""}, f"/models/{model.id}/presets/new"),
    ]
    for path, data, page in cases:
        response = admin_client.post(path, data=data, headers=BOOSTED)
        assert response.status_code == 422, path
        assert response.headers["HX-Replace-Url"] == page


def test_a_plain_failed_save_can_post_to_the_edit_page_itself(admin_client: FlaskClient) -> None:
    provider = make_provider(name="Acme")
    page = admin_client.get(f"/providers/{provider.id}/edit").get_data(as_text=True)
    assert f'action="/providers/{provider.id}/edit"' in page
    failed = admin_client.post(f"/providers/{provider.id}/edit", data={"name": ""})
    assert failed.status_code == 422
    assert "HX-Replace-Url" not in failed.headers  # a plain post: the address is the edit page
    saved = admin_client.post(
        f"/providers/{provider.id}/edit",
        data={
            "name": "Acme 2",
            "api_format": "openai",
            "base_url": "https://acme.example",
            "api_prefix": "/v1",
            "headers": "{}",
            "llm_options_defaults": "{}",
            "message_overhead_tokens": "0",
        },
    )
    assert saved.status_code == 303


def test_a_failed_rename_keeps_the_conversation_address(member_client: FlaskClient) -> None:
    user = db.session.scalars(db.select(User)).one()
    conversation = Conversation(user_id=user.id, title="Old")
    db.session.add(conversation)
    db.session.commit()
    path = f"/c/{conversation.id}"
    failed = member_client.post(f"{path}/rename", data={"title": " "}, headers=BOOSTED)
    assert failed.status_code == 422
    assert failed.headers["HX-Replace-Url"] == path
    reloaded = member_client.get(f"{path}/rename")
    assert (reloaded.status_code, reloaded.headers["Location"]) == (303, path)
