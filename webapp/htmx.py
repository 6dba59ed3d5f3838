"""Small helpers for answering htmx requests and plain ones from the same views."""

from __future__ import annotations

from typing import Any

from flask import make_response, render_template, request
from werkzeug.wrappers import Response


def is_htmx_fragment_request() -> bool:
    """An htmx request that wants a fragment (not a boosted navigation, which wants a page)."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get("HX-Boosted")


def render(page: str, fragment: str | None = None, status: int = 200, **context: Any) -> Response:
    """Render `fragment` for htmx fragment requests, the full `page` otherwise."""
    template = fragment if fragment and is_htmx_fragment_request() else page
    return make_response(render_template(template, **context), status)


def redirect_for_htmx(location: str) -> Response:
    """A redirect that works for htmx (HX-Location keeps boost) and plain requests (303)."""
    if request.headers.get("HX-Request") == "true":
        response = make_response("", 204)
        response.headers["HX-Location"] = location
        return response
    response = make_response("", 303)
    response.headers["Location"] = location
    return response
