"""The OpenAI-compatible API under /v1: thin views over webapp.services.gateway."""

from flask import Flask

from webapp.errors import register_api_errors
from webapp.extensions import csrf
from webapp.gateway.errors import http_error
from webapp.gateway.views import bp

__all__ = ["bp", "register"]


def register(app: Flask) -> None:
    """Serve the API: no CSRF (keys, not cookies, authenticate it), OpenAI-shaped errors."""
    csrf.exempt(bp)
    app.register_blueprint(bp)
    register_api_errors(app, f"{bp.url_prefix}/", http_error)
