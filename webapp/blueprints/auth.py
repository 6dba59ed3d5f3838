"""Sign-in, sign-out, the one-time set-up page that creates the first admin, and the
Account page where everyone changes their own password."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user, logout_user

from webapp.extensions import limiter
from webapp.forms import AccountPasswordForm, LoginForm, SetupForm, add_errors
from webapp.models import User
from webapp.passwords import RETRY_AFTER_SECONDS, PasswordChecksBusy
from webapp.services.users import (
    SetupDone,
    authenticate,
    change_own_password,
    create_first_admin,
    end_sessions,
    record_sign_in,
    users_exist,
)

bp = Blueprint("auth", __name__)


SIGN_INS_BUSY_TEXT = "Too many sign-ins at once: try again in a few seconds."
# Longer than any page of this site needs; a longer `next` is ignored.
MAX_NEXT_LENGTH = 2000


def safe_next(target: str | None) -> str:
    """`next` only when it is a path on this site; anything else goes home.

    Refused: other sites ("//host", "https://…", "/\\host"), and any character that is not
    printable — CR/LF would break the Location header, and browsers drop tabs and newlines
    from a URL, so "/<TAB>/host" would become "//host".
    """
    home = url_for("chat.index")
    if (
        not target
        or len(target) > MAX_NEXT_LENGTH
        or not target.isprintable()
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
    ):
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return home
    return target


def start_session(user: User) -> None:
    """Sign in with a new session: nothing from before carries over (no fixation), and the
    CSRF token is a new one, so a token seen before sign-in is useless after it."""
    session.clear()
    g.pop("csrf_token", None)  # Flask-WTF's per-request copy of the old token
    login_user(user, remember=False)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute", methods=["POST"])
def login() -> ResponseReturnValue:
    if not users_exist():
        return redirect(url_for("auth.setup"))
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next")))
    form = LoginForm()
    if form.is_submitted():
        try:
            # Text no account can hold (NUL) is a wrong sign-in like any other.
            user = authenticate(form.email.data, form.password.data) if form.validate() else None
        except PasswordChecksBusy:
            form.form_errors.append(SIGN_INS_BUSY_TEXT)
            retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            return render_template("auth/login.html", form=form), 503, retry
        if user is not None and user.disabled:
            # Said only to someone who knows the password: it tells no stranger who exists.
            form.form_errors.append("This account is disabled: ask an admin to enable it.")
            return render_template("auth/login.html", form=form), 403
        if user is not None:
            target = safe_next(request.args.get("next"))
            start_session(user)
            record_sign_in(user)
            return redirect(target, 303)
        form.form_errors.append("Wrong email or password.")
        return render_template("auth/login.html", form=form), 401
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """Sign out here and revoke the session everywhere (a copied cookie stops working)."""
    if current_user.is_authenticated:
        end_sessions(current_user)
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"), 303)


@bp.route("/setup", methods=["GET", "POST"])
def setup() -> ResponseReturnValue:
    """Create the first admin; gone (404) as soon as any user exists.

    A post that loses the race to another browser is sent to sign in.
    """
    if users_exist():
        return _setup_done()
    form = SetupForm()
    if form.validate_on_submit():
        try:
            user, errors = create_first_admin(
                form.email.data, form.password.data, form.password_confirmation.data
            )
        except SetupDone:
            return _setup_done()
        if user is not None:
            start_session(user)
            flash("Welcome! You are the first admin.", "success")
            return redirect(url_for("providers.index"), 303)
        add_errors(form, errors)
    status = 422 if form.errors else 200
    return render_template("auth/setup.html", form=form), status


def _setup_done() -> ResponseReturnValue:
    if request.method != "POST":
        abort(404)
    flash("ModelDesk is already set up: sign in.", "info")
    return redirect(url_for("auth.login"), 303)


@bp.route("/account", methods=["GET", "POST"])
def account() -> ResponseReturnValue:
    """Change your own password: the current one is asked; every other session of yours
    ends, and this one is signed in again under the new session version."""
    form = AccountPasswordForm()
    if form.is_submitted():
        if form.validate():
            user = current_user._get_current_object()
            errors = change_own_password(
                user,
                form.current_password.data,
                form.password.data,
                form.password_confirmation.data,
            )
            if not errors:
                start_session(user)
                flash("Your password is changed; your other sessions have ended.", "success")
                return redirect(url_for("auth.account"), 303)
            add_errors(form, errors)
        return render_template("auth/account.html", form=form), 422
    return render_template("auth/account.html", form=form)
