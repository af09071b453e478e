"""Every Prometheus metric the gateway exports, declared once.

Label values come only from bounded sets: registered adapters (or ``base``),
registered schema names (or ``none``), the fixed deviation kinds and retry
strategies. Anything else is folded into ``other`` by :class:`LabelGuard`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

OTHER = "other"
BASE = "base"
NO_SCHEMA = "none"

# From a few milliseconds (gateway overhead, cached answers) to minutes (long generations).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0,
)
TOKEN_LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.0,
)
OVERHEAD_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
)
LOAD_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class LabelGuard:
    """Keeps label values inside a registered set; the rest becomes ``other``."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self._allowed = set(allowed)

    def add(self, value: str) -> None:
        self._allowed.add(value)

    def discard(self, value: str) -> None:
        self._allowed.discard(value)

    def __call__(self, value: str | None) -> str:
        return value if value is not None and value in self._allowed else OTHER

    def __contains__(self, value: object) -> bool:
        return value in self._allowed


class GatewayMetrics:
    """The gateway's metrics, registered on one registry per app."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        latency_buckets: Sequence[float] = LATENCY_BUCKETS,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.adapters = LabelGuard([BASE])
        self.schemas = LabelGuard([NO_SCHEMA])
        r = self.registry
        buckets = tuple(latency_buckets)

        self.requests = Counter(
            "gateway_requests", "Requests answered, by adapter, endpoint and HTTP status.",
            ["adapter", "endpoint", "status"], registry=r,
        )
        self.in_flight = Gauge(
            "gateway_in_flight_requests", "Requests being answered now, by adapter.",
            ["adapter"], registry=r, multiprocess_mode="livesum",
        )
        self.request_duration = Histogram(
            "gateway_request_duration_seconds", "End-to-end latency of a request at the gateway.",
            ["adapter", "endpoint"], buckets=buckets, registry=r,
        )
        self.upstream_duration = Histogram(
            "gateway_upstream_duration_seconds", "Time spent waiting on the engine per request.",
            ["adapter", "endpoint"], buckets=buckets, registry=r,
        )
        self.overhead = Histogram(
            "gateway_overhead_seconds", "Gateway's own time per request (total minus engine time).",
            ["endpoint"], buckets=OVERHEAD_BUCKETS, registry=r,
        )
        self.time_to_first_token = Histogram(
            "gateway_time_to_first_token_seconds", "Time from request to first streamed token.",
            ["adapter"], buckets=buckets, registry=r,
        )
        self.inter_token_latency = Histogram(
            "gateway_inter_token_latency_seconds", "Time between streamed chunks.",
            ["adapter"], buckets=TOKEN_LATENCY_BUCKETS, registry=r,
        )
        self.prompt_tokens = Counter(
            "gateway_prompt_tokens", "Prompt tokens sent to the engine, every attempt included.",
            ["adapter"], registry=r,
        )
        self.completion_tokens = Counter(
            "gateway_completion_tokens", "Completion tokens generated, every attempt included.",
            ["adapter"], registry=r,
        )
        self.structured_checks = Counter(
            "gateway_structured_checks",
            "Structured answers checked against their schema (one per attempt).",
            ["adapter", "schema"], registry=r,
        )
        self.structured_deviations = Counter(
            "gateway_structured_deviations",
            "Structured answers that deviated from their schema, by deviation kind.",
            ["adapter", "schema", "kind"], registry=r,
        )
        self.structured_retries = Counter(
            "gateway_structured_retries", "Retries made for structured answers, by strategy.",
            ["adapter", "schema", "strategy"], registry=r,
        )
        self.structured_recoveries = Counter(
            "gateway_structured_recoveries",
            "Requests whose answer deviated at first and was valid after retrying.",
            ["adapter", "schema"], registry=r,
        )
        self.structured_exhausted = Counter(
            "gateway_structured_exhausted",
            "Requests with no valid answer after every allowed attempt.",
            ["adapter", "schema"], registry=r,
        )
        self.structured_budget_denied = Counter(
            "gateway_structured_retry_budget_exhausted",
            "Retries refused because the retry budget was spent.",
            ["adapter", "schema"], registry=r,
        )
        self.adapter_loads = Counter(
            "gateway_adapter_loads", "Adapter load attempts, by result (success or failure).",
            ["adapter", "result"], registry=r,
        )
        self.adapter_load_failures = Counter(
            "gateway_adapter_load_failures", "Adapter loads refused or failed, by reason.",
            ["reason"], registry=r,
        )
        self.adapter_load_duration = Histogram(
            "gateway_adapter_load_duration_seconds", "Time to validate and load an adapter.",
            ["adapter"], buckets=LOAD_BUCKETS, registry=r,
        )
        self.adapters_loaded = Gauge(
            "gateway_adapters_loaded", "Adapters loaded in the engine and ready to serve.",
            registry=r, multiprocess_mode="max",
        )
        self.engine_ready = Gauge(
            "gateway_engine_ready", "1 when the engine answers its health check, else 0.",
            registry=r, multiprocess_mode="max",
        )

    def adapter_label(self, name: str | None) -> str:
        return self.adapters(name)

    def schema_label(self, name: str | None) -> str:
        return NO_SCHEMA if name is None else self.schemas(name)

    def forget_adapter(self, name: str) -> None:
        """Removes every series of an adapter that is no longer served."""
        self.adapters.discard(name)
        for metric in self._labelled():
            labelnames = metric._labelnames
            if "adapter" not in labelnames:
                continue
            index = labelnames.index("adapter")
            for values in list(metric._metrics):
                if values[index] == name:
                    metric.remove(*values)

    def _labelled(self) -> list[Counter | Gauge | Histogram]:
        return [m for m in vars(self).values() if isinstance(m, Counter | Gauge | Histogram)]


def render(metrics: GatewayMetrics) -> bytes:
    """The exposition text; aggregated over worker processes in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(metrics.registry)
