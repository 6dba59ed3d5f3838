"""Providers pages (admin only)."""

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

bp = Blueprint("providers", __name__, url_prefix="/providers")


@bp.get("/")
def index() -> ResponseReturnValue:
    return render_template("placeholder.html", title="Providers")
