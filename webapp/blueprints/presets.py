"""Presets pages (admin only), per model: list, create, edit, delete."""

from __future__ import annotations

from flask import Blueprint, abort, flash, render_template, request, url_for
from flask.typing import ResponseReturnValue

from webapp.htmx import redirect_for_htmx
from webapp.models import LLMModel, LLMPreset
from webapp.services import catalog

bp = Blueprint("presets", __name__, url_prefix="/models/<int:model_id>/presets")


@bp.context_processor
def _template_helpers() -> dict[str, object]:
    return {"reserved_keys": catalog.RESERVED_KEYS_HINT, "compact_json": catalog.compact_json}


def _model_or_404(model_id: int) -> LLMModel:
    model = catalog.get_record(LLMModel, model_id)
    if model is None:
        abort(404)
    return model


def _preset_or_404(model: LLMModel, preset_id: int) -> LLMPreset:
    preset = catalog.get_record(LLMPreset, preset_id)
    if preset is None or preset.llm_model_id != model.id:
        abort(404)
    return preset


def _render_form(
    model: LLMModel, preset: LLMPreset | None, form: catalog.FormState, status: int = 200
) -> ResponseReturnValue:
    return render_template("presets/form.html", model=model, preset=preset, form=form), status


@bp.get("/")
def index(model_id: int) -> ResponseReturnValue:
    model = _model_or_404(model_id)
    return render_template("presets/index.html", model=model, presets=catalog.list_presets(model))


@bp.get("/new")
def new(model_id: int) -> ResponseReturnValue:
    model = _model_or_404(model_id)
    first = not catalog.list_presets(model)
    return _render_form(model, None, catalog.preset_form(first=first))


@bp.post("/")
def create(model_id: int) -> ResponseReturnValue:
    model = _model_or_404(model_id)
    result = catalog.save_preset(model, None, request.form)
    if not result.ok:
        return _render_form(model, None, result.form, 422)
    flash(f"Created preset {result.record.name}.", "success")
    return redirect_for_htmx(url_for("presets.index", model_id=model.id))


@bp.get("/<int:preset_id>/edit")
def edit(model_id: int, preset_id: int) -> ResponseReturnValue:
    model = _model_or_404(model_id)
    preset = _preset_or_404(model, preset_id)
    return _render_form(model, preset, catalog.preset_form(preset))


@bp.post("/<int:preset_id>")
def update(model_id: int, preset_id: int) -> ResponseReturnValue:
    model = _model_or_404(model_id)
    preset = _preset_or_404(model, preset_id)
    result = catalog.save_preset(model, preset, request.form)
    if not result.ok:
        return _render_form(model, preset, result.form, 422)
    flash(f"Saved preset {preset.name}.", "success")
    return redirect_for_htmx(url_for("presets.index", model_id=model.id))


@bp.post("/<int:preset_id>/delete")
def delete(model_id: int, preset_id: int) -> ResponseReturnValue:
    model = _model_or_404(model_id)
    preset = _preset_or_404(model, preset_id)
    name = preset.name
    catalog.delete_record(preset)
    flash(f"Deleted preset {name}.", "success")
    return redirect_for_htmx(url_for("presets.index", model_id=model.id))
