"""Presets pages (admin only), per model: list, create, edit, delete."""

from __future__ import annotations

from functools import partial

from flask import Blueprint, flash, render_template, url_for
from flask.typing import ResponseReturnValue

from webapp.extensions import db
from webapp.forms import DeleteForm, PresetForm, save_form
from webapp.htmx import form_page, redirect_for_htmx
from webapp.models import LLMModel, LLMPreset
from webapp.services import presets
from webapp.services.records import StaleRecordError

bp = Blueprint("presets", __name__, url_prefix="/models/<id:model_id>/presets")


def _preset_or_404(model: LLMModel, preset_id: int) -> LLMPreset:
    return db.first_or_404(db.select(LLMPreset).filter_by(id=preset_id, llm_model_id=model.id))


def _render_form(
    model: LLMModel, preset: LLMPreset | None, form: PresetForm, status: int = 200
) -> ResponseReturnValue:
    page_url = (
        url_for("presets.edit", model_id=model.id, preset_id=preset.id)
        if preset
        else url_for("presets.new", model_id=model.id)
    )
    return form_page(
        render_template("presets/form.html", model=model, preset=preset, form=form),
        status,
        page_url,
    )


@bp.get("/")
def index(model_id: int) -> ResponseReturnValue:
    model = db.get_or_404(LLMModel, model_id)
    return render_template("presets/index.html", model=model, presets=presets.presets_of(model.id))


@bp.get("/new")
def new(model_id: int) -> ResponseReturnValue:
    model = db.get_or_404(LLMModel, model_id)
    return _render_form(model, None, PresetForm(key=presets.suggested_key(model.id)))


@bp.post("/")
def create(model_id: int) -> ResponseReturnValue:
    return _save(db.get_or_404(LLMModel, model_id), None)


@bp.get("/<id:preset_id>/edit")
def edit(model_id: int, preset_id: int) -> ResponseReturnValue:
    model = db.get_or_404(LLMModel, model_id)
    preset = _preset_or_404(model, preset_id)
    return _render_form(model, preset, PresetForm(preset))


# The edit page's own URL takes the post too (see providers.update).
@bp.post("/<id:preset_id>")  # the older address, still answered
@bp.post("/<id:preset_id>/edit")
def update(model_id: int, preset_id: int) -> ResponseReturnValue:
    model = db.get_or_404(LLMModel, model_id)
    return _save(model, _preset_or_404(model, preset_id))


def _current(model_id: int, preset_id: int) -> tuple[LLMModel, LLMPreset | None]:
    """The model and preset as they are now (after a stale write: a fresh read); the preset
    None when it is gone (404 when the model is)."""
    db.session.rollback()
    model = db.get_or_404(LLMModel, model_id)
    preset = db.session.get(LLMPreset, preset_id)
    return model, preset if preset is not None and preset.llm_model_id == model.id else None


def _save(model: LLMModel, preset: LLMPreset | None) -> ResponseReturnValue:
    """Create (preset None) or update from the posted form; the form again on errors, or
    with the current values (409) when someone else changed the preset meanwhile."""
    form = PresetForm(preset)
    model_id, preset_id = model.id, preset.id if preset else None
    try:
        saved = save_form(
            form,
            partial(presets.preset_errors, model, preset),
            partial(presets.save_preset, model, preset, expected_version=form.expected_version),
            record=preset,
        )
    except StaleRecordError:
        assert preset_id is not None  # only an existing row can be stale
        model, current = _current(model_id, preset_id)
        return _render_form(model, current, form.for_conflict(current), 409)
    if saved is None:
        return _render_form(model, preset, form, 422)
    flash(f"{'Saved' if preset else 'Created'} preset {saved.name}.", "success")
    return redirect_for_htmx(url_for("presets.index", model_id=model.id))


@bp.post("/<id:preset_id>/delete")
def delete(model_id: int, preset_id: int) -> ResponseReturnValue:
    model = db.get_or_404(LLMModel, model_id)
    preset = _preset_or_404(model, preset_id)
    name = preset.name
    try:
        presets.delete_preset(preset, DeleteForm().version.data)
    except StaleRecordError:
        model, current = _current(model_id, preset_id)
        if current is None:
            flash(f"Preset {name} was already deleted.", "success")
            return redirect_for_htmx(url_for("presets.index", model_id=model_id))
        form = PresetForm(current, formdata=None).for_refused_delete()
        return _render_form(model, current, form, 409)
    flash(f"Deleted preset {name}.", "success")
    return redirect_for_htmx(url_for("presets.index", model_id=model.id))
