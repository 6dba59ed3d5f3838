"""Sign-in, sign-out, and the one-time set-up page that creates the first admin."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user, logout_user

from webapp.extensions import limiter
from webapp.services.users import authenticate, create_user, users_exist

bp = Blueprint("auth", __name__)


def safe_next(target: str | None) -> str:
    """`next` only when it is a path on this site; anything else goes home."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("chat.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return url_for("chat.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute", methods=["POST"])
def login() -> ResponseReturnValue:
    if not users_exist():
        return redirect(url_for("auth.setup"))
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next")))
    email = request.form.get("email", "")
    if request.method == "POST":
        user = authenticate(email, request.form.get("password", ""))
        if user is not None:
            login_user(user, remember=False)
            return redirect(safe_next(request.args.get("next")), 303)
        return render_template(
            "auth/login.html", email=email, error="Wrong email or password."
        ), 401
    return render_template("auth/login.html", email=email, error=None)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"), 303)


@bp.route("/setup", methods=["GET", "POST"])
def setup() -> ResponseReturnValue:
    """Create the first admin; gone (404) as soon as any user exists."""
    if users_exist():
        abort(404)
    errors: dict[str, list[str]] = {}
    email = request.form.get("email", "")
    if request.method == "POST":
        user, errors = create_user(
            email,
            request.form.get("password", ""),
            role="admin",
            confirmation=request.form.get("password_confirmation", ""),
        )
        if user is not None:
            login_user(user)
            flash("Welcome! You are the first admin.", "success")
            return redirect(url_for("providers.index"), 303)
    status = 422 if errors else 200
    return render_template("auth/setup.html", email=email, errors=errors), status
