"""The embedded engine is the gateway's alone: its /v1 routes want a key only the gateway has."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import RealGateway

pytestmark = pytest.mark.integration


def test_the_engine_refuses_callers_without_its_key(real_gateway: RealGateway) -> None:
    engine = real_gateway.engine_url()
    with httpx.Client(base_url=engine, timeout=30) as direct:
        load = direct.post("/v1/load_lora_adapter",
                           json={"lora_name": "sneaky", "lora_path": "/tmp/sneaky"})
        assert load.status_code == 401
        guessed = direct.get("/v1/models", headers={"authorization": "Bearer guess"})
        assert guessed.status_code == 401
        assert direct.get("/health").status_code == 200  # liveness stays open
    # The gateway itself still reaches it.
    assert real_gateway.sdk().models.list().data
