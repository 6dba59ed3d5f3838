"""Every failure under /v1 answers the OpenAI way, JSON `{"error": {...}}` — never an HTML
error page, whatever went wrong (no route, wrong method, a body that is not JSON, a bug)."""

from __future__ import annotations

from flask import Response, jsonify
from werkzeug.exceptions import HTTPException

from webapp.services.gateway import ApiError

# Said in the API's own terms: the app's messages are written for people on its pages.
_MESSAGES = {
    404: "Unknown request URL: there is no such endpoint under /v1.",
    405: "This endpoint does not take that method.",
}


def api_error_response(error: ApiError) -> Response:
    response = jsonify(error.body())
    response.status_code = error.status
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def http_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """The OpenAI-shaped answer for an error the app met before or outside a gateway view."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    response = api_error_response(ApiError(status, _MESSAGES.get(status, message), kind))
    response.headers.update(headers or {})
    return response


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    return http_error(status, error.description or "Error", dict(error.get_headers()))
