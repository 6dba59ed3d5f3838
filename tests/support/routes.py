"""Walking the URL map: every non-public rule, with its variables filled from real rows."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.routing import Rule

from webapp.security import PUBLIC_BLUEPRINTS


def app_rules(app: Flask) -> list[Rule]:
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and rule.endpoint.split(".")[0] not in PUBLIC_BLUEPRINTS
    ]


def concrete_path(rule: Rule, ids: dict[str, int]) -> str:
    """The rule's path with every variable filled from real rows (1 when there is none)."""
    values = {name: ids.get(name, 1) for name in rule.arguments}
    return rule.build(values, append_unknown=False)[1]


def snapshot(db: Any) -> list[tuple[Any, ...]]:
    rows = []
    for table in db.metadata.sorted_tables:
        rows += [(table.name, *row) for row in db.session.execute(table.select()).all()]
    return sorted(rows, key=repr)
