"""A base URL that already ends with the API prefix is refused, with the fix in the message."""

from __future__ import annotations

import pytest
from flask import Flask

from webapp.models import LLMProvider
from webapp.models.validation import base_url_without_prefix


@pytest.mark.parametrize(
    ("base_url", "api_prefix", "fixed"),
    [
        ("https://x.example/v1", "/v1", "https://x.example"),
        ("https://x.example/api/v1/", "/v1", "https://x.example/api"),
        ("https://x.example/api/v1", "/v1/", "https://x.example/api"),
        ("https://x.example/api", "/v1", None),
        ("https://x.example/apiv1", "/v1", None),
        ("https://v1", "/v1", None),  # the host is not a path
        ("https://x.example/v1", "", None),
        ("https://x.example/v1?x=/v1", "/v1", None),
    ],
)
def test_base_url_without_prefix(base_url: str, api_prefix: str, fixed: str | None) -> None:
    assert base_url_without_prefix(base_url, api_prefix) == fixed


def test_a_provider_with_the_prefix_twice_is_invalid(app: Flask) -> None:
    provider = LLMProvider(name="P", base_url="https://x.example/v1", api_prefix="/v1")
    assert provider.validation_errors()["base_url"] == [
        "already ends with the API prefix /v1 (requests would go to /v1/v1): use https://x.example"
    ]
