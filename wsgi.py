"""WSGI entry point: `gunicorn wsgi:app` or `flask --app wsgi ...`."""

from webapp import create_app
from webapp.config import ConfigError

try:
    app = create_app()
except ConfigError as error:
    # One readable line instead of a traceback: the operator has a variable to set.
    raise SystemExit(f"ModelDesk cannot start: {error}") from None
