"""promtool accepts the shipped configuration and the rule unit tests pass (and can fail)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.monitoring.contract import (
    ALERT_RULES,
    PROMETHEUS_CONFIG,
    PROMETHEUS_DIR,
    RECORDING_RULES,
    alert_rules,
    load_yaml,
    recording_rules,
    rule_test_files,
)

pytestmark = pytest.mark.prometheus


def _promtool(promtool: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def _assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_config(promtool: Path) -> None:
    result = _promtool(promtool, "check", "config", PROMETHEUS_CONFIG)
    _assert_ok(result)
    # check config also checks the rule files it names, so they must resolve.
    assert "SUCCESS: 2 rule files found" in result.stdout + result.stderr


def test_check_rules(promtool: Path) -> None:
    _assert_ok(_promtool(promtool, "check", "rules", RECORDING_RULES, ALERT_RULES))


@pytest.mark.parametrize("test_file", rule_test_files(), ids=lambda p: p.name)
def test_rule_unit_tests_pass(promtool: Path, test_file: Path) -> None:
    _assert_ok(_promtool(promtool, "test", "rules", test_file))


def test_unit_tests_fire_every_alert_and_check_every_recording_rule() -> None:
    fired: set[str] = set()
    checked_exprs: list[str] = []
    for path in rule_test_files():
        for case in load_yaml(path)["tests"]:
            fired |= {t["alertname"] for t in case.get("alert_rule_test", []) if t["exp_alerts"]}
            checked_exprs += [t["expr"] for t in case.get("promql_expr_test", [])]
    assert set(alert_rules()) <= fired
    unchecked = {name for name in recording_rules() if not any(name in e for e in checked_exprs)}
    assert not unchecked


# Each change moves a threshold the alerts document; the unit tests must notice every one.
MUTATIONS = {
    "warning level": ("> 0.01\n", "> 0.03\n"),
    "critical level": ("> 0.15\n", "> 0.25\n"),
    "deviation volume minimum": ("increase1h >= 100", "increase1h >= 50"),
    "error ratio level": ("> 0.05\n", "> 0.07\n"),
    "latency level": ("p95_5m > 30\n", "p95_5m > 40\n"),
    "engine ready for": ("== 0\n        for: 1m", "== 0\n        for: 10m"),
}


@pytest.mark.parametrize("change", sorted(MUTATIONS))
def test_unit_tests_catch_a_changed_threshold(
    promtool: Path, tmp_path: Path, change: str
) -> None:
    old, new = MUTATIONS[change]
    copy = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS_DIR, copy)
    alerts = copy / ALERT_RULES.relative_to(PROMETHEUS_DIR)
    text = alerts.read_text()
    assert old in text, f"mutation {change!r} no longer applies to alerts.yml"
    alerts.write_text(text.replace(old, new))
    _assert_ok(_promtool(promtool, "check", "rules", alerts))
    results = [
        _promtool(promtool, "test", "rules", copy / path.relative_to(PROMETHEUS_DIR))
        for path in rule_test_files()
    ]
    assert any(r.returncode != 0 for r in results), f"no unit test noticed the {change}"
