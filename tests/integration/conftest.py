"""The real tier: the gateway CLI with its embedded vLLM on the bundled model, once per session.

Driven with the official ``openai`` SDK. Adapter tests write PEFT adapters into the
session's adapter root (watched by the gateway).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
import openai
import psutil
import pytest
from pydantic import BaseModel

from tests.servers import free_port, wait_until_up

ROOT = Path(__file__).resolve().parents[2]
MODEL = "SmolLM2-135M-Instruct"
ADMIN_KEY = "integration-admin-key"
USER_KEY = "integration-user-key"
READY_TIMEOUT_S = 600


# The ticket the client-library tests (tools, Responses) ask each model to route.
TICKET = "Route this support ticket: I was charged twice for my plan this month."
# The first attempt of a model that writes prose where a call is due runs to this limit.
MAX_TOKENS = 64


class Ticket(BaseModel):
    """Where a support ticket goes."""

    category: Literal["billing", "technical", "account", "other"]
    priority: Literal["low", "medium", "high"]
    escalate: bool


@dataclass
class RealGateway:
    url: str
    adapters: Path
    log: Path
    pid: int
    _clients: dict[str, openai.OpenAI] = field(default_factory=dict)

    def sdk(self, key: str = USER_KEY) -> openai.OpenAI:
        """One SDK client per key for the session (closed at its end)."""
        if key not in self._clients:
            self._clients[key] = openai.OpenAI(base_url=f"{self.url}/v1", api_key=key,
                                               max_retries=0, timeout=120.0)
        return self._clients[key]

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120.0,
                            headers={"authorization": f"Bearer {ADMIN_KEY}"})

    def metrics(self) -> str:
        """The gateway's /metrics text (with keys configured, it needs a metrics or admin key)."""
        with self.admin() as admin:
            return admin.get("/metrics").text

    def engine_url(self) -> str:
        """The embedded engine's own address, from the gateway's log."""
        found = re.findall(r"engine started: pid=\d+ url=(\S+)", self.log.read_text())
        assert found, "the gateway did not log its engine's address"
        return str(found[-1])

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def _config(port: int, adapters: Path, var: Path) -> dict[str, object]:
    return {
        "server": {"port": port},
        "auth": {"keys": [{"name": "admin", "scope": "admin", "key_env": "IT_ADMIN_KEY"},
                          {"name": "user", "scope": "user", "key_env": "IT_USER_KEY"}]},
        "engine": {"mode": "embedded", "model": MODEL, "log_file": str(var / "vllm.log"),
                   "max_loras": 4, "max_lora_rank": 16, "read_timeout_s": 300},
        "adapters": {"roots": [str(adapters)], "watch": True, "watch_debounce_ms": 300,
                     "staging_dir": str(var / "staging"), "drain_timeout_s": 60,
                     "rollouts_file": str(var / "rollouts.json"),
                     "rollout_sticky_header": "x-user"},
        "responses": {"store_file": str(var / "responses.sqlite3")},
    }


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    try:
        wait_until_up(f"{url}/ready", READY_TIMEOUT_S, proc, interval=1.0)
    except RuntimeError as exc:
        raise RuntimeError(f"the gateway did not become ready: {exc}\n{_tail(log)}") from None


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"


@contextmanager
def launch(base: Path) -> Iterator[RealGateway]:
    """A gateway CLI with its embedded engine, its store and files under ``base``."""
    adapters, var = base / "adapters", base / "var"
    adapters.mkdir(exist_ok=True)
    var.mkdir(exist_ok=True)
    port = free_port()
    config = base / "gateway.yaml"
    config.write_text(json.dumps(_config(port, adapters, var)))
    log = var / "gateway.log"
    env = {**os.environ, "IT_ADMIN_KEY": ADMIN_KEY, "IT_USER_KEY": USER_KEY}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    children: list[psutil.Process] = []
    try:
        _wait_ready(url, proc, log)
        gateway = RealGateway(url, adapters, log, proc.pid)
        yield gateway
        gateway.close()
    finally:
        # Engines restarted meanwhile are children too: taken at the end, not the start.
        with contextlib.suppress(psutil.NoSuchProcess):
            children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # SIGTERM to the gateway must take the engine and its workers down with it.
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"engine processes outlived the gateway: {alive}"


@pytest.fixture(scope="session")
def real_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealGateway]:
    with launch(tmp_path_factory.mktemp("real")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def router(real_gateway: RealGateway) -> Iterator[str]:
    """The shipped ticket-router in the session's store for this module."""
    shipped = real_gateway.adapters / "ticket-router"
    shutil.copytree(ROOT / "adapters" / "ticket-router", shipped)
    deadline = time.monotonic() + 120
    while "ticket-router" not in [m.id for m in real_gateway.sdk().models.list()]:
        assert time.monotonic() < deadline, "the watcher did not load the shipped router"
        time.sleep(0.5)
    yield "ticket-router"
    shutil.rmtree(shipped)


@pytest.fixture(params=["base", "adapter"])
def model(request: pytest.FixtureRequest) -> str:
    return MODEL if request.param == "base" else str(request.getfixturevalue("router"))
