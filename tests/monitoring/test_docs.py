"""docs/metrics.md describes exactly the metrics, rules and alerts that ship."""

from __future__ import annotations

import re

import pytest

from tests.monitoring.contract import METRICS_DOC, alert_rules, exported_families, recording_rules

_CODE = re.compile(r"`([^`]+)`")


def _table_rows() -> dict[str, list[str]]:
    """First cell's code name -> the row's cells, over every table of the doc."""
    rows: dict[str, list[str]] = {}
    for line in METRICS_DOC.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows[_CODE.findall(cells[0])[0]] = cells
    return rows


@pytest.mark.parametrize("name", sorted(exported_families()))
def test_every_metric_has_a_row_with_its_type_and_labels(name: str) -> None:
    family = exported_families()[name]
    row = _table_rows().get(family.main_name)
    assert row is not None, f"docs/metrics.md has no row for {family.main_name}"
    assert row[1] == family.type
    assert set(_CODE.findall(row[2])) == family.labels


def test_every_recording_rule_is_documented() -> None:
    assert set(recording_rules()) <= set(_table_rows())


@pytest.mark.parametrize("name", sorted(alert_rules()))
def test_every_alert_row_states_its_severity_threshold_and_duration(name: str) -> None:
    rule = alert_rules()[name]
    row = _table_rows()[name]
    assert row[1] == rule["labels"]["severity"]
    assert row[3] == rule.get("for", "0m")
    thresholds = re.findall(r"(?:>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+)?)", rule["expr"])
    assert thresholds
    for value in thresholds:
        assert re.search(rf"(?<![\d.]){re.escape(value)}(?![\d.])", row[2]), (value, row[2])


def test_no_row_for_something_that_does_not_ship() -> None:
    shipped = (
        {family.main_name for family in exported_families().values()}
        | set(recording_rules()) | set(alert_rules())
    )
    looks_shipped = re.compile(r"gateway_\w+|adapter\w*:\w+:\w+|Gateway\w+")
    documented = {name for name in _table_rows() if looks_shipped.fullmatch(name)}
    assert len(documented) > len(recording_rules())
    assert documented <= shipped
