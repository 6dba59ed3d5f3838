"""Models pages (admin only)."""

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

bp = Blueprint("models", __name__, url_prefix="/models")


@bp.get("/")
def index() -> ResponseReturnValue:
    return render_template("placeholder.html", title="Models")
