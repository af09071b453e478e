"""The recording and alert rules read real gateway series and point operators at real docs."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.monitoring.contract import (
    METRICS_DOC,
    PROMETHEUS_CONFIG,
    PROMETHEUS_DIR,
    SCRAPE_SERIES,
    alert_rules,
    exported_samples,
    load_yaml,
    recording_rules,
)
from tests.monitoring.promql import metric_names, selectors

SEVERITIES = {"warning", "critical"}


def _all_rule_exprs() -> dict[str, str]:
    exprs = dict(recording_rules())
    exprs.update({name: rule["expr"] for name, rule in alert_rules().items()})
    return exprs


def _scrape_jobs() -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]}


def _doc_anchors() -> set[str]:
    """GitHub-style anchors of the headings in docs/metrics.md."""
    headings = re.findall(r"^#+\s+(.+)$", METRICS_DOC.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


@pytest.mark.parametrize("name", sorted(_all_rule_exprs()))
def test_rule_reads_only_exported_or_recorded_series(name: str) -> None:
    known = set(exported_samples()) | set(recording_rules()) | SCRAPE_SERIES
    unknown = metric_names(_all_rule_exprs()[name]) - known
    assert not unknown, f"{name} reads series the gateway does not export"


@pytest.mark.parametrize("name", sorted(recording_rules()))
def test_recording_rule_name_states_its_labels(name: str) -> None:
    """level:metric:operations, where the level lists the labels the rule keeps."""
    level, metric, operations = name.split(":")
    assert metric.startswith("gateway_") and operations
    grouping = [
        {label.strip() for label in labels.split(",")} - {"le"}
        for labels in re.findall(r"\bby \(([^)]*)\)", recording_rules()[name])
    ]
    assert grouping, f"{name} aggregates nothing"
    # The first aggregation sets the result's labels; a denominator may group more coarsely.
    assert grouping[0] == set(level.split("_")), name
    assert all(labels <= grouping[0] for labels in grouping), name


@pytest.mark.parametrize("name", sorted(alert_rules()))
def test_alert_tells_the_operator_what_to_do(name: str) -> None:
    rule = alert_rules()[name]
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"] and len(annotations["description"]) > 80
    page, _, anchor = annotations["runbook"].partition("#")
    assert (PROMETHEUS_DIR.parents[1] / page) == METRICS_DOC
    assert anchor == name.lower() and anchor in _doc_anchors()


def test_alerts_name_only_jobs_the_config_scrapes() -> None:
    jobs = {
        selector.matchers["job"][1]
        for rule in alert_rules().values()
        for selector in selectors(rule["expr"])
        if "job" in selector.matchers
    }
    assert jobs and jobs <= set(_scrape_jobs())


def test_config_loads_the_shipped_rule_files() -> None:
    rule_files = load_yaml(PROMETHEUS_CONFIG)["rule_files"]
    assert sorted(PROMETHEUS_DIR / f for f in rule_files) == sorted(
        (PROMETHEUS_DIR / "rules").glob("*.yml")
    )


def test_config_scrapes_the_gateway_and_the_engine_through_it() -> None:
    jobs = _scrape_jobs()
    scraped = {
        name: (job["metrics_path"], job["static_configs"][0]["targets"])
        for name, job in jobs.items()
    }
    assert scraped == {
        "gateway": ("/metrics", ["localhost:8000"]),
        "gateway-engine": ("/metrics/engine", ["localhost:8000"]),
    }
