from __future__ import annotations

import httpx
import pytest

from tests.conftest import BASE_MODEL
from tests.fakes.engine import FakeEngine

pytestmark = pytest.mark.anyio

BODY = {"model": BASE_MODEL, "messages": [{"role": "user", "content": "hi"}]}


async def test_health_is_ok(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}


async def test_readiness_follows_the_engine(client: httpx.AsyncClient,
                                            fake_engine: FakeEngine) -> None:
    assert (await client.get("/ready")).status_code == 200
    fake_engine.healthy = False
    not_ready = await client.get("/ready")
    assert not_ready.status_code == 503
    assert not_ready.json()["status"] == "not_ready"
    gated = await client.post("/v1/chat/completions", json=BODY)
    assert gated.status_code == 503
    assert gated.json()["error"]["code"] == "engine_unavailable"
    assert gated.headers["retry-after"] == "5"
    fake_engine.healthy = True
    assert (await client.get("/ready")).status_code == 200
    assert (await client.post("/v1/chat/completions", json=BODY)).status_code == 200


async def test_models_list_has_the_base_model(client: httpx.AsyncClient) -> None:
    models = (await client.get("/v1/models")).json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == [BASE_MODEL]
    assert models["data"][0]["parent"] is None


async def test_engine_metrics_are_proxied(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics/engine")
    assert response.status_code == 200
    assert "vllm:num_requests_running" in response.text


async def test_every_request_gets_an_access_log_line(client: httpx.AsyncClient,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="gateway.access"):
        await client.post("/v1/chat/completions", json=BODY, headers={"x-request-id": "r-42"})
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.access"]
    assert len(lines) == 1
    assert lines[0].startswith("POST /v1/chat/completions 200 ")
    assert lines[0].endswith("adapter=base")


async def test_readiness_lists_each_engine_server(client: httpx.AsyncClient,
                                                  fake_engine: FakeEngine) -> None:
    [server] = (await client.get("/ready")).json()["engine_servers"]
    assert server["state"] == "admitted" and server["failures"] == 0
    fake_engine.healthy = False
    [server] = (await client.get("/ready")).json()["engine_servers"]
    assert server["state"] == "ejected"
    assert server["reason"] == "it does not answer its health check"
    fake_engine.healthy = True  # the only server: admitted as soon as it answers
    assert (await client.get("/ready")).json()["engine_servers"][0]["state"] == "admitted"
