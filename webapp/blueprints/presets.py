"""Presets pages (admin only)."""

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

bp = Blueprint("presets", __name__, url_prefix="/presets")


@bp.get("/")
def index() -> ResponseReturnValue:
    return render_template("placeholder.html", title="Presets")
