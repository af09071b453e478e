"""The gateway's metrics, with the domains' fixed label sets handed in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from gateway.adapters.errors import LOAD_FAILURE_REASONS
from gateway.engine.keeper import RESTART_REASONS
from gateway.inference.capture import CAPTURE_ERROR_REASONS
from gateway.metrics import LATENCY_BUCKETS, GatewayMetrics, MetricsSettings
from gateway.structured.deviations import DeviationKind


def gateway_metrics(
    settings: MetricsSettings | None = None, registry: CollectorRegistry | None = None
) -> GatewayMetrics:
    """Metrics for one app (or test): every deviation kind and load-failure reason known."""
    settings = settings or MetricsSettings()
    return GatewayMetrics(
        registry=registry,
        latency_buckets=settings.latency_buckets or LATENCY_BUCKETS,
        enabled=settings.enabled,
        multiprocess_dir=settings.multiprocess_dir,
        deviation_kinds=[kind.value for kind in DeviationKind],
        load_failure_reasons=LOAD_FAILURE_REASONS,
        restart_reasons=RESTART_REASONS,
        capture_error_reasons=CAPTURE_ERROR_REASONS,
    )

