"""What the monitoring configuration is checked against: the gateway's exposition and the
shipped rule, scrape and dashboard files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.wiring.metrics import gateway_metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "config" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
RECORDING_RULES = RULES_DIR / "recording.yml"
ALERT_RULES = RULES_DIR / "alerts.yml"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
DASHBOARD = ROOT / "config" / "grafana" / "dashboard.json"
METRICS_DOC = ROOT / "docs" / "metrics.md"

# Series Prometheus itself attaches to every scrape target.
SCRAPE_SERIES = frozenset({"up"})


@dataclass(frozen=True)
class Family:
    """One exported metric: its Prometheus type, sample names and label names."""

    name: str
    type: str
    samples: frozenset[str]
    labels: frozenset[str]

    @property
    def main_name(self) -> str:
        """The name people query and document: counters end in _total, others are bare."""
        return f"{self.name}_total" if self.type == "counter" else self.name


def exported_families() -> dict[str, Family]:
    """Every metric a fresh GatewayMetrics exposes once each has seen one observation."""
    metrics = gateway_metrics(registry=CollectorRegistry(auto_describe=True))
    for metric in vars(metrics).values():
        if isinstance(metric, Counter | Gauge | Histogram):
            _observe_once(metric)
    text = generate_latest(metrics.registry).decode()
    families = {family.name: _family(family) for family in text_string_to_metric_families(text)}
    # The text format shows a counter's or histogram's creation time as a separate gauge
    # family, <name>_created: not something to chart or alert on.
    return {
        name: family for name, family in families.items()
        if not (name.endswith("_created") and name.removesuffix("_created") in families)
    }


def exported_samples() -> dict[str, Family]:
    """Exported sample names (gateway_requests_total, ..._bucket, ...) -> their family."""
    return {sample: family for family in exported_families().values() for sample in family.samples}


def _observe_once(metric: Counter | Gauge | Histogram) -> None:
    labelnames: tuple[str, ...] = tuple(metric._labelnames)
    child = metric.labels(*("x" for _ in labelnames)) if labelnames else metric
    if isinstance(child, Counter):
        child.inc()
    elif isinstance(child, Gauge):
        child.set(1)
    else:
        child.observe(0.1)


def _family(family: Any) -> Family:
    samples = frozenset(s.name for s in family.samples)
    labels = frozenset(label for s in family.samples for label in s.labels if label != "le")
    return Family(family.name, family.type, samples, labels)


def load_yaml(path: Path) -> dict[str, Any]:
    return cast(dict[str, Any], yaml.safe_load(path.read_text()))


def rules(path: Path) -> list[dict[str, Any]]:
    """Every rule of a rule file, groups flattened."""
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]


def recording_rules() -> dict[str, str]:
    """Recording rule name -> expression, from every shipped rule file."""
    found: dict[str, str] = {}
    for path in (RECORDING_RULES, ALERT_RULES):
        found.update({r["record"]: r["expr"] for r in rules(path) if "record" in r})
    return found


def alert_rules() -> dict[str, dict[str, Any]]:
    """Alert name -> rule."""
    return {r["alert"]: r for r in rules(ALERT_RULES) if "alert" in r}


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS_DIR.glob("*.yml"))


def load_dashboard() -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(DASHBOARD.read_text()))


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those nested in collapsed rows included; rows themselves excluded."""
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        found.extend(panel.get("panels", []))
        if panel["type"] != "row":
            found.append(panel)
    return found


def panel_exprs(dashboard: dict[str, Any]) -> dict[str, list[str]]:
    """Panel title -> the PromQL expressions of its targets."""
    return {p["title"]: [t["expr"] for t in p.get("targets", [])] for p in panels(dashboard)}
