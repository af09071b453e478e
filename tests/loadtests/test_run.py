"""The load-test runner and locustfile, run for a few seconds against the fake engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.run import main

ROOT = Path(__file__).resolve().parents[2]


def _run(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "loadtests.run", "--engine", "fake", "--users", "8",
               "--spawn-rate", "8", "--out", str(out), *extra]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)


def test_a_short_run_passes_its_thresholds_and_writes_every_report(tmp_path: Path) -> None:
    done = _run(tmp_path, "--duration", "5s")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["requests"] > 10 and summary["failures"] == 0 and summary["missed"] == []
    # Every user class took part: structured verdicts, streams, the hot swap.
    assert summary["verdicts"]["valid"] > 0
    assert summary["ttft_p95_ms"] is not None and summary["itl_p50_ms"] is not None
    assert summary["hot_swaps"] >= 1 and summary["hot_swap_failures"] == 0
    assert summary["structured_requests"] >= summary["verdicts"]["valid"]
    assert summary["deviation_rate"] == 0.0
    for name in ("report.html", "locust_stats.csv", "summary.md", "metrics-after.txt"):
        assert (tmp_path / name).stat().st_size > 0
    assert "PASSED" in done.stdout


def test_a_threshold_tightened_past_the_run_fails_it(tmp_path: Path) -> None:
    done = _run(tmp_path, "--duration", "2s", "--max-p95-ms", "0.001")
    assert done.returncode == 1, done.stdout + done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["missed"] and summary["missed"][0].startswith("p95 latency")
    assert "FAILED: p95 latency" in done.stdout


@pytest.mark.parametrize("url", ["http://10.1.2.3:8000", "http://[2001:db8::1]:80"])
def test_load_goes_to_loopback_only(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", url]) == 2
    assert "not on loopback" in capsys.readouterr().err


def test_a_bad_duration_is_a_usage_error(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", "http://127.0.0.1:9", "--duration", "soon", "--out",
                 str(tmp_path)]) == 2
    assert "--duration 'soon'" in capsys.readouterr().err
