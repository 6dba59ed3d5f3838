"""ModelDesk: LLM providers, models and presets kept in a database and put to work."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from webapp import config as app_config
from webapp.extensions import db, migrate

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then the environment, then `config` (tests)."""
    config = dict(config or {})
    app = Flask(
        __name__,
        instance_path=config.pop("INSTANCE_PATH", None),
        instance_relative_config=True,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    app.config.update(app_config.build(app.instance_path, config))
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    register_extensions(app)
    register_blueprints(app)
    register_commands(app)
    return app


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))


def register_blueprints(app: Flask) -> None:
    from webapp.blueprints import health, mock_llm

    app.register_blueprint(health.bp)
    if app.config["MOCK_LLM_ENABLED"]:
        app.register_blueprint(mock_llm.bp)


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
