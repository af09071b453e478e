"""A real Prometheus, with the shipped configuration and rules, scrapes a real GatewayMetrics
exposition and records the deviation rate; its alerts evaluate on what it scraped."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from gateway.metrics import BASE, GatewayMetrics, render
from gateway.wiring.metrics import gateway_metrics
from tests.monitoring.contract import load_dashboard, panel_exprs
from tests.monitoring.prometheus_server import (
    PrometheusError,
    PrometheusServer,
    Sample,
    running_prometheus,
    shipped_config,
)

pytestmark = pytest.mark.prometheus

# What vLLM's own /metrics looks like, reduced to one gauge.
ENGINE_EXPOSITION = (
    b"# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
    b"# TYPE vllm:num_requests_running gauge\n"
    b'vllm:num_requests_running{engine="0",model_name="base"} 2.0\n'
)

# What Grafana puts in place of the dashboard's variables when "All" is selected.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$adapter": ".*", "$schema": ".*"}


def _record_one_scrape_worth(metrics: GatewayMetrics) -> None:
    """Per scrape: 20 checks of which 6 deviate (4 not_json, 2 truncated) -> 0.3; base: 0."""
    adapter, schema = metrics.adapter_label("support-v1"), metrics.schema_label("invoice")
    metrics.structured_checks.labels(adapter, schema).inc(20)
    metrics.structured_deviations.labels(adapter, schema, "not_json").inc(4)
    metrics.structured_deviations.labels(adapter, schema, "truncated").inc(2)
    metrics.structured_checks.labels(metrics.adapter_label(BASE), metrics.schema_label(None)).inc(5)


def _handler(metrics: GatewayMetrics) -> type[BaseHTTPRequestHandler]:
    class Exposition(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                _record_one_scrape_worth(metrics)
                self._answer(render(metrics))
            elif self.path == "/metrics/engine":
                self._answer(ENGINE_EXPOSITION)
            else:
                self.send_error(404)

        def _answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every second would flood the test output

    return Exposition


@pytest.fixture(scope="module")
def gateway_target() -> Iterator[str]:
    """host:port of a server exposing a live GatewayMetrics like the gateway does."""
    metrics = gateway_metrics(registry=CollectorRegistry(auto_describe=True))
    metrics.adapters.add("support-v1")
    metrics.schemas.add("invoice")
    metrics.engine_ready.set(1)  # as the gateway's engine monitor does once the engine answers
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(metrics))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def prometheus(
    prometheus_binary: Path, tmp_path_factory: pytest.TempPathFactory, gateway_target: str
) -> Iterator[PrometheusServer]:
    """A real Prometheus running the shipped configuration against `gateway_target`."""
    workdir = tmp_path_factory.mktemp("prometheus")
    with running_prometheus(prometheus_binary, shipped_config(gateway_target), workdir) as server:
        yield server


def _values(samples: list[Sample], *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(s.labels[k] for k in labels): round(s.value, 6) for s in samples}


def test_recorded_deviation_rate_on_scraped_metrics(prometheus: PrometheusServer) -> None:
    ratio = prometheus.wait_for(
        "adapter_schema:gateway_structured_deviation_ratio:rate5m",
        until=lambda result: len(result) == 2,
    )
    assert _values(ratio, "adapter", "schema") == {
        ("support-v1", "invoice"): 0.3,
        ("base", "none"): 0.0,
    }
    by_kind = prometheus.wait_for(
        "adapter_schema_kind:gateway_structured_deviation_ratio:rate5m",
        until=lambda result: len(result) == 2,
    )
    assert _values(by_kind, "adapter", "schema", "kind") == {
        ("support-v1", "invoice", "not_json"): 0.2,
        ("support-v1", "invoice", "truncated"): 0.1,
    }


def test_deviation_alerts_evaluate_on_scraped_metrics(prometheus: PrometheusServer) -> None:
    # 30 % is above both levels; once 100 checks are in, both alerts wait out their `for`,
    # and nothing else is pending.
    pending = prometheus.wait_for(
        'ALERTS{alertstate="pending"}', until=lambda result: len(result) == 2
    )
    assert _values(pending, "alertname", "adapter", "severity") == {
        ("GatewayStructuredDeviationRateWarning", "support-v1", "warning"): 1.0,
        ("GatewayStructuredDeviationRateCritical", "support-v1", "critical"): 1.0,
    }


def test_both_shipped_jobs_scrape_their_paths(prometheus: PrometheusServer) -> None:
    up = prometheus.wait_for("up", until=lambda result: len(result) == 2)
    assert _values(up, "job") == {("gateway",): 1.0, ("gateway-engine",): 1.0}
    running = prometheus.wait_for("vllm:num_requests_running")
    assert _values(running, "job", "model_name") == {("gateway-engine", "base"): 2.0}
    checks = prometheus.query("gateway_structured_checks_total")
    assert {s.labels["job"] for s in checks} == {"gateway"}


@pytest.mark.parametrize(
    ("title", "expr"),
    [(title, expr) for title, exprs in panel_exprs(load_dashboard()).items() for expr in exprs],
)
def test_dashboard_query_runs(prometheus: PrometheusServer, title: str, expr: str) -> None:
    """Prometheus accepts the query once Grafana has filled in its variables."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    prometheus.query(expr)  # raises PrometheusError on a parse or evaluation error


def test_a_server_that_cannot_start_reports_its_log(
    prometheus_binary: Path, tmp_path: Path
) -> None:
    config = shipped_config("127.0.0.1:9")
    config["rule_files"] = [str(tmp_path / "invalid.yml")]
    (tmp_path / "invalid.yml").write_text("groups: [{name: x, rules: [{record: 'a b', expr: 1}]}]")
    with (
        pytest.raises(PrometheusError, match="not ready.*log ends with"),
        running_prometheus(prometheus_binary, config, tmp_path),
    ):
        pass
