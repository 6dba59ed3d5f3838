"""Error pages: HTML for browsers, a flash fragment for htmx, JSON for JSON clients."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

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
}


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return request.is_json or best == "application/json"


def error_response(status: int, message: str) -> ResponseReturnValue:
    if _wants_json():
        return jsonify(error={"message": message, "status": status}), status
    if request.headers.get("HX-Request") == "true":
        html = render_template("_flash.html", category="error", message=message)
        # Shown in the flash area whatever the request targeted.
        return html, status, {"HX-Retarget": "#flashes", "HX-Reswap": "innerHTML"}
    return render_template("errors/error.html", status=status, message=message), status


def handle_http_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    return error_response(status, MESSAGES.get(status, error.description or "Error"))


def handle_csrf_error(error: CSRFError) -> ResponseReturnValue:
    return error_response(
        400, "The form expired or was not sent from this site: reload the page and try again."
    )


def handle_unexpected_error(error: Exception) -> ResponseReturnValue:
    if isinstance(error, HTTPException):
        return handle_http_error(error)
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, MESSAGES[500])


def register_errorhandlers(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(InternalServerError, handle_unexpected_error)
    app.register_error_handler(Exception, handle_unexpected_error)
