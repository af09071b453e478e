"""A killed engine comes back by itself, adapters included (its own gateway and engine)."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.adapter_factory import write_adapter
from tests.integration.conftest import MODEL, USER_KEY, launch

pytestmark = pytest.mark.integration

CHAT = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4}
GUARD_S = 600  # only stops a hang: the engine needs about a minute to come back on 2 cores


def _engine_pids(log: Path) -> list[int]:
    return [int(p) for p in re.findall(r"engine started: pid=(\d+)", log.read_text())]


def test_a_killed_engine_is_back_with_its_adapters(tmp_path: Path) -> None:
    write_adapter(tmp_path / "adapters" / "smol-helper", name="smol-helper", alpha=32)
    with launch(tmp_path) as gateway, httpx.Client(
        base_url=gateway.url, timeout=120, headers={"authorization": f"Bearer {USER_KEY}"}
    ) as client:
        assert client.post("/v1/chat/completions",
                           json={**CHAT, "model": "smol-helper"}).status_code == 200
        (first,) = _engine_pids(gateway.log)
        os.kill(first, signal.SIGKILL)
        statuses = []
        deadline = time.monotonic() + GUARD_S
        while time.monotonic() < deadline:
            # Every request gets its answer while the engine is away (httpx's timeout
            # would fail the test): 503 until it is back and the adapter reloaded.
            response = client.post("/v1/chat/completions", json={**CHAT, "model": "smol-helper"})
            statuses.append(response.status_code)
            if response.status_code == 200:
                break
            time.sleep(1)
        assert statuses[-1] == 200, statuses
        assert set(statuses) <= {200, 404, 502, 503}, statuses
        assert len(_engine_pids(gateway.log)) == 2
        base = client.post("/v1/chat/completions", json={**CHAT, "model": MODEL})
        assert base.status_code == 200
        metrics = gateway.metrics()
        assert 'gateway_engine_restarts_total{reason="exited"} 1.0' in metrics
