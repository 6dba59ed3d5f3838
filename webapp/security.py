"""Who may see what: sign-in for every page but a few, admin for configuration."""

from __future__ import annotations

from flask import Flask, abort, jsonify, make_response, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from webapp.extensions import login_manager
from webapp.models import User
from webapp.services.users import SessionUser, user_for_session

# Endpoints anyone may reach; everything else needs a signed-in user.
PUBLIC_ENDPOINTS = frozenset({"auth.login", "auth.setup", "health.healthz", "static"})
# The gateway authenticates its callers itself, by app key (webapp.services.gateway).
PUBLIC_BLUEPRINTS = frozenset({"mock_llm", "gateway"})
ADMIN_BLUEPRINTS = frozenset(
    {"providers", "models", "presets", "history", "users", "apikeys", "usage"}
)
# Endpoints that check the session in their own first statement (a reply's stream: the
# claim that starts the reply checks it, see reply_states.claim_own) instead of loading the user
# first — one query less on the hottest path. They read the user from `session_user()`.
SESSION_CHECKED_BY_VIEW = frozenset({"chat.stream_message"})


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """The session's user, unless it signed out or changed its password since."""
    return user_for_session(session_id)


@login_manager.unauthorized_handler
def unauthorized() -> ResponseReturnValue:
    login_url = url_for("auth.login", next=request.full_path.rstrip("?"))
    if request.headers.get("HX-Request") == "true":
        response = make_response("", 401)
        response.headers["HX-Redirect"] = login_url
        return response
    if request.accept_mimetypes.best == "application/json":
        return jsonify(error={"message": "sign in required"}), 401
    return redirect(login_url)


def require_access() -> ResponseReturnValue | None:
    """before_request: sign-in everywhere but public endpoints; admin for config areas."""
    if request.routing_exception is not None:
        return None  # no such page or method: let the 404/405 through
    if request.endpoint in PUBLIC_ENDPOINTS or request.blueprint in PUBLIC_BLUEPRINTS:
        return None
    if request.endpoint in SESSION_CHECKED_BY_VIEW:
        return None if session_user() is not None else login_manager.unauthorized()
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if request.blueprint in ADMIN_BLUEPRINTS and not current_user.is_admin:
        abort(403)
    return None


def session_user() -> SessionUser | None:
    """Who the request's session names (Flask-Login keeps `User.get_id()` there), unchecked:
    for the views of SESSION_CHECKED_BY_VIEW, which check it themselves."""
    return SessionUser.parse(session.get("_user_id"))


def init_security(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    app.before_request(require_access)
