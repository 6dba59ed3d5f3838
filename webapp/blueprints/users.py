"""The Users page (admin only): list, create, change role, disable / enable, reset a
password, delete. The rules (last active admin, sessions ending) are the service's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, flash, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from webapp.extensions import db
from webapp.forms import NewUserForm, ResetPasswordForm, RoleForm, add_errors
from webapp.htmx import redirect_for_htmx
from webapp.models import User
from webapp.services import deletions, users
from webapp.templating import plural

bp = Blueprint("users", __name__, url_prefix="/users")


def _render_index(form: NewUserForm | None = None, status: int = 200) -> ResponseReturnValue:
    return (
        render_template(
            "users/index.html", rows=users.list_users(), form=form or NewUserForm(formdata=None)
        ),
        status,
    )


@bp.get("/")
def index() -> ResponseReturnValue:
    return _render_index()


@bp.post("/")
def create() -> ResponseReturnValue:
    form = NewUserForm()
    if form.validate():
        user, errors = users.create_user(
            form.email.data, form.password.data, role=form.role.data or "member"
        )
        if user is not None:
            flash(f"Created {user.role} {user.email}.", "success")
            return redirect_for_htmx(url_for("users.index"))
        add_errors(form, errors)
    return _render_index(form, 422)


def _change(user_id: int, change: Callable[[int], Any], done: str) -> ResponseReturnValue:
    """Run a guarded change; the outcome (or why it was refused) as a flash on the list."""
    user = db.get_or_404(User, user_id)
    email = user.email
    try:
        change(user_id)
    except users.LastAdminError as error:
        flash(f"Not changed: {error}.", "error")
    except users.UserGone:
        flash(f"{email} was already deleted.", "error")
    else:
        flash(done.format(email=email), "success")
    return redirect_for_htmx(url_for("users.index"))


@bp.post("/<id:user_id>/role")
def set_role(user_id: int) -> ResponseReturnValue:
    db.get_or_404(User, user_id)
    role = RoleForm().role.data
    if role not in ("admin", "member"):
        flash("Choose admin or member.", "error")
        return redirect_for_htmx(url_for("users.index"))
    return _change(user_id, lambda uid: users.set_role(uid, role), "{email} is now " + f"{role}.")


@bp.post("/<id:user_id>/disable")
def disable(user_id: int) -> ResponseReturnValue:
    return _change(
        user_id,
        lambda uid: users.set_disabled(uid, True),
        "Disabled {email}: they cannot sign in and their sessions have ended.",
    )


@bp.post("/<id:user_id>/enable")
def enable(user_id: int) -> ResponseReturnValue:
    return _change(
        user_id, lambda uid: users.set_disabled(uid, False), "Enabled {email}: they can sign in."
    )


@bp.post("/<id:user_id>/delete")
def delete(user_id: int) -> ResponseReturnValue:
    user = db.get_or_404(User, user_id)
    email = user.email
    try:
        count = deletions.delete_user(user_id)
    except users.LastAdminError as error:
        flash(f"Not deleted: {error}.", "error")
    except users.UserGone:
        flash(f"{email} was already deleted.", "success")
    else:
        flash(f"Deleted {email} and their {plural(count, 'conversation')}.", "success")
    return redirect_for_htmx(url_for("users.index"))


@bp.route("/<id:user_id>/password", methods=["GET", "POST"])
def reset_password(user_id: int) -> ResponseReturnValue:
    """The admin sets a new password for the user; every session of that user ends."""
    user = db.get_or_404(User, user_id)
    form = ResetPasswordForm()
    if form.is_submitted():
        if form.validate():
            errors = users.reset_password(user_id, form.password.data)
            if not errors:
                message = f"New password set for {user.email}; their sessions have ended."
                if user.id == current_user.id:
                    message += " Sign in again with it."
                flash(message, "success")
                return redirect_for_htmx(url_for("users.index"))
            add_errors(form, errors)
        return render_template("users/password.html", user=user, form=form), 422
    return render_template("users/password.html", user=user, form=form)
