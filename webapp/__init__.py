"""ModelDesk: LLM providers, models and presets kept in a database and put to work."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response
from sqlalchemy import event
from sqlalchemy.engine import Engine

from webapp import config as app_config
from webapp.db_pool import ping_idle_connections
from webapp.errors import register_errorhandlers
from webapp.extensions import csrf, db, limiter, migrate
from webapp.http_headers import init_http_headers
from webapp.logging_filters import install_log_scrubbing
from webapp.models.chat import described_by_models
from webapp.passwords import init_password_gate
from webapp.routing import IdConverter
from webapp.security import init_security
from webapp.services.gateway import init_gateway
from webapp.services.llm_config import init_llm_settings
from webapp.services.replies import init_replies
from webapp.services.reply_runs import init_reply_runs
from webapp.services.usage import init_usage
from webapp.templating import register_template_filters

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then the environment, then `config` (tests)."""
    config = dict(config or {})
    install_log_scrubbing()
    app = Flask(
        __name__,
        instance_path=config.pop("INSTANCE_PATH", None),
        instance_relative_config=True,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    app.config.update(app_config.build(app.instance_path, config))
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.url_map.converters["id"] = IdConverter
    register_extensions(app)
    register_blueprints(app)
    register_commands(app)
    register_errorhandlers(app)
    register_template_filters(app)
    init_http_headers(app)
    init_llm_settings(app)
    init_replies(app)
    init_reply_runs(app)
    init_gateway(app)
    init_usage(app)
    init_password_gate(app)
    app.after_request(_vary_on_htmx)
    return app


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            ping_idle_connections(db.engine)
    migrate.init_app(
        app, db, directory=str(PROJECT_ROOT / "migrations"), include_name=described_by_models
    )
    csrf.init_app(app)
    limiter.init_app(app)
    init_security(app)


def register_blueprints(app: Flask) -> None:
    from webapp import gateway, mock_llm
    from webapp.blueprints import (
        apikeys,
        auth,
        chat,
        health,
        history,
        models,
        presets,
        providers,
        turns,
        usage,
        users,
    )

    for blueprint in (
        auth.bp,
        chat.bp,
        turns.bp,
        health.bp,
        providers.bp,
        models.bp,
        presets.bp,
        history.bp,
        users.bp,
        apikeys.bp,
        usage.bp,
    ):
        app.register_blueprint(blueprint)
    gateway.register(app)
    if app.config["MOCK_LLM_ENABLED"]:
        csrf.exempt(mock_llm.bp)
        app.register_blueprint(mock_llm.bp)


def _vary_on_htmx(response: Response) -> Response:
    # The same URL answers a fragment to htmx and a page otherwise: caches must tell them apart.
    response.vary.add("HX-Request")
    return response


def register_commands(app: Flask) -> None:
    from webapp import cli

    cli.register(app)


@event.listens_for(Engine, "connect")
def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    # SQLite ignores ON DELETE CASCADE unless foreign keys are switched on per connection;
    # WAL lets page reads go on while a chat reply is being written.
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()
