"""Small helpers for answering htmx requests and plain ones from the same views."""

from __future__ import annotations

from flask import make_response, request
from werkzeug.wrappers import Response


def is_htmx_fragment_request() -> bool:
    """An htmx request that wants a fragment rather than a whole page.

    Not a boosted navigation or form (those want pages), and for a GET only one aimed at an
    element: the GET htmx makes to follow an `HX-Location` targets the body, which has no id,
    so it sends no `HX-Target` and gets the page.
    """
    if request.headers.get("HX-Request") != "true" or request.headers.get("HX-Boosted"):
        return False
    return request.method != "GET" or bool(request.headers.get("HX-Target"))


def redirect_for_htmx(location: str) -> Response:
    """A redirect that works for htmx (HX-Location keeps boost) and plain requests (303)."""
    if request.headers.get("HX-Request") == "true":
        response = make_response("", 204)
        response.headers["HX-Location"] = location
        return response
    response = make_response("", 303)
    response.headers["Location"] = location
    return response


def form_page(body: str, status: int, page_url: str) -> Response:
    """A form page answering a POST (errors, a conflict): htmx shows `page_url` — the page
    that GETs this form — in the address bar instead of the POST's URL, which a reload or a
    bookmark would answer with 405. Replaced, not pushed: Back still leaves the form."""
    return keep_address(make_response(body, status), page_url)


def keep_address(response: Response, page_url: str) -> Response:
    """`response` to a POST, telling htmx to show `page_url` in the address bar."""
    if request.method == "POST" and request.headers.get("HX-Request") == "true":
        response.headers["HX-Replace-Url"] = page_url
    return response
