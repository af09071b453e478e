"""Gateway processes that agree: two workers, and two gateways on one store, across a hot swap.

Real commands (``python -m gateway serve``) in front of the fake engine in its own process.
Clients keep sending to one adapter while its folder in the store gets a new version;
every process picks the change up from the store (its watcher), and no request fails or
finds its version gone: a version leaves the engine only once no process uses it.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.wiring.store import BUNDLED_BASE_CONFIG
from tests.adapter_factory import write_adapter
from tests.servers import free_port
from tests.test_multiprocess import MODEL, _process, _wait_ok

NAME = "ticket-router"
CLIENTS = 6
# After the swap, this many answers in a row from the new version on every gateway.
SETTLED = 30
GUARD_S = 120.0  # only stops a hang
BODY = {"model": NAME, "messages": [{"role": "user", "content": "Route this ticket."}]}


@contextmanager
def fake_engine(tmp_path: Path, resolver: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "engine.log"
    env = {"VLLM_LORA_RESOLVER_CACHE_DIR": str(resolver)}
    with _process([sys.executable, "-m", "tests.fakes.serve", "--port", str(port),
                   "--model", MODEL, "--delay", "0.05"], log, env) as proc:
        url = f"http://127.0.0.1:{port}"
        _wait_ok(f"{url}/health", proc, log)
        yield url


@contextmanager
def gateway(tmp_path: Path, label: str, engine_url: str, store: Path, **adapters: Any
            ) -> Iterator[str]:
    port = free_port()
    config = {"server": {"port": port, "workers": adapters.pop("workers", 1),
                         "log_level": "info"},
              "engine": {"mode": "remote", "urls": [engine_url], "model": MODEL,
                         "health_interval_s": 0.2},
              "adapters": {"roots": [str(store)], "watch": True, "watch_debounce_ms": 200,
                           "staging_dir": str(tmp_path / "staging"),
                           "claims_dir": str(tmp_path / "claims"), "claims_refresh_s": 0.5,
                           "base_model_config": str(BUNDLED_BASE_CONFIG),
                           "rollouts_file": str(tmp_path / f"rollouts-{label}.json"),
                           **adapters}}
    config_file = tmp_path / f"gateway-{label}.yaml"
    config_file.write_text(json.dumps(config))
    log = tmp_path / f"gateway-{label}.log"
    with _process([sys.executable, "-m", "gateway", "serve", "--config", str(config_file)],
                  log) as proc:
        url = f"http://127.0.0.1:{port}"
        _wait_ok(f"{url}/ready", proc, log)
        yield url


class Load:
    """Clients sending to NAME through every gateway until stopped; each answer recorded."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []
        self.latest: dict[str, list[str]] = {url: [] for url in urls}

    def client(self, index: int) -> None:
        url = self.urls[index % len(self.urls)]
        with httpx.Client(base_url=url, timeout=30.0) as http:
            while not self.stop.is_set():
                try:
                    response = http.post("/v1/chat/completions", json=BODY)
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.failures.append(repr(exc))
                    continue
                with self.lock:
                    self.statuses[response.status_code] += 1
                    if response.status_code != 200:
                        self.failures.append(f"{response.status_code} {response.text[:300]}")
                    self.latest[url].append(response.headers.get("x-adapter-version", ""))

    def settled_on(self, version: str) -> bool:
        with self.lock:
            return all(len(seen) >= SETTLED and set(seen[-SETTLED:]) == {version}
                       for seen in self.latest.values())

    def tails(self) -> dict[str, str]:
        with self.lock:
            return {url: "".join(seen[-40:]) for url, seen in self.latest.items()}

    def served(self, version: str) -> bool:
        with self.lock:
            return all(version in seen for seen in self.latest.values())


def swap_under_load(urls: list[str], store: Path) -> tuple[Load, float]:
    """Version 2 replaces version 1 in the store while clients send; (load, seconds until
    every gateway answered with version 2 only)."""
    load = Load(urls)
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        running = [pool.submit(load.client, i) for i in range(CLIENTS)]
        deadline = time.monotonic() + GUARD_S
        try:
            while not load.served("1"):
                assert time.monotonic() < deadline, "no answer from version 1"
                time.sleep(0.05)
            started = time.monotonic()
            write_adapter(store / NAME, name=NAME, version="2", seed=2, num_layers=2)
            while not load.settled_on("2"):
                assert time.monotonic() < deadline, f"not settled on version 2: {load.tails()}"
                time.sleep(0.05)
            settled = time.monotonic() - started
        finally:
            load.stop.set()
            for future in running:
                future.result()
    return load, settled


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "adapters"
    root.mkdir()
    write_adapter(root / NAME, name=NAME, version="1", seed=1, num_layers=2)
    return root


@pytest.mark.parametrize("publish", ["runtime", "resolver"])
def test_two_workers_agree_across_a_hot_swap(tmp_path: Path, store: Path, publish: str) -> None:
    resolver = tmp_path / "resolver"
    with fake_engine(tmp_path, resolver) as engine, gateway(
            tmp_path, "workers", engine, store, workers=2, publish=publish,
            resolver={"dir": str(resolver), "base_model": MODEL}) as url:
        load, settled = swap_under_load([url], store)
    assert load.failures == [], load.failures[:5]
    assert set(load.statuses) == {200}
    sys.stderr.write(f"workers ({publish}): {sum(load.statuses.values())} requests, "
                     f"0 failed; version 2 only after {settled:.2f} s\n")


def test_two_gateways_on_one_store_agree_across_a_hot_swap(tmp_path: Path, store: Path) -> None:
    resolver = tmp_path / "resolver"
    with fake_engine(tmp_path, resolver) as engine, ExitStack() as stack:
        urls = [stack.enter_context(gateway(
            tmp_path, label, engine, store, publish="resolver",
            resolver={"dir": str(resolver), "base_model": MODEL})) for label in ("a", "b")]
        load, settled = swap_under_load(urls, store)
        published = sorted(p.name for p in resolver.iterdir() if not p.name.startswith("."))
    assert load.failures == [], load.failures[:5]
    assert set(load.statuses) == {200}
    # Both served version 2 only, and the store holds it alone once both let version 1 go
    # (or version 1 too, while a claim of it is still being withdrawn).
    assert len(published) in (1, 2) and all(p.startswith(f"{NAME}--") for p in published)
    sys.stderr.write(f"two gateways: {sum(load.statuses.values())} requests, 0 failed; "
                     f"version 2 only on both after {settled:.2f} s\n")
