"""Concurrent imports of the same model ids, over real HTTP against a threaded live server."""

from __future__ import annotations

import threading
from typing import Any

import httpx2
from sqlalchemy import func, select

from tests.support.app import LiveServer
from tests.support.factories import make_model, make_provider
from tests.support.users import ADMIN_EMAIL, csrf_token, signed_in_client
from webapp.extensions import db
from webapp.models import LLMModel

IMPORTERS = 6
MODEL_IDS = [f"vendor/model-{index:02d}" for index in range(30)]


def test_concurrent_imports_of_the_same_ids_never_500_and_store_each_id_once(
    live_server: LiveServer, admin: Any
) -> None:
    provider = make_provider()
    make_model(provider, model=MODEL_IDS[7], name="Added before", enabled=True)
    clients = [signed_in_client(live_server, ADMIN_EMAIL) for _ in range(IMPORTERS)]
    tokens = [csrf_token(client, f"/providers/{provider.id}/edit") for client in clients]
    start = threading.Barrier(IMPORTERS)
    responses: list[httpx2.Response | BaseException] = [RuntimeError("not run")] * IMPORTERS

    def run_import(index: int) -> None:
        # Each importer ticks the ids in its own order, so they overlap every which way.
        ids = MODEL_IDS[index:] + MODEL_IDS[:index]
        start.wait(timeout=10)
        try:
            responses[index] = clients[index].post(
                f"/providers/{provider.id}/import",
                data={"csrf_token": tokens[index], "model_ids": ids},
                timeout=30,
            )
        except BaseException as error:  # reported by the assertion below
            responses[index] = error

    threads = [threading.Thread(target=run_import, args=(i,)) for i in range(IMPORTERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for client in clients:
        client.close()

    statuses = [getattr(r, "status_code", r) for r in responses]
    assert statuses == [303] * IMPORTERS
    assert all(
        r.headers["Location"] == f"/models/?provider={provider.id}"  # type: ignore[union-attr]
        for r in responses
    )
    counts = dict(
        db.session.execute(
            select(LLMModel.model, func.count())
            .where(LLMModel.llm_provider_id == provider.id)
            .group_by(LLMModel.model)
        ).all()
    )
    assert counts == {model_id: 1 for model_id in MODEL_IDS}
    kept = db.session.scalars(select(LLMModel).where(LLMModel.model == MODEL_IDS[7])).one()
    assert (kept.name, kept.enabled) == ("Added before", True)
