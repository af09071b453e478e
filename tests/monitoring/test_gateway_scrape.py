"""A real Prometheus with the shipped configuration scrapes a running gateway (in front of the
fake engine, both over real HTTP) and records exactly the traffic that was sent.

Rates are exact only when Prometheus sees every series of a ratio start at the same value:
`rate()` extrapolates a counter toward the start of its window only as far as the counter
stays above zero, so series first seen at 0 are extrapolated alike and their ratio is the
ratio of what was sent. The tests therefore create the series they compare (at 0, through
the gateway's own metrics) and wait for a scrape before sending traffic.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from gateway.app import create_app
from gateway.evaluation.report import FINE_TUNE
from gateway.evaluation.sources import default_plan, from_prometheus
from gateway.metrics import BASE, OTHER, GatewayMetrics
from tests.conftest import BASE_MODEL, SettingsFactory
from tests.fakes.engine import FakeEngine
from tests.monitoring.prometheus_server import (
    PrometheusServer,
    Sample,
    running_prometheus,
    shipped_config,
)
from tests.servers import free_port, serving

pytestmark = [pytest.mark.prometheus, pytest.mark.anyio]

TICKET = {"category": "billing", "priority": "high", "escalate": True}
PROSE = "Sure! This one is about a double charge, so billing should take it, quite urgently."
TICKET_FORMAT = {"type": "json_schema", "json_schema": {"name": "ticket"}}
WAIT_S = 20.0
EXACT = 1e-9


@pytest.fixture
def gateway_port() -> int:
    return free_port()


@pytest.fixture
def prometheus(
    prometheus_binary: Path, tmp_path: Path, gateway_port: int
) -> Iterator[PrometheusServer]:
    """The shipped configuration, scraping the gateway's port every second."""
    config = shipped_config(f"127.0.0.1:{gateway_port}")
    with running_prometheus(prometheus_binary, config, tmp_path) as server:
        yield server


@pytest.fixture
async def gateway(
    make_settings: SettingsFactory, gateway_port: int
) -> AsyncIterator[tuple[httpx.AsyncClient, GatewayMetrics]]:
    """The gateway on ``gateway_port``; a client for it and its metrics."""
    app = create_app(make_settings())
    async with serving(app, gateway_port) as url, httpx.AsyncClient(base_url=url) as client:
        yield client, app.state.metrics


async def _in_thread(
    prometheus: PrometheusServer, expr: str, until: Callable[[list[Sample]], bool] = bool
) -> list[Sample]:
    """Waits on Prometheus off the event loop, which must keep answering its scrapes."""
    return await anyio.to_thread.run_sync(lambda: prometheus.wait_for(expr, until, WAIT_S))


def _by(samples: list[Sample], label: str) -> dict[str, float]:
    return {s.labels[label]: s.value for s in samples}


def _near(expected: dict[str, float]) -> Callable[[list[Sample]], bool]:
    def accepts(samples: list[Sample]) -> bool:
        found = _by(samples, "adapter")
        return found.keys() == expected.keys() and all(
            abs(found[k] - v) < EXACT for k, v in expected.items())
    return accepts


def _chat(model: str = BASE_MODEL, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Route this."}], **extra}


async def test_request_rate_and_error_ratio(
    prometheus: PrometheusServer,
    gateway: tuple[httpx.AsyncClient, GatewayMetrics],
    fake_engine: FakeEngine,
) -> None:
    client, metrics = gateway
    for adapter, status in ((BASE, "200"), (BASE, "502"), (OTHER, "404")):
        metrics.requests.labels(adapter, "chat", status)
    await _in_thread(prometheus, "gateway_requests_total", lambda found: len(found) == 3)

    for index in range(25):
        if index % 5 == 4:
            fake_engine.enqueue("the engine fell over", status=500)
        response = await client.post("/v1/chat/completions", json=_chat())
        assert response.status_code == (502 if index % 5 == 4 else 200)
    for index in range(4):
        response = await client.post("/v1/chat/completions", json=_chat(f"unknown-{index}"))
        assert response.status_code == 404

    await _in_thread(prometheus, "sum(gateway_requests_total)",
                     lambda found: bool(found) and found[0].value == 29)
    errors = await _in_thread(prometheus, "adapter:gateway_requests_5xx:ratio_rate5m",
                              _near({BASE: 5 / 25, OTHER: 0.0}))
    assert _by(errors, "adapter") == pytest.approx({BASE: 0.2, OTHER: 0.0}, abs=EXACT)
    refused = await _in_thread(prometheus, "adapter:gateway_requests_4xx:ratio_rate5m",
                               _near({BASE: 0.0, OTHER: 1.0}))
    assert _by(refused, "adapter") == pytest.approx({BASE: 0.0, OTHER: 1.0}, abs=EXACT)
    rates = _by(await _in_thread(prometheus, "adapter:gateway_requests:rate5m"), "adapter")
    assert rates[BASE] / rates[OTHER] == pytest.approx(25 / 4, abs=EXACT)


async def test_recorded_deviation_rate_of_structured_traffic(
    prometheus: PrometheusServer,
    gateway: tuple[httpx.AsyncClient, GatewayMetrics],
    fake_engine: FakeEngine,
) -> None:
    client, metrics = gateway
    schema = metrics.schema_label("ticket")
    assert schema == "ticket"
    metrics.ensure_structured_series(BASE, schema)
    await _in_thread(prometheus, "gateway_structured_checks_total")

    # 10 requests; the first answer of 3 of them is prose (not_json), each fixed on retry.
    for index in range(10):
        if index in (2, 5, 8):
            fake_engine.enqueue(PROSE)
        fake_engine.enqueue(json.dumps(TICKET))
    for _ in range(10):
        response = await client.post("/v1/chat/completions",
                                     json=_chat(response_format=TICKET_FORMAT))
        assert response.status_code == 200, response.text
        assert json.loads(response.json()["choices"][0]["message"]["content"]) == TICKET
    assert not fake_engine.answers

    await _in_thread(prometheus, "sum(gateway_structured_checks_total)",
                     lambda found: bool(found) and found[0].value == 13)
    ratio = await _in_thread(prometheus, "adapter:gateway_structured_deviation_ratio:rate5m",
                             _near({BASE: 3 / 13}))
    assert _by(ratio, "adapter") == pytest.approx({BASE: 3 / 13}, abs=EXACT)
    by_schema = await _in_thread(
        prometheus, "adapter_schema:gateway_structured_deviation_ratio:rate5m")
    assert _by(by_schema, "schema") == pytest.approx({"ticket": 3 / 13}, abs=EXACT)
    by_kind = await _in_thread(
        prometheus, "adapter_schema_kind:gateway_structured_deviation_ratio:rate5m > 0")
    assert _by(by_kind, "kind") == pytest.approx({"not_json": 3 / 13}, abs=EXACT)
    recoveries = await _in_thread(prometheus, "gateway_structured_recoveries_total")
    assert [s.value for s in recoveries] == [3]
    # `adapter-gateway eval --from-prometheus` reads the same traffic back: 13 checked
    # answers, 3 of them prose, and a recommendation from those numbers.
    report = await anyio.to_thread.run_sync(
        lambda: from_prometheus(default_plan(), prometheus.url, "5m"))
    (live,) = report.variants
    assert (live.name, live.requests, live.by_kind) == ("base/ticket", 13, {"not_json": 3})
    assert report.decision.recommendation == FINE_TUNE
