"""Benchmark: the models list page with 10 vs 1,000 models.

Prints server time per request (p50/p95, measured around the WSGI call with the Flask test
client, so no network) and the number of SQL statements per request, which must not grow
with the number of rows.

    python bench/models_page.py [--requests 200] [--database-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import event, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from webapp import create_app
from webapp.extensions import db
from webapp.models import LLMModel, LLMProvider
from webapp.services.users import create_user

PASSWORD = "benchmark-password"


def populate(total_models: int) -> None:
    providers = [
        LLMProvider(name=f"Provider {i}", base_url=f"https://p{i}.example", api_prefix="/v1")
        for i in range(10)
    ]
    db.session.add_all(providers)
    db.session.flush()
    db.session.add_all(
        LLMModel(
            llm_provider=providers[i % 10],
            model=f"vendor/model-{i}",
            name=f"Model {i}",
            key=f"model-{i}",
            enabled=i % 3 == 0,
            supports_streaming=True,
            supports_tool_calling=i % 2 == 0,
            context_window_tokens=128_000,
        )
        for i in range(total_models)
    )
    db.session.commit()


def measure(app: Flask, total_models: int, requests: int) -> tuple[list[float], int]:
    with app.app_context():
        for table in ("llm_presets", "llm_models", "llm_providers"):
            db.session.execute(text(f"DELETE FROM {table}"))
        db.session.commit()
        populate(total_models)
    client = app.test_client()
    client.post("/login", data={"email": "bench@example.com", "password": PASSWORD})
    statements = 0

    def count(*_args: object) -> None:
        nonlocal statements
        statements += 1

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    response = client.get("/models/")
    assert response.status_code == 200, response.status_code
    assert response.get_data(as_text=True).count("vendor/model-") >= total_models
    per_request = statements
    event.remove(engine, "before_cursor_execute", count)
    timings = []
    for _ in range(requests):
        start = time.perf_counter()
        client.get("/models/").close()
        timings.append((time.perf_counter() - start) * 1000)
    return timings, per_request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="modeldesk-bench-")
    url = args.database_url or f"sqlite:///{folder}/bench.sqlite3"
    app = create_app(
        {
            "MODELDESK_ENV": "test",
            "SQLALCHEMY_DATABASE_URI": url,
            "SECRET_KEY": "bench",
            "MODELDESK_ENCRYPTION_KEY": "bench",
            "INSTANCE_PATH": folder,
            "WTF_CSRF_ENABLED": False,
            "RATELIMIT_ENABLED": False,
        }
    )
    with app.app_context():
        upgrade()
        create_user("bench@example.com", PASSWORD, role="admin")
    print(f"models page, {url.split(':')[0]}, {args.requests} requests each")
    print(f"{'models':>7} {'SQL/request':>12} {'p50 ms':>8} {'p95 ms':>8}")
    for total in (10, 1000):
        timings, statements = measure(app, total, args.requests)
        quantiles = statistics.quantiles(timings, n=20)
        print(
            f"{total:>7} {statements:>12} {statistics.median(timings):>8.1f} {quantiles[18]:>8.1f}"
        )


if __name__ == "__main__":
    main()
