"""WSGI entry point: `gunicorn wsgi:app` or `flask --app wsgi ...`."""

from webapp import create_app

app = create_app()
