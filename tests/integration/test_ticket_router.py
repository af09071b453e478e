"""The shipped ticket-router, trained by `make ticket-router`, on the held-out test split."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from gateway.cli import main as cli
from tests.integration.conftest import ROOT, USER_KEY, RealGateway

pytestmark = pytest.mark.integration

ITEMS = 20  # of the 100 in data/tickets/test.jsonl: enough to see a deviation, quick on CPU


def test_the_shipped_router_never_deviates_at_temperature_zero(
    real_gateway: RealGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = real_gateway.adapters / "ticket-router"
    shutil.copytree(ROOT / "adapters" / "ticket-router", shipped)
    try:
        _evaluate(real_gateway, tmp_path, monkeypatch)
    finally:
        shutil.rmtree(shipped)  # the watcher unloads it: the session's store is as it was


def _evaluate(real_gateway: RealGateway, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> None:
    deadline = time.monotonic() + 120
    while "ticket-router" not in [m.id for m in real_gateway.sdk().models.list()]:
        assert time.monotonic() < deadline, "the watcher did not load the shipped router"
        time.sleep(0.5)
    lines = (ROOT / "data" / "tickets" / "test.jsonl").read_text().splitlines()[:ITEMS]
    dataset = tmp_path / "test.jsonl"
    dataset.write_text("\n".join(lines) + "\n")
    variants = tmp_path / "variants.yaml"
    variants.write_text(json.dumps({
        "schemas_dir": str(ROOT / "config" / "schemas"), "concurrency": 4, "variants": [
            {"name": "router", "model": "ticket-router", "schema": "ticket",
             "temperature": 0, "max_tokens": 48}]}))
    monkeypatch.setenv("ROUTER_KEY", USER_KEY)
    out = tmp_path / "report"
    assert cli(["eval", "--dataset", str(dataset), "--variants", str(variants), "--url",
                real_gateway.url, "--api-key-env", "ROUTER_KEY", "--out", str(out),
                "--quiet"]) == 0
    (router,) = json.loads((out / "report.json").read_text())["variants"]
    assert router["requests"] == ITEMS
    assert router["first_deviation"]["hits"] == 0, router["by_kind"]
