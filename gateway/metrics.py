"""Every Prometheus metric the gateway exports, declared once.

Label values come only from bounded sets: registered adapters (or ``base``),
registered schema names (or ``none``), the fixed deviation kinds, retry
strategies and load-failure reasons. Anything else is folded into ``other`` by
:class:`LabelGuard`. This module knows no domain: the fixed sets (deviation kinds,
load-failure reasons) are handed in when the app is assembled.

Callers record intents (``recorder.request_finished(...)``, ``recorder.deviation(...)``),
never raw labelled children; with ``metrics.enabled: false`` the recorder of the
request path is a no-op.

With several worker processes every worker writes its values to files in one
directory (prometheus_client's multiprocess mode, switched on by
``PROMETHEUS_MULTIPROC_DIR`` before prometheus_client is imported) and
:func:`render` aggregates them, so any worker answers for the whole gateway.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from gateway._exposition import write_text
from gateway._sections import Section

MetricT = TypeVar("MetricT", Counter, Gauge, Histogram)

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


class MetricsSettings(Section):
    """The ``metrics`` section."""

    enabled: bool = True
    latency_buckets: list[float] | None = None
    multiprocess_dir: Path | None = None
    engine_metrics_path: str = "/metrics/engine"


class MetricsMisconfigured(ValueError):
    """The multiprocess settings and prometheus_client's own mode disagree."""


class GatewayMetrics:
    """The gateway's metrics, registered on one registry per app.

    ``enabled=False`` leaves the metrics declared (``/metrics`` still answers, with the
    engine's readiness) but the request path records nothing: ``record`` is then a
    :class:`NullRecorder`. ``multiprocess_dir`` is the directory
    the worker processes share (``metrics.multiprocess_dir``); ``None`` for one process.
    ``deviation_kinds`` and ``load_failure_reasons`` are the fixed label sets of the
    domains, handed in by the assembly code (see ``gateway.wiring.metrics``).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        latency_buckets: Sequence[float] = LATENCY_BUCKETS,
        enabled: bool = True,
        multiprocess_dir: Path | None = None,
        *,
        deviation_kinds: Sequence[str] = (),
        load_failure_reasons: Sequence[str] = (),
        restart_reasons: Sequence[str] = (),
        capture_error_reasons: Sequence[str] = (),
    ) -> None:
        _check_multiprocess_mode(multiprocess_dir)
        self.enabled = enabled
        self.multiprocess_dir = multiprocess_dir
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.adapters = LabelGuard([BASE])
        self.schemas = LabelGuard([NO_SCHEMA])
        self.deviation_kinds = tuple(deviation_kinds)
        self.load_failure_reasons = LabelGuard(load_failure_reasons)
        self.restart_reasons = LabelGuard(restart_reasons)
        self.capture_error_reasons = LabelGuard(capture_error_reasons)
        # Adapters forgotten in multiprocess mode: their values stay in the shared files.
        self._forgotten: set[str] = set()
        # Labelled children by metric and label values: labels() costs about a microsecond
        # a call, a dict lookup a tenth of that. Bounded, as the label values are.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._declare(tuple(latency_buckets))
        self._exposition = self._exposition_registry()
        for reason in load_failure_reasons:
            self.adapter_load_failures.labels(reason)
        for reason in restart_reasons:
            self.engine_restarts.labels(reason)
        for reason in capture_error_reasons:
            self.capture_errors.labels(reason)
        self.record: Recorder = Recorder(self) if enabled else NullRecorder(self)

    def _declare(self, buckets: tuple[float, ...]) -> None:
        r = self.registry
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
        self.structured_requests = Counter(
            "gateway_structured_requests",
            "Requests whose answer is validated against a schema (whatever their attempts).",
            ["adapter", "schema"], registry=r,
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
        self.structured_stopped_early = Counter(
            "gateway_structured_stopped_early",
            "First attempts stopped as soon as they could no longer be valid (fail fast).",
            ["adapter", "schema"], registry=r,
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
        self.rollout_answers = Counter(
            "gateway_rollout_answers",
            "Answers of adapter versions in a rollout, by role (stable, candidate) and outcome "
            "(ok, error); shadow answers included.",
            ["adapter", "role", "outcome"], registry=r,
        )
        self.rollout_checks = Counter(
            "gateway_rollout_checks",
            "First attempts checked against their schema in a rollout, by role.",
            ["adapter", "role"], registry=r,
        )
        self.rollout_deviations = Counter(
            "gateway_rollout_deviations",
            "First attempts that deviated from their schema in a rollout, by role.",
            ["adapter", "role"], registry=r,
        )
        self.rollout_decisions = Counter(
            "gateway_rollout_decisions",
            "Rollout decisions: start, advance, promote, rollback, abort.",
            ["adapter", "action"], registry=r,
        )
        self.rollout_stage = Gauge(
            "gateway_rollout_stage",
            "The running rollout's stage (1, 2, ...; 0: none) and the candidate's share of "
            "requests in it, by mode (shadow, canary).",
            ["adapter", "mode"], registry=r, multiprocess_mode="livemax",
        )
        self.rollout_share = Gauge(
            "gateway_rollout_candidate_share",
            "The candidate's share of the adapter's requests in the running stage.",
            ["adapter", "mode"], registry=r, multiprocess_mode="livemax",
        )
        self.rollout_shadow_skipped = Counter(
            "gateway_rollout_shadow_skipped",
            "Shadow copies skipped because the adapter's shadow budget was in use.",
            ["adapter"], registry=r,
        )
        self.adapter_loads = Counter(
            "gateway_adapter_loads", "Adapter load attempts, by result (success or failure).",
            ["adapter", "result"], registry=r,
        )
        self.adapter_requests_cut = Counter(
            "gateway_adapter_requests_cut",
            "Requests ended with an error because the version they ran on passed its drain "
            "deadline (adapters.drain_timeout_s) after a swap, a rollback or a removal.",
            ["adapter"], registry=r,
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
            registry=r, multiprocess_mode="livemax",
        )
        self.engine_restarts = Counter(
            "gateway_engine_restarts", "Restarts of the embedded engine, by reason.",
            ["reason"], registry=r,
        )
        self.capture_errors = Counter(
            "gateway_capture_errors",
            "Examples the capture could not write (the answer still went out), by reason.",
            ["reason"], registry=r,
        )
        # One count per grammar the compile check judged (cached: a grammar counts once per
        # process while its verdict is kept), by kind and whether it is constrainable.
        self.grammar_verdicts = Counter(
            "gateway_grammar_verdicts",
            "Grammars the compile check judged, by kind and whether the engine's compiler "
            "takes them within the limits (constrainable).",
            ["kind", "constrainable"], registry=r,
        )
        self.grammar_compile_duration = Histogram(
            "gateway_grammar_compile_duration_seconds",
            "Time the compile check took per grammar (a breach of the limit counts the limit).",
            ["kind"], buckets=LOAD_BUCKETS, registry=r,
        )
        self.engine_ready = Gauge(
            "gateway_engine_ready", "1 when the engine answers its health check, else 0.",
            registry=r, multiprocess_mode="livemax",
        )
        self.engine_failed = Gauge(
            "gateway_engine_failed",
            "1 once the gateway gave up restarting its embedded engine, else 0.",
            registry=r, multiprocess_mode="livemax",
        )
        # Per engine server in engine.urls (a bounded, configured list).
        self.engine_server_admitted = Gauge(
            "gateway_engine_server_admitted",
            "1 while an engine server gets traffic, 0 while it is ejected.",
            ["server"], registry=r, multiprocess_mode="livemin",
        )
        self.engine_server_ejections = Counter(
            "gateway_engine_server_ejections",
            "Engine servers taken out of traffic (failed health checks, refused connections, "
            "errors in a row).", ["server"], registry=r,
        )

    def adapter_label(self, name: str | None) -> str:
        return self.adapters(name)

    def schema_label(self, name: str | None) -> str:
        return NO_SCHEMA if name is None else self.schemas(name)

    def load_failure_label(self, reason: str) -> str:
        return self.load_failure_reasons(reason)

    def ensure_structured_series(self, adapter_label: str, schema_label: str) -> None:
        """Creates the zero-valued structured series of an adapter and schema.

        A counter appears only once incremented, and ``rate()`` cannot see its first step;
        called on the first check of a pair, it makes the first deviation of each kind count.
        """
        pair = (adapter_label, schema_label)
        if not self.enabled or (id(self.structured_checks), pair) in self._children:
            return  # the checks child is cached below: the pair's series exist already
        for counter in (self.structured_recoveries, self.structured_exhausted,
                        self.structured_budget_denied, self.structured_stopped_early,
                        self.structured_requests):
            self.child(counter, *pair)
        for kind in self.deviation_kinds:
            self.child(self.structured_deviations, *pair, kind)
        self.child(self.structured_checks, *pair)

    def child(self, metric: MetricT, *labels: str) -> MetricT:
        """``metric.labels(*labels)``, cached (on the request path)."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return cast(MetricT, found)

    def forget_adapter(self, name: str) -> None:
        """Removes every series of an adapter that is no longer served."""
        self.adapters.discard(name)
        self._children.clear()
        if self.multiprocess_dir is not None:
            # The values live in files shared with the other workers; render() hides them.
            self._forgotten.add(name)
            return
        for metric in self._labelled():
            labelnames = metric._labelnames
            if "adapter" not in labelnames:
                continue
            index = labelnames.index("adapter")
            for labelvalues in list(metric._metrics):
                if labelvalues[index] == name:
                    metric.remove(*labelvalues)

    def hidden_adapters(self) -> set[str]:
        """Adapters forgotten in multiprocess mode and not registered again since."""
        return {name for name in self._forgotten if name not in self.adapters}

    def _labelled(self) -> list[Counter | Gauge | Histogram]:
        return [m for m in vars(self).values() if isinstance(m, Counter | Gauge | Histogram)]

    def _exposition_registry(self) -> CollectorRegistry | None:
        if self.multiprocess_dir is None:
            return None
        registry = CollectorRegistry()
        registry.register(_Aggregated(self.multiprocess_dir, self))
        return registry


class InFlight(Protocol):
    def inc(self) -> None: ...

    def dec(self) -> None: ...


class _NoInFlight:
    def inc(self) -> None:
        pass

    def dec(self) -> None:
        pass


class Recorder:
    """What the services and the middleware record, said by intent.

    Label values are folded into their bounded sets here, so callers pass names as they
    know them (an adapter, a schema) and never build labelled children themselves.
    """

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._m = metrics

    @property
    def metrics(self) -> GatewayMetrics:
        """The metrics recorded to (their registry, for reading values back)."""
        return self._m

    # Labels

    def adapter_label(self, name: str | None) -> str:
        return self._m.adapter_label(name)

    def schema_label(self, name: str | None) -> str:
        return self._m.schema_label(name)

    def knows_adapter(self, label: str) -> bool:
        return label in self._m.adapters

    def register_schemas(self, names: Iterable[str]) -> None:
        for name in names:
            self._m.schemas.add(name)

    # The request path

    def request_finished(
        self, endpoint: str, adapter: str, status: int, total: float, upstream: float
    ) -> None:
        m = self._m
        # Folded again: the adapter may have been removed while the request ran.
        adapter = m.adapter_label(adapter)
        m.child(m.requests, adapter, endpoint, str(status)).inc()
        m.child(m.request_duration, adapter, endpoint).observe(total)
        m.child(m.overhead, endpoint).observe(max(0.0, total - upstream))

    def in_flight(self, adapter: str) -> InFlight:
        """The in-flight gauge of one adapter label (the target lease holds it)."""
        return self._m.child(self._m.in_flight, adapter)

    def upstream(self, adapter: str, endpoint: str, seconds: float) -> None:
        self._m.child(self._m.upstream_duration, adapter, endpoint).observe(seconds)

    def tokens(self, adapter: str, prompt: int, completion: int) -> None:
        m = self._m
        m.child(m.prompt_tokens, adapter).inc(prompt)
        m.child(m.completion_tokens, adapter).inc(completion)

    def stream_timing(
        self, adapter: str, time_to_first_token: float | None, gaps: Iterable[float]
    ) -> None:
        m = self._m
        if time_to_first_token is not None:
            m.child(m.time_to_first_token, adapter).observe(time_to_first_token)
        histogram = m.child(m.inter_token_latency, adapter)
        for gap in gaps:
            histogram.observe(gap)

    def structured_started(self, adapter: str, schema: str) -> None:
        """A structured request of this pair: its zero series exist from now on."""
        self._m.ensure_structured_series(adapter, schema)
        self._m.child(self._m.structured_requests, adapter, schema).inc()

    def structured_check(self, adapter: str, schema: str, deviation: str | None) -> None:
        """One answer checked; ``deviation`` is its kind, None when valid."""
        m = self._m
        m.child(m.structured_checks, adapter, schema).inc()
        if deviation is not None:
            m.child(m.structured_deviations, adapter, schema, deviation).inc()

    def structured_retry(self, adapter: str, schema: str, strategy: str) -> None:
        self._m.child(self._m.structured_retries, adapter, schema, strategy).inc()

    def structured_budget_denied(self, adapter: str, schema: str) -> None:
        self._m.child(self._m.structured_budget_denied, adapter, schema).inc()

    def structured_stopped_early(self, adapter: str, schema: str) -> None:
        self._m.child(self._m.structured_stopped_early, adapter, schema).inc()

    def structured_recovered(self, adapter: str, schema: str) -> None:
        self._m.child(self._m.structured_recoveries, adapter, schema).inc()

    def structured_exhausted(self, adapter: str, schema: str) -> None:
        self._m.child(self._m.structured_exhausted, adapter, schema).inc()

    def rollout_answer(self, adapter: str, role: str, error: bool, deviated: bool | None
                       ) -> None:
        m = self._m
        label = m.adapter_label(adapter)
        m.child(m.rollout_answers, label, role, "error" if error else "ok").inc()
        if deviated is not None:
            m.child(m.rollout_checks, label, role).inc()
            if deviated:
                m.child(m.rollout_deviations, label, role).inc()

    def rollout_decision(self, adapter: str, action: str) -> None:
        m = self._m
        m.child(m.rollout_decisions, m.adapter_label(adapter), action).inc()

    def rollout_stage(self, adapter: str, stage: int, mode: str | None, share: float) -> None:
        m = self._m
        label = m.adapter_label(adapter)
        for known in ("shadow", "canary"):
            m.child(m.rollout_stage, label, known).set(stage if known == mode else 0)
            m.child(m.rollout_share, label, known).set(share if known == mode else 0.0)

    def rollout_shadow_skipped(self, adapter: str) -> None:
        m = self._m
        m.child(m.rollout_shadow_skipped, m.adapter_label(adapter)).inc()

    # Adapters and the engine: recorded even with metrics.enabled false (rare, cheap)

    def adapter_loaded(self, name: str, seconds: float) -> None:
        m = self._m
        m.adapters.add(name)
        m.adapter_loads.labels(name, "success").inc()
        m.adapter_load_duration.labels(name).observe(seconds)

    def adapter_load_failed(self, name: str, reason: str) -> None:
        m = self._m
        m.adapter_load_failures.labels(m.load_failure_label(reason)).inc()
        m.adapter_loads.labels(m.adapter_label(name), "failure").inc()

    def adapter_requests_cut(self, name: str, count: int) -> None:
        m = self._m
        m.adapter_requests_cut.labels(m.adapter_label(name)).inc(count)

    def adapter_removed(self, name: str) -> None:
        self._m.forget_adapter(name)

    def adapters_served(self, count: int) -> None:
        self._m.adapters_loaded.set(count)

    def engine_ready(self, ready: bool) -> None:
        self._m.engine_ready.set(1 if ready else 0)

    def engine_restarted(self, reason: str) -> None:
        self._m.engine_restarts.labels(self._m.restart_reasons(reason)).inc()

    def engine_failed(self) -> None:
        self._m.engine_failed.set(1)

    def capture_failed(self, reason: str) -> None:
        self._m.capture_errors.labels(self._m.capture_error_reasons(reason)).inc()

    def grammar_verdict(self, kind: str, constrainable: bool, seconds: float) -> None:
        """A new verdict of the compile check (``kind``: one of structured.grammars.KINDS)."""
        self._m.grammar_verdicts.labels(kind, "true" if constrainable else "false").inc()
        self._m.grammar_compile_duration.labels(kind).observe(seconds)

    def engine_server(self, server: str, admitted: bool, ejections: int) -> None:
        """One server's standing after a health round; ``ejections``: new ones since the last."""
        self._m.engine_server_admitted.labels(server).set(1 if admitted else 0)
        if ejections:
            self._m.engine_server_ejections.labels(server).inc(ejections)


class NullRecorder(Recorder):
    """``metrics.enabled: false``: the request path records nothing."""

    def request_finished(
        self, endpoint: str, adapter: str, status: int, total: float, upstream: float
    ) -> None:
        pass

    def in_flight(self, adapter: str) -> InFlight:
        return _NoInFlight()

    def upstream(self, adapter: str, endpoint: str, seconds: float) -> None:
        pass

    def tokens(self, adapter: str, prompt: int, completion: int) -> None:
        pass

    def stream_timing(
        self, adapter: str, time_to_first_token: float | None, gaps: Iterable[float]
    ) -> None:
        pass

    def structured_started(self, adapter: str, schema: str) -> None:
        pass

    def structured_check(self, adapter: str, schema: str, deviation: str | None) -> None:
        pass

    def structured_retry(self, adapter: str, schema: str, strategy: str) -> None:
        pass

    def structured_budget_denied(self, adapter: str, schema: str) -> None:
        pass

    def structured_stopped_early(self, adapter: str, schema: str) -> None:
        pass

    def structured_recovered(self, adapter: str, schema: str) -> None:
        pass

    def structured_exhausted(self, adapter: str, schema: str) -> None:
        pass

    def rollout_answer(self, adapter: str, role: str, error: bool, deviated: bool | None
                       ) -> None:
        pass

    def rollout_shadow_skipped(self, adapter: str) -> None:
        pass


def render(metrics: GatewayMetrics) -> bytes:
    """The exposition text; aggregated over worker processes in multiprocess mode."""
    if metrics._exposition is None:
        return write_text(metrics._labelled())
    return generate_latest(metrics._exposition)


class _Aggregated(Collector):
    """Every worker's values from the shared directory, less dead workers' live gauges."""

    def __init__(self, path: Path, metrics: GatewayMetrics) -> None:
        self._path = path
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        _sweep_dead_workers(self._path)
        hidden = self._metrics.hidden_adapters()
        files = [str(f) for f in self._path.glob("*.db")]
        merge = multiprocess.MultiProcessCollector.merge
        for family in merge(files, accumulate=True):  # type: ignore[no-untyped-call]
            if hidden:
                family.samples = [s for s in family.samples
                                  if s.labels.get("adapter") not in hidden]
            yield family


def _sweep_dead_workers(path: Path) -> None:
    """Drops the live-gauge files of workers that exited (the "live*" modes read the rest)."""
    for file in path.glob("gauge_live*_*.db"):
        pid = file.stem.rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):  # another worker swept it first
                file.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _check_multiprocess_mode(directory: Path | None) -> None:
    # prometheus_client picks its value store once, when it is imported.
    writes_files = bool(getattr(values.ValueClass, "_multiprocess", False))
    if directory is not None and not writes_files:
        raise MetricsMisconfigured(
            f"metrics.multiprocess_dir is {directory}, but PROMETHEUS_MULTIPROC_DIR was not "
            "set when prometheus_client was imported, so this process keeps its metrics to "
            "itself; start the workers through `adapter-gateway serve`, which sets both"
        )
    if directory is None and writes_files:
        raise MetricsMisconfigured(
            "PROMETHEUS_MULTIPROC_DIR is set but metrics.multiprocess_dir is not, so /metrics "
            "would show one worker's share only; set both to the same directory, or neither"
        )
    if directory is not None and not directory.is_dir():
        raise MetricsMisconfigured(
            f"metrics.multiprocess_dir {directory} is not a directory; create it or unset it"
        )
