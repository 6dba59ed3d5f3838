"""Providers pages (admin only): list, create, edit, delete, enable/disable all, import."""

from __future__ import annotations

from flask import Blueprint, abort, flash, render_template, request, url_for
from flask.typing import ResponseReturnValue

from webapp.htmx import redirect_for_htmx
from webapp.models import LLMProvider
from webapp.services import catalog

bp = Blueprint("providers", __name__, url_prefix="/providers")


@bp.context_processor
def _template_helpers() -> dict[str, str]:
    return {"reserved_keys": catalog.RESERVED_KEYS_HINT}


def _provider_or_404(provider_id: int) -> LLMProvider:
    provider = catalog.get_record(LLMProvider, provider_id)
    if provider is None:
        abort(404)
    return provider


@bp.get("/")
def index() -> ResponseReturnValue:
    return render_template("providers/index.html", rows=catalog.list_providers())


@bp.get("/new")
def new() -> ResponseReturnValue:
    return render_template("providers/form.html", provider=None, form=catalog.provider_form())


@bp.post("/")
def create() -> ResponseReturnValue:
    result = catalog.save_provider(None, request.form)
    if not result.ok:
        return render_template("providers/form.html", provider=None, form=result.form), 422
    flash(f"Created provider {result.record.name}.", "success")
    return redirect_for_htmx(url_for("providers.index"))


@bp.get("/<int:provider_id>/edit")
def edit(provider_id: int) -> ResponseReturnValue:
    provider = _provider_or_404(provider_id)
    form = catalog.provider_form(provider)
    return render_template("providers/form.html", provider=provider, form=form)


@bp.post("/<int:provider_id>")
def update(provider_id: int) -> ResponseReturnValue:
    provider = _provider_or_404(provider_id)
    result = catalog.save_provider(provider, request.form)
    if not result.ok:
        return render_template("providers/form.html", provider=provider, form=result.form), 422
    flash(f"Saved provider {provider.name}.", "success")
    return redirect_for_htmx(url_for("providers.index"))


@bp.post("/<int:provider_id>/delete")
def delete(provider_id: int) -> ResponseReturnValue:
    provider = _provider_or_404(provider_id)
    name, count = provider.name, catalog.count_models(provider)
    catalog.delete_record(provider)
    flash(f"Deleted provider {name} and its {catalog.plural(count, 'model')}.", "success")
    return redirect_for_htmx(url_for("providers.index"))


@bp.post("/<int:provider_id>/enable_all")
def enable_all(provider_id: int) -> ResponseReturnValue:
    return _set_all_enabled(provider_id, True)


@bp.post("/<int:provider_id>/disable_all")
def disable_all(provider_id: int) -> ResponseReturnValue:
    return _set_all_enabled(provider_id, False)


def _set_all_enabled(provider_id: int, enabled: bool) -> ResponseReturnValue:
    provider = _provider_or_404(provider_id)
    count = catalog.set_all_enabled(provider, enabled)
    verb = "Enabled" if enabled else "Disabled"
    flash(f"{verb} {catalog.plural(count, 'model')} of {provider.name}.", "success")
    return redirect_for_htmx(url_for("providers.index"))


@bp.get("/<int:provider_id>/import")
def import_form(provider_id: int) -> ResponseReturnValue:
    provider = _provider_or_404(provider_id)
    listing = catalog.fetch_import_listing(provider)
    status = 502 if listing.error else 200
    return render_template("providers/import.html", provider=provider, listing=listing), status


@bp.post("/<int:provider_id>/import")
def import_models(provider_id: int) -> ResponseReturnValue:
    provider = _provider_or_404(provider_id)
    outcome = catalog.import_models(provider, request.form.getlist("model_ids"))
    if not outcome.added and not outcome.skipped:
        flash("No models were selected.", "error")
        return redirect_for_htmx(url_for("providers.import_form", provider_id=provider.id))
    message = f"Added {catalog.plural(len(outcome.added), 'model')} (disabled)."
    if outcome.skipped:
        message += f" Skipped {len(outcome.skipped)}: already there or not a valid id."
    flash(message, "success")
    return redirect_for_htmx(url_for("models.index", provider=provider.id))
