"""Fixtures for the adapter store tests: a store root and a policy for SmolLM2-135M."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters.store.base_model import BaseModelSpec
from gateway.adapters.store.validation import AdapterPolicy, AdapterSpec, validate_folder
from tests.adapter_factory import write_adapter

MAX_RANK = 16


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def base() -> BaseModelSpec:
    return BaseModelSpec.smollm2_135m()


@pytest.fixture
def policy(store: Path, base: BaseModelSpec) -> AdapterPolicy:
    return AdapterPolicy.build([store], base, MAX_RANK)


SpecFactory = Callable[..., AdapterSpec]


@pytest.fixture
def make_spec(store: Path, policy: AdapterPolicy) -> SpecFactory:
    """Write and validate a small adapter; different seeds give different digests."""

    def build(name: str, *, seed: int = 0, **kw: Any) -> AdapterSpec:
        kw.setdefault("num_layers", 2)
        folder = write_adapter(store / f"{name}-{seed}", name=name, seed=seed, **kw)
        return validate_folder(folder.resolve(), policy)

    return build
