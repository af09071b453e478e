"""``adapter-gateway eval`` end to end on the real engine: two variants, every format."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gateway.cli import main as cli
from tests.evaluation.test_eval import charts_drawn
from tests.integration.conftest import MODEL, ROOT, USER_KEY, RealGateway

pytestmark = pytest.mark.integration


def test_eval_runs_end_to_end_on_the_bundled_model(real_gateway: RealGateway, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    items = (ROOT / "data" / "tickets" / "eval.jsonl").read_text().splitlines()[:6]
    dataset = tmp_path / "items.jsonl"
    dataset.write_text("\n".join(items) + "\n")
    variants = tmp_path / "variants.yaml"
    variants.write_text(json.dumps({
        "schemas_dir": str(ROOT / "config" / "schemas"), "concurrency": 3,
        "variants": [
            {"name": "prompt-only", "model": MODEL, "schema": "ticket", "max_tokens": 48},
            {"name": "constrained", "model": MODEL, "schema": "ticket", "max_tokens": 48,
             "constrained": True}]}))
    monkeypatch.setenv("EVAL_KEY", USER_KEY)
    out = tmp_path / "report"
    code = cli(["eval", "--dataset", str(dataset), "--variants", str(variants), "--url",
                real_gateway.url, "--api-key-env", "EVAL_KEY", "--out", str(out), "--quiet"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    prompt_only, constrained = report["variants"]
    assert prompt_only["requests"] == constrained["requests"] == 6
    assert constrained["first_deviation"]["hits"] <= prompt_only["first_deviation"]["hits"]
    assert report["decision"]["recommendation"]
    assert charts_drawn(out / "report.html") == 4
    assert os.path.getsize(out / "report.md") > 0
