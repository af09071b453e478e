"""The Grafana dashboard queries only series that exist, and shows every gateway metric."""

from __future__ import annotations

import importlib.util
import re
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from tests.monitoring.conftest import skip_or_fail
from tests.monitoring.contract import (
    SCRAPE_SERIES,
    alert_rules,
    exported_families,
    exported_samples,
    load_dashboard,
    panel_exprs,
    panels,
    recording_rules,
)
from tests.monitoring.promql import Selector, metric_names, selectors

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Label -> the dashboard variable that must filter it wherever a series carries it.
FILTERED_LABELS = {"adapter": "$adapter", "schema": "$schema"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def _variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def _all_selectors(dashboard: dict[str, Any]) -> list[tuple[str, Selector]]:
    return [
        (title, selector)
        for title, exprs in panel_exprs(dashboard).items()
        for expr in exprs
        for selector in selectors(expr)
    ]


def _vllm_metric_names() -> set[str]:
    """Names the installed vLLM declares for its Prometheus metrics."""
    spec = importlib.util.find_spec("vllm")
    if spec is None or not spec.submodule_search_locations:
        skip_or_fail("vllm is not installed; install the project with the `cpu` extra")
    assert spec is not None and spec.submodule_search_locations is not None
    source = Path(next(iter(spec.submodule_search_locations))) / "v1" / "metrics" / "loggers.py"
    return set(re.findall(r'name="(vllm:[a-z_]+)"', source.read_text()))


def _series_labels(name: str) -> frozenset[str]:
    """Labels a queried series carries: exported labels, or a recording rule's level."""
    samples = exported_samples()
    if name in samples:
        return samples[name].labels
    if name in recording_rules():
        return frozenset(name.split(":")[0].split("_"))
    return frozenset()


def test_datasource_is_a_variable(dashboard: dict[str, Any]) -> None:
    variable = _variables(dashboard)["datasource"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    for panel in panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
    for name in ("adapter", "schema"):
        assert _variables(dashboard)[name]["datasource"] == DATASOURCE


def test_adapter_and_schema_variables_list_label_values(dashboard: dict[str, Any]) -> None:
    variables = _variables(dashboard)
    for name in ("adapter", "schema"):
        variable = variables[name]
        assert variable["type"] == "query"
        found = re.fullmatch(rf"label_values\((.+), {name}\)", variable["query"]["query"])
        assert found, variable["query"]
        assert metric_names(found.group(1)) <= set(exported_samples()), found.group(1)
        assert variable["multi"] and variable["includeAll"] and variable["allValue"] == ".*"


def test_every_queried_series_exists(dashboard: dict[str, Any]) -> None:
    known = set(exported_samples()) | set(recording_rules()) | SCRAPE_SERIES
    engine = {name for _, s in _all_selectors(dashboard) if (name := s.name).startswith("vllm:")}
    unknown = {
        (title, selector.name) for title, selector in _all_selectors(dashboard)
        if selector.name not in known and selector.name not in engine
    }
    assert not unknown, "panels query series nobody exports or records"
    missing_in_vllm = engine - _vllm_metric_names()
    assert not missing_in_vllm, "the installed vLLM declares no such metric"


def test_every_gateway_metric_is_on_a_panel(dashboard: dict[str, Any]) -> None:
    """Directly, or through a recording rule the dashboard shows."""
    records = recording_rules()
    shown: set[str] = set()
    for _, selector in _all_selectors(dashboard):
        shown.add(selector.name)
        shown |= metric_names(records.get(selector.name, ""))
    missing = {
        family.name for family in exported_families().values() if not family.samples & shown
    }
    assert not missing, "metrics of GatewayMetrics that no panel shows"


def test_series_with_adapter_or_schema_follow_the_variables(dashboard: dict[str, Any]) -> None:
    unfiltered = [
        (title, selector.name, label)
        for title, selector in _all_selectors(dashboard)
        for label, variable in FILTERED_LABELS.items()
        if label in _series_labels(selector.name)
        and selector.matchers.get(label) != ("=~", variable)
    ]
    assert not unfiltered


def test_panels_named_in_alert_descriptions_exist(dashboard: dict[str, Any]) -> None:
    titles = {panel["title"] for panel in panels(dashboard)}
    named = {
        title
        for rule in alert_rules().values()
        for title in re.findall(r'"([^"]+)" panel', rule["annotations"]["description"])
    }
    assert named, "the alert descriptions point operators at dashboard panels"
    assert named <= titles


def test_panels_have_unique_ids_titles_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    every = dashboard["panels"]
    assert len({p["id"] for p in every}) == len(every)
    assert len({p["title"] for p in every}) == len(every)
    for a, b in combinations(every, 2):
        assert not _overlap(a["gridPos"], b["gridPos"]), (a["title"], b["title"])
    for panel in every:
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]


def _overlap(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]
    )
