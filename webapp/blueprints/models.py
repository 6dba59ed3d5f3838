"""Models pages (admin only): filterable list, create, edit, delete, toggle, connection test,
capability probes."""

from __future__ import annotations

from functools import partial

from flask import Blueprint, abort, flash, render_template, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from webapp.extensions import db
from webapp.forms import DeleteForm, ModelForm, ModelListQuery, save_form
from webapp.forms.models import capability_labels
from webapp.htmx import form_page, is_htmx_fragment_request, redirect_for_htmx
from webapp.models import LLMModel
from webapp.services import llm_models, probes
from webapp.services.presets import presets_of
from webapp.services.providers import provider_choices
from webapp.services.records import StaleRecordError

bp = Blueprint("models", __name__, url_prefix="/models")

TOGGLE_VALUES = {"1": True, "0": False}
TABLE_ID = "models-table"


def _wants_table_only() -> bool:
    # Only the filter form targets the table. Other htmx GETs of this URL want the page:
    # boosted links, history restores, and the GET that follows an HX-Location redirect
    # (which, unlike a boosted one, carries HX-Request without HX-Boosted).
    return request.headers.get("HX-Target") == TABLE_ID and not request.headers.get(
        "HX-History-Restore-Request"
    )


def _render_form(
    model: LLMModel | None,
    form: ModelForm,
    status: int = 200,
    probe_report: probes.ProbeReport | None = None,
) -> ResponseReturnValue:
    presets = presets_of(model.id) if model else []
    page = render_template(
        "models/form.html",
        model=model,
        form=form,
        presets=presets,
        probe_report=probe_report,
        capability_labels=capability_labels(),
    )
    page_url = url_for("models.edit", model_id=model.id) if model else url_for("models.new")
    return form_page(page, status, page_url)


@bp.get("/")
def index() -> ResponseReturnValue:
    query = ModelListQuery(request.args)
    listing = llm_models.list_models(query.filters)
    table = render_template("models/_table.html", listing=listing, filters=query)
    if _wants_table_only():
        return table
    # The page takes the table already drawn: a thousand rows written through the page's
    # blocks and layouts piece by piece would cost a third more than drawing them.
    return render_template(
        "models/index.html", table=Markup(table), filters=query, providers=provider_choices()
    )


@bp.get("/new")
def new() -> ResponseReturnValue:
    query = ModelListQuery(request.args)
    return _render_form(None, ModelForm(provider_id=query.provider_id))


@bp.post("/")
def create() -> ResponseReturnValue:
    return _save(None)


@bp.get("/<id:model_id>/edit")
def edit(model_id: int) -> ResponseReturnValue:
    model = db.get_or_404(LLMModel, model_id)
    return _render_form(model, ModelForm(model))


# The edit page's own URL takes the post too (see providers.update).
@bp.post("/<id:model_id>")  # the older address, still answered
@bp.post("/<id:model_id>/edit")
def update(model_id: int) -> ResponseReturnValue:
    return _save(db.get_or_404(LLMModel, model_id))


def _current(model_id: int) -> LLMModel | None:
    """The model as it is now (after a stale write: a fresh read), or None when gone."""
    db.session.rollback()
    return db.session.get(LLMModel, model_id)


def _save(model: LLMModel | None) -> ResponseReturnValue:
    """Create (model None) or update from the posted form; the form again on errors, or
    with the current values (409) when someone else changed the model meanwhile."""
    form = ModelForm(model)
    model_id = model.id if model else None
    try:
        saved = save_form(
            form,
            partial(llm_models.model_errors, model),
            partial(llm_models.save_model, model, expected_version=form.expected_version),
            record=model,
        )
    except StaleRecordError:
        assert model_id is not None  # only an existing row can be stale
        current = _current(model_id)
        return _render_form(current, form.for_conflict(current), 409)
    if saved is None:
        return _render_form(model, form, 422)
    flash(f"{'Saved' if model else 'Created'} model {saved.name}.", "success")
    return redirect_for_htmx(url_for("models.index", provider=saved.llm_provider_id))


@bp.post("/<id:model_id>/delete")
def delete(model_id: int) -> ResponseReturnValue:
    model = db.get_or_404(LLMModel, model_id)
    name, provider_id = model.name, model.llm_provider_id
    try:
        llm_models.delete_model(model, DeleteForm().version.data)
    except StaleRecordError:
        current = _current(model_id)
        if current is None:
            flash(f"Model {name} was already deleted.", "success")
            return redirect_for_htmx(url_for("models.index", provider=provider_id))
        form = ModelForm(current, formdata=None).for_refused_delete()
        return _render_form(current, form, 409)
    flash(f"Deleted model {name}.", "success")
    return redirect_for_htmx(url_for("models.index", provider=provider_id))


@bp.post("/<id:model_id>/toggle")
def toggle(model_id: int) -> ResponseReturnValue:
    """Set enabled to the posted value ("1"/"0"); htmx gets the redrawn row."""
    model = db.get_or_404(LLMModel, model_id)
    enabled = TOGGLE_VALUES.get(request.form.get("enabled", ""))
    if enabled is None:
        abort(400)
    name = model.name
    if not llm_models.set_model_enabled(model, enabled):
        abort(404)  # deleted meanwhile
    if is_htmx_fragment_request():
        return render_template("models/_row.html", rows=[llm_models.model_row(model_id)])
    flash(f"{'Enabled' if enabled else 'Disabled'} {name}.", "success")
    return redirect_for_htmx(url_for("models.index"))


@bp.post("/<id:model_id>/test")
def test_connection(model_id: int) -> ResponseReturnValue:
    """Run the connection test; htmx gets the result and the "last tested" cell (out of band)."""
    model = db.get_or_404(LLMModel, model_id)
    result = llm_models.run_connection_test(model)
    if is_htmx_fragment_request():
        row = llm_models.model_row(model.id)
        return render_template("models/_test_result.html", row=row, result=result)
    if result.success:
        flash(f"{model.name}: connection OK · {result.value['latency_ms']} ms.", "success")
    else:
        flash(f"{model.name}: connection failed — {'; '.join(result.errors)}", "error")
    return redirect_for_htmx(url_for("models.index"))


# How the probe page posts an observed flag back: "1" / "0"; an unknown one is not posted.
OBSERVED_VALUES = {"1": True, "0": False}


@bp.post("/<id:model_id>/probe")
def probe(model_id: int) -> ResponseReturnValue:
    """Probe the model's capabilities; htmx gets the stored-vs-observed table, a plain
    request the edit page with it."""
    model = db.get_or_404(LLMModel, model_id)
    report = probes.probe_model(model, time_limit=probes.PAGE_TIME_LIMIT)
    if is_htmx_fragment_request():
        return render_template(
            "models/_probe_result.html",
            model=model,
            probe_report=report,
            capability_labels=capability_labels(),
        )
    return _render_form(model, ModelForm(model), probe_report=report)


@bp.post("/<id:model_id>/probe/apply")
def apply_probe(model_id: int) -> ResponseReturnValue:
    """Set the flags to the observed values posted back by the probe's result."""
    model = db.get_or_404(LLMModel, model_id)
    observed = {
        column: OBSERVED_VALUES.get(request.form.get(column, ""))
        for column in probes.CAPABILITY_COLUMNS
    }
    changed = probes.apply_observed(model, observed)
    labels = capability_labels()
    if changed:
        names = ", ".join(labels[column] for column in changed)
        flash(f"Applied the observed capabilities to {model.name}: {names}.", "success")
    else:
        flash(f"{model.name}'s capabilities already matched what was observed.", "success")
    return redirect_for_htmx(url_for("models.edit", model_id=model.id))
