"""Presets pages (admin only), per model: list, create, edit, delete."""

from __future__ import annotations

from functools import partial

from flask import Blueprint, flash, render_template, url_for
from flask.typing import ResponseReturnValue

from webapp.extensions import db
from webapp.forms import PresetForm, save_form
from webapp.htmx import redirect_for_htmx
from webapp.models import LLMModel, LLMPreset
from webapp.services import presets

bp = Blueprint("presets", __name__, url_prefix="/models/<id:model_id>/presets")


def _preset_or_404(model: LLMModel, preset_id: int) -> LLMPreset:
    return db.first_or_404(db.select(LLMPreset).filter_by(id=preset_id, llm_model_id=model.id))


def _render_form(
    model: LLMModel, preset: LLMPreset | None, form: PresetForm, status: int = 200
) -> ResponseReturnValue:
    return render_template("presets/form.html", model=model, preset=preset, form=form), status


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


@bp.post("/<id:preset_id>")
def update(model_id: int, preset_id: int) -> ResponseReturnValue:
    model = db.get_or_404(LLMModel, model_id)
    return _save(model, _preset_or_404(model, preset_id))


def _save(model: LLMModel, preset: LLMPreset | None) -> ResponseReturnValue:
    """Create (preset None) or update from the posted form; the form again on errors."""
    form = PresetForm(preset)
    saved = save_form(
        form,
        partial(presets.preset_errors, model, preset),
        partial(presets.save_preset, model, preset),
    )
    if saved is None:
        return _render_form(model, preset, form, 422)
    flash(f"{'Saved' if preset else 'Created'} preset {saved.name}.", "success")
    return redirect_for_htmx(url_for("presets.index", model_id=model.id))


@bp.post("/<id:preset_id>/delete")
def delete(model_id: int, preset_id: int) -> ResponseReturnValue:
    model = db.get_or_404(LLMModel, model_id)
    preset = _preset_or_404(model, preset_id)
    name = preset.name
    presets.delete_preset(preset)
    flash(f"Deleted preset {name}.", "success")
    return redirect_for_htmx(url_for("presets.index", model_id=model.id))
