"""Fixtures for the structured-output tests: the shipped schemas, compiled."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.structured.schemas import SchemaRegistry
from gateway.structured.validation import CompiledSchema, ValidatorCache

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "config" / "schemas"


@pytest.fixture
def cache() -> ValidatorCache:
    return ValidatorCache()


@pytest.fixture
def registry(cache: ValidatorCache) -> SchemaRegistry:
    return SchemaRegistry.load(SCHEMAS_DIR, cache)


@pytest.fixture
def ticket(registry: SchemaRegistry) -> CompiledSchema:
    return registry.require("ticket")
