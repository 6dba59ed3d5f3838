"""The configuration history page (admin only): every change to providers, models and
presets, newest first, filterable by entity type and by who made it."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from webapp.services import history

bp = Blueprint("history", __name__, url_prefix="/history")


@bp.get("/")
def index() -> ResponseReturnValue:
    entity_type = request.args.get("type", "")
    if entity_type not in history.ENTITY_TYPE_NAMES:
        entity_type = ""
    actor = request.args.get("actor", "").strip()[:320]
    filters = history.HistoryFilters(entity_type=entity_type or None, actor=actor or None)
    return render_template(
        "history/index.html",
        changes=history.list_changes(filters),
        actors=history.actors(),
        entity_types=history.ENTITY_TYPE_NAMES,
        filters=filters,
        describe=history.describe,
        limit=history.DEFAULT_LIMIT,
    )
