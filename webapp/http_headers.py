"""Response security headers, the opt-in instance name, and the opt-in trust of a reverse
proxy's forwarded headers."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

# htmx runs with allowEval=false and without its injected indicator <style>, and every page
# behaviour lives in static files: nothing inline is needed, so nothing inline is allowed.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def _add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


INSTANCE_HEADER = "X-ModelDesk-Instance"


def _instance_header(name: str) -> Callable[[Response], Response]:
    def add(response: Response) -> Response:
        response.headers[INSTANCE_HEADER] = name
        return response

    return add


def init_http_headers(app: Flask) -> None:
    app.after_request(_add_security_headers)
    instance = app.config.get("INSTANCE_NAME")
    if instance:
        # Opt-in, a name the operator chose: behind a load balancer it tells which instance
        # answered (logs, debugging, the cluster tests) without exposing an address or a pid.
        app.after_request(_instance_header(instance))
    proxies = app.config.get("TRUSTED_PROXY_COUNT", 0)
    if proxies:
        # Only behind a proxy that sets these headers: otherwise clients could spoof them.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_port=proxies
        )
