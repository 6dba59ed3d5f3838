"""What the gateway serves and to whom, held in process: no query per request.

A `Snapshot` holds every live app key's grant (by secret hash) and every model id the gateway
answers to (`key`, `key@preset`) as engine specs. It is rebuilt when the configuration's
version changes — one aggregate query, at most once a second per process — so a revoked key
stops working within about a second; a commit that changes keys or models also tells this
instance at once, and every other one through Redis when REDIS_URL is set (`ChangeFeed`).
When the database does not answer, the last snapshot goes on serving: known keys keep
working through a database blip.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask, current_app, has_app_context
from sqlalchemy import event, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import ORMExecuteState, Session, selectinload

from webapp.extensions import db
from webapp.llm.specs import ModelSpec, PresetSpec
from webapp.models import LLMModel, LLMPreset, LLMProvider
from webapp.models.gateway import AppKey
from webapp.models.validation import normalize_key
from webapp.services.app_keys import AppKeyGrant, grant_of
from webapp.services.llm_config import model_spec

log = logging.getLogger(__name__)

PRESET_SEPARATOR = "@"
# How stale the snapshot may be: the promise is a revocation seen within a second.
CHECK_INTERVAL_SECONDS = 1.0
_EXTENSION = "gateway_catalog"
_FEED = "gateway_change_feed"
# After MODELDESK_REDIS_PREFIX: deployments sharing one Redis do not hear each other.
CHANGES_CHANNEL = "{prefix}:gateway:config-changed"
RECONNECT_SECONDS = 1.0


@dataclass(frozen=True)
class Route:
    """One model id of the gateway: the model, and the preset the id names (None: the
    model's default preset, if it has one)."""

    id: str
    model: ModelSpec
    preset: PresetSpec | None
    owned_by: str
    created: int


@dataclass(frozen=True)
class Snapshot:
    version: tuple[Any, ...]
    grants: dict[str, AppKeyGrant]
    routes: dict[str, Route]

    def route(self, model_id: str) -> Route | None:
        return self.routes.get(normalize_key(model_id) or "")


class CatalogUnavailable(Exception):
    """No snapshot yet and the database does not answer."""


class Catalog:
    """The current snapshot, checked against the database's version at most once per
    `interval` seconds; only one thread checks while the others use the snapshot they have."""

    def __init__(
        self, interval: float = CHECK_INTERVAL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._checked_at = -float("inf")

    def current(self) -> Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and self._clock() - self._checked_at < self._interval:
            return snapshot
        if snapshot is not None and not self._lock.acquire(blocking=False):
            return snapshot  # another thread is checking
        if snapshot is None:
            self._lock.acquire()
        try:
            return self._refresh()
        finally:
            self._lock.release()

    def invalidate(self) -> None:
        """Check the database on the next request (after a change made in this process)."""
        self._checked_at = -float("inf")

    def _refresh(self) -> Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and self._clock() - self._checked_at < self._interval:
            return snapshot  # another thread refreshed it while this one waited
        try:
            version = _version()
            if snapshot is None or snapshot.version != version:
                snapshot = self._snapshot = _load(version)
        except SQLAlchemyError as error:
            db.session.rollback()
            if snapshot is None:
                raise CatalogUnavailable(str(error)) from error
            log.warning("gateway: the database did not answer; serving the last snapshot")
        self._checked_at = self._clock()
        return snapshot


def init_catalog(app: Flask) -> None:
    """The app's catalog; with REDIS_URL, a change committed on any instance reaches every
    instance's catalog at once (pub/sub), not only at its next version check."""
    app.extensions[_EXTENSION] = catalog = Catalog()
    redis_url = app.config.get("REDIS_URL")
    if redis_url:
        app.extensions[_FEED] = feed = ChangeFeed(redis_url, app.config["REDIS_KEY_PREFIX"])
        feed.subscribe(catalog.invalidate)


class ChangeFeed:
    """Redis pub/sub on the prefix's CHANGES_CHANNEL: `publish` after a commit that changed
    keys or models; a subscriber thread calls `on_change` for each message (and after each
    (re)connection, since messages sent while away are lost). Redis being away costs a log
    line: the version check still sees every change within a second."""

    def __init__(self, url: str, prefix: str) -> None:
        self.channel = CHANGES_CHANNEL.format(prefix=prefix)
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        self._listener = redis.Redis.from_url(url, socket_connect_timeout=1)

    def publish(self) -> None:
        try:
            self._redis.publish(self.channel, "changed")
        except redis.RedisError as error:
            log.warning("gateway: could not announce a configuration change: %s", error)

    def subscribe(self, on_change: Callable[[], None]) -> None:
        threading.Thread(
            target=self._listen, args=(on_change,), name="gateway-changes", daemon=True
        ).start()

    def _listen(self, on_change: Callable[[], None]) -> None:
        while True:
            try:
                pubsub = self._listener.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                on_change()
                for _message in pubsub.listen():
                    on_change()
            except redis.RedisError as error:
                log.warning("gateway: change feed interrupted (%s); reconnecting", error)
                time.sleep(RECONNECT_SECONDS)


_WATCHED = (AppKey, LLMProvider, LLMModel, LLMPreset)
_CHANGED = "gateway_config_changed"


@event.listens_for(Session, "after_flush")
def _note_changes(session: Session, _context: Any) -> None:
    touched = (*session.new, *session.dirty, *session.deleted)
    if any(isinstance(instance, _WATCHED) for instance in touched):
        session.info[_CHANGED] = True


@event.listens_for(Session, "do_orm_execute")
def _note_bulk_changes(state: ORMExecuteState) -> None:
    # Bulk UPDATE / DELETE through the session (a provider's enable-all) never flush.
    mapper = state.bind_mapper
    bulk = state.is_update or state.is_delete
    if bulk and mapper is not None and issubclass(mapper.class_, _WATCHED):
        state.session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _announce_changes(session: Session) -> None:
    if not session.info.pop(_CHANGED, False) or not has_app_context():
        return
    # This instance sees its own change at once; the others hear it from the feed.
    current_app.extensions[_EXTENSION].invalidate()
    feed = current_app.extensions.get(_FEED)
    if feed is not None:
        feed.publish()


@event.listens_for(Session, "after_rollback")
def _forget_changes(session: Session) -> None:
    session.info.pop(_CHANGED, None)


def catalog() -> Catalog:
    """The current app's gateway catalog."""
    return current_app.extensions[_EXTENSION]


def _version() -> tuple[Any, ...]:
    """Changes whenever a key, provider, model or preset is added, edited or deleted."""
    parts = []
    for table in (AppKey, LLMProvider, LLMModel, LLMPreset):
        parts.append(select(func.max(table.updated_at)).scalar_subquery())
        parts.append(select(func.count()).select_from(table).scalar_subquery())
    return tuple(db.session.execute(select(*parts)).one())


def _load(version: tuple[Any, ...]) -> Snapshot:
    keys = db.session.scalars(select(AppKey).where(AppKey.revoked_at.is_(None)))
    grants = {key.secret_hash: grant_of(key) for key in keys}
    models = db.session.scalars(
        select(LLMModel)
        .where(LLMModel.enabled.is_(True), LLMModel.key.is_not(None))
        .options(selectinload(LLMModel.llm_provider), selectinload(LLMModel.llm_presets))
    )
    routes: dict[str, Route] = {}
    for model in models:
        for route in _routes_of(model):
            routes[route.id] = route
    db.session.close()
    return Snapshot(version, grants, routes)


def _routes_of(model: LLMModel) -> list[Route]:
    spec = model_spec(model)
    owned_by = model.llm_provider.name
    created = int(model.created_at.timestamp())
    routes = [Route(model.key or "", spec, None, owned_by, created)]
    for preset in spec.presets:
        if preset.key:
            route_id = f"{model.key}{PRESET_SEPARATOR}{preset.key}"
            routes.append(Route(route_id, spec, preset, owned_by, created))
    return routes
