"""Rollouts on the real engine: the trained ticket router earns its traffic over a random-weight
version and is promoted by the gate; a spoiled version is rolled back while in shadow."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from loadtests.rollout_demo import spoil
from tests.adapter_factory import write_adapter
from tests.integration.conftest import RealGateway
from tests.metrics_reader import parse, value

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "adapters" / "ticket-router"
SERVING = yaml.safe_load((SHIPPED / "adapter.yaml").read_text())["serving"]
POLICY = {"stages": [{"mode": "shadow", "share": 0.5}, {"mode": "canary", "share": 0.5}],
          "gate": {"min_checks": 10, "deviation_margin": 0.3, "latency_margin": 2.0}}
TICKETS = [json.loads(line)["input"] for line in
           (ROOT / "data" / "tickets" / "test.jsonl").read_text().splitlines()[:40]]


def _trained_copy(gateway: RealGateway, version: str) -> str:
    relative = f".rollouts/router-{version}"
    folder = gateway.adapters / relative
    shutil.copytree(SHIPPED, folder)
    manifest = yaml.safe_load((folder / "adapter.yaml").read_text())
    manifest.pop("digest", None)
    manifest.update(name="router", version=version)
    (folder / "adapter.yaml").write_text(yaml.safe_dump(manifest))
    return relative


def _until_decided(gateway: RealGateway, admin: httpx.Client, limit: int = 120
                   ) -> tuple[dict[str, Any], Counter[tuple[int, str]], Counter[str]]:
    """Ticket requests, each from one of 20 callers, until the rollout ends.

    Returns the final rollout, the (status, version) of the answers, and their versions.
    """
    statuses: Counter[tuple[int, str]] = Counter()
    versions: Counter[str] = Counter()
    headers = {"authorization": "Bearer integration-user-key"}
    with httpx.Client(base_url=gateway.url, timeout=120, headers=headers) as client:
        for index in range(limit):
            body = {"model": "router", "max_tokens": 64,
                    "messages": [{"role": "user", "content": TICKETS[index % len(TICKETS)]}]}
            answer = client.post("/v1/chat/completions", json=body,
                                 headers={"x-user": f"caller-{index % 20}"})
            version = answer.headers.get("x-adapter-version", "?")
            statuses[answer.status_code, version] += 1
            versions[version] += 1
            state = admin.get("/v1/adapters/router/rollout").json()
            if state["state"] != "active":
                return state, statuses, versions
    raise AssertionError(f"no decision after {limit} requests: {state['stats']}")


# Paced by the gate's decisions; on a slow CPU each ticket request (with its retries) takes
# 10-20 s, so the two rollouts need more than the default 10 minutes.
@pytest.mark.timeout(1800)
def test_a_trained_version_is_promoted_and_a_spoiled_one_rolled_back(
    real_gateway: RealGateway,
) -> None:
    write_adapter(real_gateway.adapters / ".rollouts/router-1", name="router", version="1",
                  rank=16, alpha=32, seed=3, serving=SERVING)
    with real_gateway.admin() as admin:
        assert admin.post("/v1/adapters", json={"path": ".rollouts/router-1"}).status_code == 201
        started = admin.post("/v1/adapters/router/rollout",
                             json={"path": _trained_copy(real_gateway, "2"), "policy": POLICY})
        assert started.status_code == 201, started.text
        state, statuses, versions = _until_decided(real_gateway, admin)
        assert state["state"] == "promoted", state
        assert [d["action"] for d in state["decisions"]] == ["start", "advance", "promote"]
        # Only the random-weight version may exhaust its attempts (422); nothing else fails.
        assert {key for key in statuses if key[0] != 200} <= {(422, "1")}, statuses
        assert set(versions) == {"1", "2"}  # the canary stage answered callers with both
        assert admin.get("/v1/adapters/router").json()["public_version"] == "2"

        spoiled = _trained_copy(real_gateway, "3")
        spoil(real_gateway.adapters / spoiled)
        started = admin.post("/v1/adapters/router/rollout",
                             json={"path": spoiled, "policy": POLICY})
        assert started.status_code == 201, started.text
        state, statuses, versions = _until_decided(real_gateway, admin)
        assert state["state"] == "rolled_back", state
        assert "deviates more than stable" in state["last_decision"]["reason"]
        assert set(statuses) == {(200, "2")}, statuses  # no client failed or met version 3
        samples = parse(real_gateway.metrics())
        assert value(samples, "gateway_rollout_decisions_total", adapter="router",
                     action="rollback") == 1
        assert admin.delete("/v1/adapters/router").status_code == 200
