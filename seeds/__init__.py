"""Seed data and the create-only seeding logic behind `flask seed`."""

from seeds.llm import MOCK_PROVIDER_NAME, SeedReport, mock_base_url, seed_llm

__all__ = ["MOCK_PROVIDER_NAME", "SeedReport", "mock_base_url", "seed_llm"]
