"""Hot swaps under load on the real engine: no request fails, each is served by a live version.

Eight clients stream short answers from one adapter name while the admin API replaces its
version four times, each once the version before has served a few requests. Every answer
names the version that served it (``x-adapter-version``), and the gateway reports when
each version went live (its ``loaded_at``: the version is published in the same step), so
each request is checked against the swap timeline.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.adapter_factory import write_adapter
from tests.integration.conftest import RealGateway

pytestmark = pytest.mark.integration

NAME = "hot-swapped"
CLIENTS = 8
SWAPS = 4
# Each version serves this many requests before the next is published: paced by what
# happened, not by the clock, so a slow machine only makes the test longer.
SERVED_PER_VERSION = 3
GUARD_S = 300.0  # only stops a hang
PROMPT: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write one word about the sea."}]


@dataclass(frozen=True)
class Served:
    started: float
    ended: float
    version: str


@dataclass
class Outcomes:
    served: list[Served]
    failures: list[str]
    lock: threading.Lock


def stream_once(sdk: openai.OpenAI) -> Served:
    started = time.time()
    raw = sdk.chat.completions.with_raw_response.create(
        model=NAME, messages=PROMPT, max_tokens=8, stream=True, temperature=1.0)
    version = raw.headers.get("x-adapter-version", "")
    text = "".join(c.delta.content or "" for chunk in raw.parse() for c in chunk.choices)
    assert text, "an empty answer"
    return Served(started, time.time(), version)


def client_loop(sdk: openai.OpenAI, stop: threading.Event, outcomes: Outcomes) -> None:
    while not stop.is_set():
        try:
            served = stream_once(sdk)
        except Exception as exc:  # every failure is reported, none ends the load
            with outcomes.lock:
                outcomes.failures.append(repr(exc))
            continue
        with outcomes.lock:
            outcomes.served.append(served)


def publish(admin: httpx.Client, gateway: RealGateway, version: int) -> float:
    """Loads ``version`` (replacing the public one); returns when the gateway published it."""
    relative = f".admin/{NAME}-{version}"
    write_adapter(gateway.adapters / relative, name=NAME, version=str(version), seed=version)
    response = admin.post("/v1/adapters", json={"path": relative, "replace": True})
    assert response.status_code == 201, response.text
    [new] = [v for v in response.json()["versions"] if v["version"] == str(version)]
    assert new["public"] and new["state"] == "ready"
    published: float = new["loaded_at"]
    return published


def check_timeline(served: list[Served], published: dict[str, float]) -> None:
    """Each request's version went live before it ended and was still live when it started."""
    order = sorted(published, key=published.__getitem__)
    for request in served:
        assert request.version in published, request
        index = order.index(request.version)
        superseded = published[order[index + 1]] if index + 1 < len(order) else None
        assert published[request.version] <= request.ended, request
        assert superseded is None or request.started <= superseded, request


def test_hot_swaps_under_streaming_load(real_gateway: RealGateway) -> None:
    outcomes = Outcomes([], [], threading.Lock())
    stop = threading.Event()
    published: dict[str, float] = {}
    with real_gateway.admin() as admin:
        published["1"] = publish(admin, real_gateway, 1)
        sdk = real_gateway.sdk()
        clients = [threading.Thread(target=client_loop, args=(sdk, stop, outcomes))
                   for _ in range(CLIENTS)]
        for thread in clients:
            thread.start()
        try:
            for version in range(2, SWAPS + 2):
                wait_until_served(outcomes, str(version - 1))
                published[str(version)] = publish(admin, real_gateway, version)
            wait_until_served(outcomes, str(SWAPS + 1))
        finally:
            stop.set()
            for thread in clients:
                thread.join(timeout=120)
        remaining = admin.get(f"/v1/adapters/{NAME}").json()
        settled = wait_for_single_version(admin)
        admin.delete(f"/v1/adapters/{NAME}")
    assert outcomes.failures == []
    check_timeline(outcomes.served, published)
    by_version = {v: sum(s.version == v for s in outcomes.served) for v in published}
    assert all(count >= SERVED_PER_VERSION for count in by_version.values()), by_version
    assert remaining["public_version"] == str(SWAPS + 1)
    assert settled == [str(SWAPS + 1)]  # the others drained and left the engine


def wait_until_served(outcomes: Outcomes, version: str) -> None:
    """Returns once ``version`` has served SERVED_PER_VERSION requests."""
    deadline = time.monotonic() + GUARD_S
    while True:
        with outcomes.lock:
            served = sum(s.version == version for s in outcomes.served)
        if served >= SERVED_PER_VERSION:
            return
        assert time.monotonic() < deadline, f"version {version} served {served} requests"
        time.sleep(0.1)


def wait_for_single_version(admin: httpx.Client, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        versions = [v["version"] for v in admin.get(f"/v1/adapters/{NAME}").json()["versions"]]
        if len(versions) == 1 or time.monotonic() > deadline:
            return versions
        time.sleep(0.2)
