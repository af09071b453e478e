"""The exposition the other monitoring tests compare against holds every gateway metric."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from gateway.wiring.metrics import gateway_metrics
from tests.monitoring.contract import exported_families, exported_samples


def test_every_declared_metric_is_exported_once() -> None:
    declared = [
        metric._name for metric in vars(gateway_metrics()).values()
        if isinstance(metric, Counter | Gauge | Histogram)
    ]
    assert len(declared) == len(set(declared)) == len(exported_families())
    assert set(declared) == set(exported_families())


def test_samples_follow_the_type() -> None:
    samples = exported_samples()
    assert samples["gateway_requests_total"].type == "counter"
    assert samples["gateway_engine_ready"].type == "gauge"
    histogram = exported_families()["gateway_request_duration_seconds"]
    assert histogram.samples == {
        "gateway_request_duration_seconds_bucket",
        "gateway_request_duration_seconds_sum",
        "gateway_request_duration_seconds_count",
    }
    assert histogram.labels == {"adapter", "endpoint"}
    assert not any(name.endswith("_created") for name in samples)
