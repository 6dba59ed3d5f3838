"""The chat page."""

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

bp = Blueprint("chat", __name__, url_prefix="/")


@bp.get("/")
def index() -> ResponseReturnValue:
    return render_template("placeholder.html", title="Chat")
