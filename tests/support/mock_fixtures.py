"""Fixtures for the service-level tests: one mock server per test module, a fresh view per test.

Loaded as a pytest plugin from conftest.py so the service, streaming, connection and CLI
tests share them instead of each defining the same two fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.app import LiveServer
from tests.support.mock_api import MockAPI, serving_mock


@pytest.fixture(scope="module")
def mock_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with serving_mock(database_url, tmp_path_factory.mktemp("mock")) as server:
        yield server


@pytest.fixture
def mock_api(mock_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> MockAPI:
    return MockAPI.install(mock_server, monkeypatch)
