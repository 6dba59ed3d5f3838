"""The API keys page (admin only): the app keys, a form to create one, revoke.

A new key's secret is shown once, in the answer to the POST that created it: it is never put
in the URL, the session or a flash message, and that answer is not stored by the browser, so
a reload or Back finds the plain list."""

from __future__ import annotations

from flask import Blueprint, flash, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from werkzeug.wrappers import Response

from webapp.extensions import db
from webapp.forms import NewAppKeyForm, add_errors
from webapp.htmx import form_page, redirect_for_htmx
from webapp.models import AppKey
from webapp.services import app_keys

bp = Blueprint("apikeys", __name__, url_prefix="/apikeys")


def _page(form: NewAppKeyForm, created: app_keys.NewKey | None = None) -> str:
    return render_template(
        "apikeys/index.html", rows=app_keys.list_keys_with_status(), form=form, created=created
    )


@bp.get("/")
def index() -> ResponseReturnValue:
    return _page(NewAppKeyForm(formdata=None))


@bp.post("/")
def create() -> ResponseReturnValue:
    form = NewAppKeyForm()
    if form.validate():
        errors = app_keys.scope_errors(form.model_keys.data or [])
        if not errors:
            created = app_keys.create_key(
                form.name.data,
                model_keys=form.model_keys.data or None,
                expires_days=form.expires_days.data,
                rpm=form.rpm.data,
                tpm=form.tpm.data,
                created_by=current_user.email,
            )
            if created.key is not None:
                return _secret_page(created)
            errors = created.errors
        add_errors(form, errors)
    return form_page(_page(form), 422, url_for("apikeys.index"))


def _secret_page(created: app_keys.NewKey) -> Response:
    """The list with the new key's secret, this once: no cache may keep the answer, and the
    address bar shows the list's URL (a reload GETs the list without the secret)."""
    page = _page(NewAppKeyForm(formdata=None), created)
    response = form_page(page, 201, url_for("apikeys.index"))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/<id:key_id>/revoke")
def revoke(key_id: int) -> ResponseReturnValue:
    key = db.get_or_404(AppKey, key_id)
    if key.revoked_at is not None:
        flash(f"{key.name} was already revoked.", "success")
    else:
        app_keys.revoke_key(key)
        flash(f"Revoked {key.name}: apps using it are refused from now on.", "success")
    return redirect_for_htmx(url_for("apikeys.index"))
