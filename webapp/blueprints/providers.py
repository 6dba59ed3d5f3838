"""Providers pages (admin only): list, create, edit, delete, enable/disable all, import."""

from __future__ import annotations

from functools import partial

from flask import Blueprint, flash, render_template, url_for
from flask.typing import ResponseReturnValue

from webapp.extensions import db
from webapp.forms import DeleteForm, ImportForm, ProviderForm, save_form
from webapp.htmx import form_page, is_htmx_fragment_request, redirect_for_htmx
from webapp.models import LLMProvider
from webapp.services import model_import, providers
from webapp.services.records import StaleRecordError
from webapp.templating import plural

bp = Blueprint("providers", __name__, url_prefix="/providers")


def _render_form(
    provider: LLMProvider | None, form: ProviderForm, status: int = 200
) -> ResponseReturnValue:
    page_url = (
        url_for("providers.edit", provider_id=provider.id) if provider else url_for("providers.new")
    )
    return form_page(
        render_template("providers/form.html", provider=provider, form=form), status, page_url
    )


@bp.get("/")
def index() -> ResponseReturnValue:
    return render_template("providers/index.html", rows=providers.list_providers())


@bp.get("/new")
def new() -> ResponseReturnValue:
    return _render_form(None, ProviderForm())


@bp.post("/")
def create() -> ResponseReturnValue:
    return _save(None)


@bp.get("/<id:provider_id>/edit")
def edit(provider_id: int) -> ResponseReturnValue:
    provider = db.get_or_404(LLMProvider, provider_id)
    return _render_form(provider, ProviderForm(provider))


# The edit page's own URL takes the post too: after a failed plain (no-JS) save, the
# address bar shows the edit page, which a reload or a bookmark can GET.
@bp.post("/<id:provider_id>")  # the older address, still answered
@bp.post("/<id:provider_id>/edit")
def update(provider_id: int) -> ResponseReturnValue:
    return _save(db.get_or_404(LLMProvider, provider_id))


def _current(provider_id: int) -> LLMProvider | None:
    """The provider as it is now (after a stale write: a fresh read), or None when gone."""
    db.session.rollback()
    return db.session.get(LLMProvider, provider_id)


def _save(provider: LLMProvider | None) -> ResponseReturnValue:
    """Create (provider None) or update from the posted form; the form again on errors, or
    with the current values (409) when someone else changed the provider meanwhile."""
    form = ProviderForm(provider)
    provider_id = provider.id if provider else None
    try:
        saved = save_form(
            form,
            partial(providers.provider_errors, provider),
            partial(providers.save_provider, provider, expected_version=form.expected_version),
            record=provider,
        )
    except StaleRecordError:
        assert provider_id is not None  # only an existing row can be stale
        current = _current(provider_id)
        return _render_form(current, form.for_conflict(current), 409)
    if saved is None:
        return _render_form(provider, form, 422)
    flash(f"{'Saved' if provider else 'Created'} provider {saved.name}.", "success")
    return redirect_for_htmx(url_for("providers.index"))


@bp.post("/<id:provider_id>/delete")
def delete(provider_id: int) -> ResponseReturnValue:
    provider = db.get_or_404(LLMProvider, provider_id)
    name = provider.name
    try:
        count = providers.delete_provider(provider, DeleteForm().version.data)
    except StaleRecordError:
        current = _current(provider_id)
        if current is None:
            flash(f"Provider {name} was already deleted.", "success")
            return redirect_for_htmx(url_for("providers.index"))
        form = ProviderForm(current, formdata=None).for_refused_delete()
        return _render_form(current, form, 409)
    flash(f"Deleted provider {name} and its {plural(count, 'model')}.", "success")
    return redirect_for_htmx(url_for("providers.index"))


@bp.post("/<id:provider_id>/enable_all")
def enable_all(provider_id: int) -> ResponseReturnValue:
    return _set_all_enabled(provider_id, True)


@bp.post("/<id:provider_id>/disable_all")
def disable_all(provider_id: int) -> ResponseReturnValue:
    return _set_all_enabled(provider_id, False)


def _set_all_enabled(provider_id: int, enabled: bool) -> ResponseReturnValue:
    provider = db.get_or_404(LLMProvider, provider_id)
    name = provider.name
    count = providers.set_all_enabled(provider, enabled)
    verb = "Enabled" if enabled else "Disabled"
    flash(f"{verb} {plural(count, 'model')} of {name}.", "success")
    return redirect_for_htmx(url_for("providers.index"))


@bp.post("/<id:provider_id>/check")
def check(provider_id: int) -> ResponseReturnValue:
    """Check connection: list the provider's models; the answer goes where the button is."""
    provider = db.get_or_404(LLMProvider, provider_id)
    result = model_import.check_provider(provider)
    if is_htmx_fragment_request():
        return render_template("providers/_check_result.html", result=result)
    if result.error:
        flash(f"{provider.name}: {result.error}", "error")
    else:
        flash(
            f"{provider.name} answered in {result.latency_ms} ms and offers "
            f"{plural(result.model_count or 0, 'model')}.",
            "success",
        )
    return redirect_for_htmx(url_for("providers.index"))


@bp.get("/<id:provider_id>/import")
def import_form(provider_id: int) -> ResponseReturnValue:
    provider = db.get_or_404(LLMProvider, provider_id)
    listing = model_import.fetch_import_listing(provider)
    status = 502 if listing.error else 200
    return render_template("providers/import.html", provider=provider, listing=listing), status


@bp.post("/<id:provider_id>/import")
def import_models(provider_id: int) -> ResponseReturnValue:
    provider = db.get_or_404(LLMProvider, provider_id)
    outcome = model_import.import_models(provider, ImportForm().model_ids.data or [])
    if not outcome.added and not outcome.skipped:
        flash("No models were selected.", "error")
        return redirect_for_htmx(url_for("providers.import_form", provider_id=provider_id))
    message = f"Added {plural(len(outcome.added), 'model')} (disabled)."
    if outcome.skipped:
        message += f" Skipped {len(outcome.skipped)}: already there or not a valid id."
    flash(message, "success")
    return redirect_for_htmx(url_for("models.index", provider=provider_id))
