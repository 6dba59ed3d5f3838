"""Seed data and the create-only seeding logic behind `flask seed`."""

from seeds.llm import SeedReport, seed_llm

__all__ = ["SeedReport", "seed_llm"]
