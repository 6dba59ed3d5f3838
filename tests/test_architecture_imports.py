"""The layers import one way: engine ← services ← views, and the mock stands alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WEBAPP = Path(__file__).resolve().parent.parent / "webapp"


def imported_modules(package: str) -> dict[str, set[str]]:
    """Every module each file of `webapp/<package>` imports (absolute names)."""
    found: dict[str, set[str]] = {}
    for path in sorted((WEBAPP / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(WEBAPP))] = names
    return found


def offending(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    return {
        path: sorted(n for n in names if n.split(".")[0] in forbidden or n.startswith(forbidden))
        for path, names in imported_modules(package).items()
        if any(n.split(".")[0] in forbidden or n.startswith(forbidden) for n in names)
    }


def test_the_engine_imports_no_framework_and_no_app_state() -> None:
    forbidden = (
        "flask",
        "flask_login",
        "flask_sqlalchemy",
        "flask_wtf",
        "werkzeug",
        "webapp.extensions",
        "webapp.models",
        "webapp.services",
        "webapp.blueprints",
        "webapp.forms",
    )
    assert offending("llm", forbidden) == {}
    assert imported_modules("llm"), "the engine package was not found"


def test_the_models_import_no_service_view_or_engine() -> None:
    forbidden = ("webapp.services", "webapp.blueprints", "webapp.forms", "webapp.llm")
    assert offending("models", forbidden) == {}


def test_the_mock_api_imports_neither_the_engine_nor_the_app() -> None:
    forbidden = (
        "webapp.llm",
        "webapp.models",
        "webapp.services",
        "webapp.extensions",
        "webapp.blueprints",
    )
    assert offending("mock_llm", forbidden) == {}


@pytest.mark.parametrize("name", ["request", "session", "g"])
def test_services_never_read_the_request(name: str) -> None:
    users = {
        path
        for path, names in imported_modules("services").items()
        if f"flask.{name}" in names or "flask_login.current_user" in names
    }
    assert users == set()
