"""The configuration history page (admin only): every change to providers, models and
presets, newest first, filterable by entity type and by who made it."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from webapp.extensions import db
from webapp.forms.composer import row_id
from webapp.models import ConfigChange, ValidationError
from webapp.services import history
from webapp.services.records import StaleRecordError

bp = Blueprint("history", __name__, url_prefix="/history")


@bp.get("/")
def index() -> ResponseReturnValue:
    entity_type = request.args.get("type", "")
    if entity_type not in history.ENTITY_TYPE_NAMES:
        entity_type = ""
    actors = history.actors()
    # Only someone the history knows (the filter is a menu of them): anything else typed into
    # the address — NUL included — shows everything rather than reaching the database.
    actor = request.args.get("actor", "").strip()
    if actor not in actors:
        actor = ""
    entity_id = row_id(request.args.get("id")) if entity_type else None
    filters = history.HistoryFilters(
        entity_type=entity_type or None, actor=actor or None, entity_id=entity_id
    )
    return render_template(
        "history/index.html",
        changes=history.list_changes(filters),
        actors=actors,
        entity_types=history.ENTITY_TYPE_NAMES,
        filters=filters,
        describe=history.describe,
        restorable=history.restorable_values,
        limit=history.DEFAULT_LIMIT,
    )


@bp.post("/<id:change_id>/restore")
def restore(change_id: int) -> ResponseReturnValue:
    """Undo an update: its row gets the "before" values back (a new change in the history)."""
    change = db.get_or_404(ConfigChange, change_id)
    try:
        history.restore(change)
    except history.RestoreError as error:
        flash(f"Nothing restored: {error}.", "error")
    except ValidationError as error:
        flash(f"Nothing restored: the earlier values are not valid now ({error}).", "error")
    except StaleRecordError:
        flash("Nothing restored: the row changed meanwhile; try again.", "error")
    else:
        flash("Restored the earlier values.", "success")
    return redirect(url_for("history.index"), code=303)
