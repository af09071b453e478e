"""GatewayMetrics itself: pre-created series, forgetting adapters, multiprocess aggregation."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.parser import text_string_to_metric_families

from gateway.adapters.errors import ENGINE_LOAD_FAILURE_REASONS, RejectReason
from gateway.metrics import (
    OTHER,
    GatewayMetrics,
    MetricsMisconfigured,
    MetricsSettings,
    render,
)
from gateway.structured.deviations import DeviationKind
from gateway.wiring.metrics import gateway_metrics
from tests.metrics_reader import Samples, parse, value

Worker = Callable[[int], GatewayMetrics]


def _samples(metrics: GatewayMetrics) -> Samples:
    return parse(render(metrics).decode())


def _with_adapter(samples: Samples, adapter: str) -> set[str]:
    return {name for name, labels in samples if ("adapter", adapter) in labels}


def _record_everything(metrics: GatewayMetrics, adapter: str) -> None:
    """One observation on every metric that has an adapter label."""
    for metric in vars(metrics).values():
        if not isinstance(metric, Counter | Gauge | Histogram):
            continue
        names = list(metric._labelnames)
        if "adapter" not in names:
            continue
        child = metric.labels(*(adapter if n == "adapter" else "x" for n in names))
        if isinstance(child, Histogram):
            child.observe(0.1)
        else:
            child.inc()


def _families(text: str) -> list[tuple[str, str, str]]:
    return [(f.name, f.type, f.documentation) for f in text_string_to_metric_families(text)]


def test_render_writes_what_prometheus_client_writes_less_created_series() -> None:
    metrics = gateway_metrics()
    for adapter in ("support", 'we"ird\\na\nme'):
        metrics.adapters.add(adapter)
        metrics.ensure_structured_series(adapter, "none")
        _record_everything(metrics, adapter)
    metrics.prompt_tokens.labels("support").inc(12_345_678)  # written with an exponent
    metrics.request_duration.labels("support", "chat").observe(1000.0)  # above every bucket
    metrics.engine_ready.set(1)
    text = render(metrics).decode()
    reference = generate_latest(metrics.registry).decode()

    assert parse(text) == {k: v for k, v in parse(reference).items()
                           if not k[0].endswith("_created")}
    assert _families(text) == [f for f in _families(reference) if not f[0].endswith("_created")]
    assert "_created" not in text


def test_every_load_failure_reason_is_exported_at_zero() -> None:
    samples = _samples(gateway_metrics())
    reasons = [*(r.value for r in RejectReason), *ENGINE_LOAD_FAILURE_REASONS]
    for reason in reasons:
        assert samples[("gateway_adapter_load_failures_total",
                        frozenset({("reason", reason)}))] == 0, reason
    assert value(samples, "gateway_adapter_load_failures_total") == 0


def test_an_unknown_load_failure_reason_folds_into_other() -> None:
    metrics = gateway_metrics()
    assert metrics.load_failure_label("digest_mismatch") == "digest_mismatch"
    assert metrics.load_failure_label("engine_error") == "engine_error"
    assert metrics.load_failure_label("The lora adapter 'x' was not found") == OTHER


def test_ensure_structured_series_creates_every_kind_at_zero() -> None:
    metrics = gateway_metrics()
    metrics.ensure_structured_series("support", "ticket")
    samples = _samples(metrics)
    pair = {"adapter": "support", "schema": "ticket"}
    for kind in DeviationKind:
        key = ("gateway_structured_deviations_total",
               frozenset({**pair, "kind": kind.value}.items()))
        assert samples[key] == 0, kind
    for name in ("checks", "recoveries", "exhausted", "retry_budget_exhausted"):
        assert samples[(f"gateway_structured_{name}_total", frozenset(pair.items()))] == 0


def test_ensure_structured_series_keeps_counts() -> None:
    metrics = gateway_metrics()
    metrics.ensure_structured_series("support", "ticket")
    metrics.structured_deviations.labels("support", "ticket", "not_json").inc(3)
    metrics.ensure_structured_series("support", "ticket")
    samples = _samples(metrics)
    assert value(samples, "gateway_structured_deviations_total", kind="not_json") == 3
    assert sum(1 for name, _ in samples if name == "gateway_structured_deviations_total") == len(
        DeviationKind)


def test_disabled_metrics_create_no_structured_series() -> None:
    metrics = gateway_metrics(MetricsSettings(enabled=False))
    metrics.ensure_structured_series("support", "ticket")
    assert not any(name.startswith("gateway_structured") for name, _ in _samples(metrics))


def test_forget_adapter_removes_every_series_of_that_adapter() -> None:
    metrics = gateway_metrics()
    for adapter in ("support", "billing"):
        metrics.adapters.add(adapter)
        metrics.ensure_structured_series(adapter, "ticket")
        _record_everything(metrics, adapter)
    before = _samples(metrics)
    assert _with_adapter(before, "support") == _with_adapter(before, "billing")
    assert len(_with_adapter(before, "support")) > 20

    metrics.forget_adapter("support")

    after = _samples(metrics)
    assert _with_adapter(after, "support") == set()
    assert {k: v for k, v in after.items() if ("adapter", "billing") in k[1]} == {
        k: v for k, v in before.items() if ("adapter", "billing") in k[1]}
    assert metrics.adapter_label("support") == OTHER


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Worker:
    """GatewayMetrics as a worker process with the given pid would build it."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    def build(pid: int) -> GatewayMetrics:
        value_class = values.MultiProcessValue(lambda: pid)  # type: ignore[no-untyped-call]
        monkeypatch.setattr(values, "ValueClass", value_class)
        return gateway_metrics(MetricsSettings(multiprocess_dir=tmp_path))

    return build


def _exited_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_render_adds_up_workers_and_ignores_dead_workers_gauges(
    worker: Worker, tmp_path: Path
) -> None:
    dead = worker(_exited_pid())
    dead.requests.labels("base", "chat", "200").inc(5)
    dead.in_flight.labels("base").inc(3)
    dead.engine_ready.set(1)
    live = worker(os.getpid())
    live.requests.labels("base", "chat", "200").inc(2)
    live.in_flight.labels("base").inc(1)
    live.engine_ready.set(0)

    samples = _samples(live)

    assert value(samples, "gateway_requests_total") == 7
    assert value(samples, "gateway_in_flight_requests") == 1
    assert value(samples, "gateway_engine_ready") == 0
    assert len(list(tmp_path.glob("counter_*.db"))) == 2
    # The dead worker's live gauges are gone; its counters stay, they still count.
    assert {f.name for f in tmp_path.glob("gauge_live*.db")} == {
        f"gauge_livesum_{os.getpid()}.db", f"gauge_livemax_{os.getpid()}.db"}


def test_live_gauges_of_running_workers_are_combined(worker: Worker) -> None:
    first = worker(os.getpid())
    first.in_flight.labels("base").inc(2)
    second = worker(os.getppid())
    second.in_flight.labels("base").inc(3)
    second.engine_ready.set(1)
    samples = _samples(first)
    assert value(samples, "gateway_in_flight_requests") == 5
    assert value(samples, "gateway_engine_ready") == 1


def test_a_forgotten_adapter_is_hidden_in_multiprocess_mode(worker: Worker) -> None:
    metrics = worker(os.getpid())
    metrics.adapters.add("support")
    _record_everything(metrics, "support")
    assert _with_adapter(_samples(metrics), "support")

    metrics.forget_adapter("support")  # no UserWarning: values in shared files are not removed
    assert _with_adapter(_samples(metrics), "support") == set()

    metrics.adapters.add("support")
    assert _with_adapter(_samples(metrics), "support")


def test_a_multiprocess_directory_needs_prometheus_client_in_multiprocess_mode(
    tmp_path: Path,
) -> None:
    with pytest.raises(MetricsMisconfigured, match="PROMETHEUS_MULTIPROC_DIR was not set"):
        gateway_metrics(MetricsSettings(multiprocess_dir=tmp_path))


def test_multiprocess_mode_needs_the_directory(worker: Worker, tmp_path: Path) -> None:
    worker(os.getpid())  # switches prometheus_client to multiprocess values
    with pytest.raises(MetricsMisconfigured, match="metrics.multiprocess_dir is not"):
        gateway_metrics()
    with pytest.raises(MetricsMisconfigured, match="not a directory"):
        gateway_metrics(MetricsSettings(multiprocess_dir=tmp_path / "missing"))
