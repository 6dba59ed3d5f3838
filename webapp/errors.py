"""Error pages: HTML for browsers, a flash fragment for htmx, JSON for JSON clients."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException, InternalServerError

from webapp.extensions import db
from webapp.passwords import RETRY_AFTER_SECONDS as PASSWORD_RETRY_AFTER_SECONDS
from webapp.passwords import PasswordChecksBusy

log = logging.getLogger(__name__)

MESSAGES = {
    400: "The request could not be understood.",
    401: "Please sign in.",
    403: "You do not have access to this page.",
    404: "There is nothing here.",
    405: "That action is not allowed here.",
    413: "That request is too large.",
    429: "Too many attempts. Wait a minute and try again.",
    500: "Something went wrong on our side. It has been logged.",
    503: "The database is not answering right now. Try again in a moment.",
}
PASSWORD_CHECKS_BUSY_TEXT = "Too many password checks at once: try again in a few seconds."
# Seconds a client is asked to wait while the database is away.
RETRY_AFTER_SECONDS = 5


_API_ERRORS = "api_error_renderers"
ApiErrorRenderer = Callable[[int, str, dict[str, str]], ResponseReturnValue]


def register_api_errors(app: Flask, prefix: str, render: ApiErrorRenderer) -> None:
    """Every error under `prefix` (no route, wrong method, a bug, the database away) is
    answered by `render(status, message, headers)`, never by an HTML page: an API's clients
    parse its own error format."""
    app.extensions.setdefault(_API_ERRORS, {})[prefix] = render


def _api_renderer() -> ApiErrorRenderer | None:
    renderers: dict[str, ApiErrorRenderer] = current_app.extensions.get(_API_ERRORS, {})
    return next((r for prefix, r in renderers.items() if request.path.startswith(prefix)), None)


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return request.is_json or best == "application/json"


def error_response(
    status: int,
    message: str,
    *,
    page: str = "errors/error.html",
    headers: dict[str, str] | None = None,
    render: Callable[..., str] = render_template,
) -> ResponseReturnValue:
    headers = dict(headers or {})
    render_api = _api_renderer()
    if render_api is not None:
        return render_api(status, message, headers)
    if _wants_json():
        return jsonify(error={"message": message, "status": status}), status, headers
    if request.headers.get("HX-Request") == "true":
        html = render("_flash.html", category="error", message=message)
        # Shown in the flash area whatever the request targeted.
        headers |= {"HX-Retarget": "#flashes", "HX-Reswap": "innerHTML"}
        return html, status, headers
    return render(page, status=status, message=message, path=request.path), status, headers


def _render_without_context(template: str, **context: Any) -> str:
    """A template rendered without the context processors: Flask-Login's would load the
    signed-in user, which needs the database."""
    return current_app.jinja_env.get_template(template).render(**context)


def handle_http_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    return error_response(status, MESSAGES.get(status, error.description or "Error"))


def handle_csrf_error(error: CSRFError) -> ResponseReturnValue:
    return error_response(
        400, "The form expired or was not sent from this site: reload the page and try again."
    )


def handle_database_error(error: DBAPIError) -> ResponseReturnValue:
    """The database is away (or refused the connection): 503, from a page that needs no
    database — the usual layout asks who is signed in, which would fail the same way."""
    log.error("database error on %s %s: %s", request.method, request.path, error.orig)
    with contextlib.suppress(DBAPIError):  # nothing to roll back on a connection that is gone
        db.session.rollback()
    return error_response(
        503,
        MESSAGES[503],
        page="errors/unavailable.html",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        render=_render_without_context,
    )


def handle_password_checks_busy(error: PasswordChecksBusy) -> ResponseReturnValue:
    """Every password check slot stayed busy (a storm of sign-ins): 503, try again soon.
    The sign-in form answers this itself, keeping the email typed."""
    log.warning("refused %s %s: %s", request.method, request.path, error)
    db.session.rollback()
    return error_response(
        503,
        PASSWORD_CHECKS_BUSY_TEXT,
        headers={"Retry-After": str(PASSWORD_RETRY_AFTER_SECONDS)},
    )


def handle_unexpected_error(error: Exception) -> ResponseReturnValue:
    if isinstance(error, HTTPException):
        return handle_http_error(error)
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, MESSAGES[500])


def register_errorhandlers(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(DBAPIError, handle_database_error)
    app.register_error_handler(PasswordChecksBusy, handle_password_checks_busy)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(InternalServerError, handle_unexpected_error)
    app.register_error_handler(Exception, handle_unexpected_error)
