"""Models pages (admin only): filterable list, create, edit, delete, toggle, connection test."""

from __future__ import annotations

from flask import Blueprint, abort, flash, render_template, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from webapp.htmx import is_htmx_fragment_request, redirect_for_htmx
from webapp.models import LLMModel
from webapp.services import catalog

bp = Blueprint("models", __name__, url_prefix="/models")

TOGGLE_VALUES = {"1": True, "0": False}


def _model_or_404(model_id: int) -> LLMModel:
    model = catalog.get_record(LLMModel, model_id)
    if model is None:
        abort(404)
    return model


TABLE_ID = "models-table"


def _wants_table_only() -> bool:
    # Only the filter form targets the table. Other htmx GETs of this URL want the page:
    # boosted links, history restores, and the GET that follows an HX-Location redirect
    # (which, unlike a boosted one, carries HX-Request without HX-Boosted).
    return request.headers.get("HX-Target") == TABLE_ID and not request.headers.get(
        "HX-History-Restore-Request"
    )


def _render_form(
    model: LLMModel | None, form: catalog.FormState, status: int = 200
) -> ResponseReturnValue:
    providers = catalog.provider_choices()
    return render_template("models/form.html", model=model, form=form, providers=providers), status


@bp.get("/")
def index() -> ResponseReturnValue:
    filters = catalog.ModelFilters.from_args(request.args)
    listing = catalog.list_models(filters)
    table = render_template("models/_table.html", listing=listing, filters=filters)
    if _wants_table_only():
        return table
    # The page takes the table already drawn: a thousand rows written through the page's
    # blocks and layouts piece by piece would cost a third more than drawing them.
    providers = catalog.provider_choices()
    return render_template(
        "models/index.html", table=Markup(table), filters=filters, providers=providers
    )


@bp.get("/new")
def new() -> ResponseReturnValue:
    filters = catalog.ModelFilters.from_args(request.args)
    return _render_form(None, catalog.model_form(provider_id=filters.provider_id))


@bp.post("/")
def create() -> ResponseReturnValue:
    result = catalog.save_model(None, request.form)
    if not result.ok:
        return _render_form(None, result.form, 422)
    model = result.record
    flash(f"Created model {model.name}.", "success")
    return redirect_for_htmx(url_for("models.index", provider=model.llm_provider_id))


@bp.get("/<int:model_id>/edit")
def edit(model_id: int) -> ResponseReturnValue:
    model = _model_or_404(model_id)
    return _render_form(model, catalog.model_form(model))


@bp.post("/<int:model_id>")
def update(model_id: int) -> ResponseReturnValue:
    model = _model_or_404(model_id)
    result = catalog.save_model(model, request.form)
    if not result.ok:
        return _render_form(model, result.form, 422)
    flash(f"Saved model {model.name}.", "success")
    return redirect_for_htmx(url_for("models.index", provider=model.llm_provider_id))


@bp.post("/<int:model_id>/delete")
def delete(model_id: int) -> ResponseReturnValue:
    model = _model_or_404(model_id)
    name, provider_id = model.name, model.llm_provider_id
    catalog.delete_record(model)
    flash(f"Deleted model {name}.", "success")
    return redirect_for_htmx(url_for("models.index", provider=provider_id))


@bp.post("/<int:model_id>/toggle")
def toggle(model_id: int) -> ResponseReturnValue:
    """Set enabled to the posted value ("1"/"0"); htmx gets the redrawn row."""
    model = _model_or_404(model_id)
    enabled = TOGGLE_VALUES.get(request.form.get("enabled", ""))
    if enabled is None:
        abort(400)
    catalog.set_model_enabled(model, enabled)
    if is_htmx_fragment_request():
        return render_template("models/_row.html", rows=[catalog.model_row(model.id)])
    flash(f"{'Enabled' if enabled else 'Disabled'} {model.name}.", "success")
    return redirect_for_htmx(url_for("models.index"))


@bp.post("/<int:model_id>/test")
def test_connection(model_id: int) -> ResponseReturnValue:
    """Run the connection test; htmx gets the result and the "last tested" cell (out of band)."""
    model = _model_or_404(model_id)
    result = catalog.run_connection_test(model)
    if is_htmx_fragment_request():
        row = catalog.model_row(model.id)
        return render_template("models/_test_result.html", row=row, result=result)
    if result.success:
        flash(f"{model.name}: connection OK · {result.value['latency_ms']} ms.", "success")
    else:
        flash(f"{model.name}: connection failed — {'; '.join(result.errors)}", "error")
    return redirect_for_htmx(url_for("models.index"))
