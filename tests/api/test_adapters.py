"""The adapter admin API and adapter traffic, in front of the fake engine."""

from __future__ import annotations

import asyncio
import os
import pickle
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from gateway.app import create_app
from gateway.config import Settings
from tests.adapter_factory import WEIGHTS_FILE, expected_digest, write_adapter
from tests.conftest import BASE_MODEL, SettingsFactory, start
from tests.fakes.engine import FakeEngine
from tests.metrics_reader import parse, value

pytestmark = pytest.mark.anyio

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


@pytest.fixture
def staging(tmp_path: Path) -> Path:
    return tmp_path / "staging"


@pytest.fixture
def settings(make_settings: SettingsFactory, store: Path, staging: Path) -> Settings:
    return make_settings(adapters={"staging_dir": str(staging)})


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async for c in start(app):
        yield c


def adapter(root: Path, name: str, *, folder: str | None = None, **kw: Any) -> Path:
    kw.setdefault("num_layers", 2)
    return write_adapter(root / (folder or name), name=name, **kw)


async def load(client: httpx.AsyncClient, path: str, **body: Any) -> httpx.Response:
    return await client.post("/v1/adapters", json={"path": path, **body})


def engine_id(folder: Path, name: str) -> str:
    return f"{name}--{expected_digest(folder)[:12]}"


async def chat(client: httpx.AsyncClient, model: str, **kw: Any) -> httpx.Response:
    return await client.post("/v1/chat/completions", json={"model": model, "messages": HI, **kw})


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def unloads(fake: FakeEngine) -> list[str]:
    return [body["lora_name"] for kind, body in fake.lora_calls if kind == "unload"]


async def model_ids(client: httpx.AsyncClient) -> list[str]:
    return [card["id"] for card in (await client.get("/v1/models")).json()["data"]]


# -- loading ---------------------------------------------------------------------------------


async def test_load_by_relative_path(client: httpx.AsyncClient, fake_engine: FakeEngine,
                                     store: Path, staging: Path) -> None:
    folder = adapter(store, "alpha")
    response = await load(client, "alpha")
    assert response.status_code == 201
    snapshot = response.json()
    assert (snapshot["name"], snapshot["public_version"]) == ("alpha", "1")
    [version] = snapshot["versions"]
    assert version["state"] == "ready" and version["public"]
    assert version["digest"] == expected_digest(folder)
    assert version["engine_id"] == engine_id(folder, "alpha")
    [(kind, body)] = fake_engine.lora_calls
    assert kind == "load" and body["lora_name"] == version["engine_id"]
    staged = Path(body["lora_path"])
    assert staged.is_relative_to(staging) and staged != folder
    assert (staged / WEIGHTS_FILE).read_bytes() == (folder / WEIGHTS_FILE).read_bytes()


async def test_load_by_absolute_path_inside_the_root(client: httpx.AsyncClient,
                                                     store: Path) -> None:
    folder = adapter(store, "alpha")
    response = await load(client, str(folder.resolve()))
    assert response.status_code == 201
    assert response.json()["versions"][0]["state"] == "ready"


async def test_same_adapter_again_is_a_noop(client: httpx.AsyncClient, fake_engine: FakeEngine,
                                            store: Path) -> None:
    adapter(store, "alpha")
    first = await load(client, "alpha")
    again = await load(client, "alpha")
    assert again.status_code == 200
    assert again.json()["versions"] == first.json()["versions"]
    assert len(fake_engine.lora_calls) == 1


async def test_other_content_under_a_taken_name_conflicts(
    client: httpx.AsyncClient, fake_engine: FakeEngine, store: Path
) -> None:
    v1 = adapter(store, "alpha")
    adapter(store, "alpha", folder="alpha-2", version="2", seed=1)
    await load(client, "alpha")
    response = await load(client, "alpha-2")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "adapter_conflict"
    assert "replace" in error["message"]
    assert len(fake_engine.lora_calls) == 1
    assert (await chat(client, "alpha")).status_code == 200
    assert fake_engine.requests[-1]["model"] == engine_id(v1, "alpha")


async def test_replace_publishes_the_new_version_and_unloads_the_old(
    client: httpx.AsyncClient, fake_engine: FakeEngine, store: Path, staging: Path
) -> None:
    v1 = adapter(store, "alpha")
    v2 = adapter(store, "alpha", folder="alpha-2", version="2", seed=1)
    await load(client, "alpha")
    response = await load(client, "alpha-2", replace=True)
    assert response.status_code == 201
    assert response.json()["public_version"] == "2"
    old, new = engine_id(v1, "alpha"), engine_id(v2, "alpha")
    await eventually(lambda: unloads(fake_engine) == [old])
    assert set(fake_engine.loras) == {new}
    # The staged copy of version 1 goes last, once the registry has forgotten it.
    await eventually(lambda: [p.name for p in staging.iterdir()] == [
        f"alpha--{expected_digest(v2)}"])
    listed = (await client.get("/v1/adapters/alpha")).json()
    assert [v["version"] for v in listed["versions"]] == ["2"]
    assert (await chat(client, "alpha")).status_code == 200
    assert fake_engine.requests[-1]["model"] == new


async def test_listing_and_models(client: httpx.AsyncClient, store: Path) -> None:
    folder = adapter(store, "alpha", description="Answers in haiku.")
    await load(client, "alpha")
    [listed] = (await client.get("/v1/adapters")).json()["data"]
    assert listed["name"] == "alpha" and listed["description"] == "Answers in haiku."
    assert (await client.get("/v1/adapters/alpha")).json() == listed
    cards = {card["id"]: card for card in (await client.get("/v1/models")).json()["data"]}
    assert cards["alpha"]["parent"] == BASE_MODEL
    assert cards["alpha"]["root"] == engine_id(folder, "alpha")
    missing = await client.get("/v1/adapters/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "adapter_not_found"


# -- serving ---------------------------------------------------------------------------------


async def test_requests_reach_the_engine_under_the_engine_id(
    client: httpx.AsyncClient, sdk: openai.AsyncOpenAI, fake_engine: FakeEngine, store: Path
) -> None:
    folder = adapter(store, "alpha")
    await load(client, "alpha")
    answer = await sdk.chat.completions.create(model="alpha", messages=[
        {"role": "user", "content": "hi"}])
    assert answer.model == "alpha"
    assert fake_engine.requests[-1]["model"] == engine_id(folder, "alpha")
    stream = await sdk.chat.completions.create(model="alpha", stream=True, messages=[
        {"role": "user", "content": "hi"}])
    assert {chunk.model async for chunk in stream} == {"alpha"}
    response = await chat(client, "alpha")
    assert response.headers["x-adapter-version"] == "1"
    assert "x-adapter-version" not in (await chat(client, BASE_MODEL)).headers


async def test_pinned_versions(client: httpx.AsyncClient, fake_engine: FakeEngine,
                               store: Path) -> None:
    v1 = adapter(store, "alpha")
    await load(client, "alpha")
    response = await chat(client, "alpha@1")
    assert response.status_code == 200 and response.json()["model"] == "alpha@1"
    assert fake_engine.requests[-1]["model"] == engine_id(v1, "alpha")
    unknown = await chat(client, "alpha@9")
    assert unknown.status_code == 404
    assert "versions: ['1']" in unknown.json()["error"]["message"]
    assert len(fake_engine.requests) == 1


async def test_delete(client: httpx.AsyncClient, sdk: openai.AsyncOpenAI,
                      fake_engine: FakeEngine, store: Path) -> None:
    folder = adapter(store, "alpha")
    await load(client, "alpha")
    response = await client.delete("/v1/adapters/alpha")
    assert response.status_code == 200 and response.json()["name"] == "alpha"
    assert unloads(fake_engine) == [engine_id(folder, "alpha")]
    with pytest.raises(openai.NotFoundError):
        await sdk.chat.completions.create(model="alpha", messages=[
            {"role": "user", "content": "hi"}])
    assert "alpha" not in await model_ids(client)
    assert (await client.get("/v1/adapters/alpha")).status_code == 404
    assert (await client.delete("/v1/adapters/alpha")).status_code == 404
    assert fake_engine.requests == []


async def test_vllm_compatible_aliases(client: httpx.AsyncClient, fake_engine: FakeEngine,
                                       store: Path) -> None:
    folder = adapter(store, "beta", folder="beta-files", manifest=False)
    body = {"lora_name": "beta", "lora_path": str(folder)}
    response = await client.post("/v1/load_lora_adapter", json=body)
    assert response.status_code == 200
    assert response.text == "Success: LoRA adapter 'beta' added successfully."
    assert (await chat(client, "beta")).status_code == 200
    changed = adapter(store, "beta", folder="beta-2", manifest=False, seed=1)
    refused = await client.post("/v1/load_lora_adapter",
                                json={"lora_name": "beta", "lora_path": "beta-2"})
    assert refused.status_code == 409
    inplace = {"lora_name": "beta", "lora_path": "beta-2", "load_inplace": True}
    assert (await client.post("/v1/load_lora_adapter", json=inplace)).status_code == 200
    await chat(client, "beta")
    assert fake_engine.requests[-1]["model"] == engine_id(changed, "beta")
    response = await client.post("/v1/unload_lora_adapter", json={"lora_name": "beta"})
    assert response.text == "Success: LoRA adapter 'beta' removed successfully."
    again = await client.post("/v1/unload_lora_adapter", json={"lora_name": "beta"})
    assert again.status_code == 404 and again.json()["error"]["code"] == "adapter_not_found"


# -- hostile loads ---------------------------------------------------------------------------


class _Unpickled:
    """Creates ``marker`` when unpickled: proof that a pickle was opened."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def _pickled(store: Path, outside: Path) -> str:
    folder = adapter(store, "pickled")
    (folder / WEIGHTS_FILE).unlink()  # PEFT's legacy layout: the engine would torch.load it
    (folder / "adapter_model.bin").write_bytes(pickle.dumps(_Unpickled(outside / "unpickled")))
    return "pickled"


def _wrong_base(store: Path, outside: Path) -> str:
    adapter(store, "llama", base_model="meta-llama/Llama-3.2-1B")
    return "llama"


def _wrong_shapes(store: Path, outside: Path) -> str:
    adapter(store, "wide", hidden_size=2048, num_heads=32, num_kv_heads=8)
    return "wide"


def _rank(store: Path, outside: Path) -> str:
    adapter(store, "huge", rank=32)
    return "huge"


def _missing(store: Path, outside: Path) -> str:
    (adapter(store, "half") / WEIGHTS_FILE).unlink()
    return "half"


def _corrupt(store: Path, outside: Path) -> str:
    weights = adapter(store, "broken") / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:1000])
    return "broken"


def _dotdot(store: Path, outside: Path) -> str:
    adapter(outside, "escape")
    return "../outside/escape"


def _absolute(store: Path, outside: Path) -> str:
    return str(adapter(outside, "escape"))


def _symlink(store: Path, outside: Path) -> str:
    (store / "linked").symlink_to(adapter(outside, "escape"), target_is_directory=True)
    return "linked"


def _file_symlink(store: Path, outside: Path) -> str:
    folder = adapter(store, "sneaky")
    elsewhere = adapter(outside, "sneaky") / WEIGHTS_FILE
    (folder / WEIGHTS_FILE).unlink()
    (folder / WEIGHTS_FILE).symlink_to(elsewhere)
    return "sneaky"


HOSTILE: dict[str, tuple[Callable[[Path, Path], str], str]] = {
    "pickle": (_pickled, "pickle_weights"),
    "wrong base model": (_wrong_base, "base_model_mismatch"),
    "shapes of another base": (_wrong_shapes, "tensor_mismatch"),
    "rank too large": (_rank, "rank_too_large"),
    "missing weights": (_missing, "missing_files"),
    "truncated safetensors": (_corrupt, "corrupt_weights"),
    "dot-dot path": (_dotdot, "path_outside_roots"),
    "absolute path elsewhere": (_absolute, "path_outside_roots"),
    "symlinked folder": (_symlink, "path_outside_roots"),
    "symlinked weights": (_file_symlink, "path_outside_roots"),
    "url": (lambda s, o: "https://huggingface.co/org/some-lora", "invalid_path"),
    "hub id": (lambda s, o: "some-org/some-lora", "not_found"),
}


@pytest.mark.parametrize("case", HOSTILE)
async def test_hostile_loads_are_refused_before_the_engine(
    case: str, client: httpx.AsyncClient, fake_engine: FakeEngine, store: Path, outside: Path
) -> None:
    adapter(store, "good")
    await load(client, "good")
    calls = list(fake_engine.lora_calls)
    prepare, reason = HOSTILE[case]
    response = await load(client, prepare(store, outside))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["reason"]) == (
        "invalid_request_error", reason, reason)
    assert error["message"]
    assert fake_engine.lora_calls == calls
    assert not (outside / "unpickled").exists()
    assert (await chat(client, "good")).status_code == 200
    assert (await chat(client, BASE_MODEL)).status_code == 200
    samples = parse((await client.get("/metrics")).text)
    assert value(samples, "gateway_adapter_load_failures_total", reason=reason) == 1


def test_the_pickle_marker_works(outside: Path) -> None:
    """The payload above does create its marker when unpickled, so its absence means something."""
    marker = outside / "control"
    pickle.loads(pickle.dumps(_Unpickled(marker)))
    assert marker.exists()


@pytest.fixture
async def secured(make_settings: SettingsFactory, store: Path,
                  staging: Path) -> AsyncIterator[httpx.AsyncClient]:
    keys = [{"name": "app", "scope": "user", "key": "user-secret"},
            {"name": "ops", "scope": "admin", "key": "admin-secret"}]
    app = create_app(make_settings(auth={"keys": keys}, adapters={"staging_dir": str(staging)}))
    async for client in start(app):
        yield client


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/v1/adapters", {"path": "alpha"}),
    ("GET", "/v1/adapters", None),
    ("DELETE", "/v1/adapters/alpha", None),
    ("POST", "/v1/load_lora_adapter", {"lora_name": "alpha", "lora_path": "alpha"}),
    ("POST", "/v1/unload_lora_adapter", {"lora_name": "alpha"}),
    ("GET", "/v1/adapters/alpha/rollout", None),
    ("POST", "/v1/adapters/alpha/rollout", {"path": "alpha"}),
    ("POST", "/v1/adapters/alpha/rollout/abort", {}),
])
async def test_adapter_admin_needs_an_admin_key(
    secured: httpx.AsyncClient, fake_engine: FakeEngine, store: Path,
    method: str, path: str, body: dict[str, str] | None,
) -> None:
    adapter(store, "alpha")
    user = await secured.request(method, path, json=body,
                                 headers={"authorization": "Bearer user-secret"})
    assert user.status_code == 403 and user.json()["error"]["type"] == "permission_error"
    anonymous = await secured.request(method, path, json=body)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "authentication_error"
    assert fake_engine.lora_calls == []
    admin = await secured.post("/v1/adapters", json={"path": "alpha"},
                               headers={"authorization": "Bearer admin-secret"})
    assert admin.status_code == 201


# -- the watcher -----------------------------------------------------------------------------


@pytest.fixture
async def watched(make_settings: SettingsFactory, store: Path,
                  staging: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(adapters={"staging_dir": str(staging), "watch": True,
                                       "watch_debounce_ms": 50})
    async for client in start(create_app(settings)):
        yield client


async def test_the_watcher_loads_copied_folders_and_unloads_removed_ones(
    watched: httpx.AsyncClient, fake_engine: FakeEngine, store: Path, outside: Path
) -> None:
    source = adapter(outside, "gamma")
    shutil.copytree(source, store / "gamma")
    await eventually_async(watched, lambda ids: "gamma" in ids)
    response = await chat(watched, "gamma")
    assert response.status_code == 200
    assert fake_engine.requests[-1]["model"] == engine_id(source, "gamma")
    shutil.rmtree(store / "gamma")
    await eventually_async(watched, lambda ids: "gamma" not in ids)
    await eventually(lambda: unloads(fake_engine) == [engine_id(source, "gamma")])
    assert (await chat(watched, "gamma")).status_code == 404


async def eventually_async(client: httpx.AsyncClient, check: Callable[[list[str]], bool],
                           timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check(await model_ids(client)):
        assert asyncio.get_running_loop().time() < deadline, "the watcher did not catch up"
        await asyncio.sleep(0.05)


# -- requests in flight across a swap --------------------------------------------------------


async def test_a_swap_lets_running_requests_finish_on_their_version(
    client: httpx.AsyncClient, fake_engine: FakeEngine, store: Path
) -> None:
    v1 = adapter(store, "alpha")
    v2 = adapter(store, "alpha", folder="alpha-2", version="2", seed=1)
    await load(client, "alpha")
    old, new = engine_id(v1, "alpha"), engine_id(v2, "alpha")
    fake_engine.enqueue("slow answer", delay=1.0)
    slow = asyncio.create_task(chat(client, "alpha"))
    await eventually(lambda: len(fake_engine.requests) == 1)
    assert (await load(client, "alpha-2", replace=True)).status_code == 201
    fast = await chat(client, "alpha")
    assert fast.headers["x-adapter-version"] == "2"
    pinned = await chat(client, "alpha@1")  # nothing new enters a draining version
    assert pinned.status_code == 404 and "versions: ['2']" in pinned.json()["error"]["message"]
    assert [r["model"] for r in fake_engine.requests] == [old, new]
    listed = {v["version"]: v for v in (await client.get("/v1/adapters/alpha")).json()["versions"]}
    assert (listed["1"]["state"], listed["1"]["in_flight"]) == ("draining", 1)
    assert unloads(fake_engine) == [] and not slow.done()
    answer = await slow
    assert answer.status_code == 200 and answer.json()["model"] == "alpha"
    assert answer.headers["x-adapter-version"] == "1"
    await eventually(lambda: unloads(fake_engine) == [old])
    assert set(fake_engine.loras) == {new}


# -- metrics ---------------------------------------------------------------------------------


async def test_adapter_metrics(client: httpx.AsyncClient, store: Path) -> None:
    adapter(store, "alpha")
    adapter(store, "huge", rank=32)
    await load(client, "alpha")
    await load(client, "huge")
    await chat(client, "alpha")
    samples = parse((await client.get("/metrics")).text)
    assert value(samples, "gateway_adapter_loads_total", adapter="alpha", result="success") == 1
    assert value(samples, "gateway_adapter_loads_total", result="failure") == 1
    assert value(samples, "gateway_adapter_load_failures_total", reason="rank_too_large") == 1
    assert value(samples, "gateway_adapters_loaded") == 1
    assert value(samples, "gateway_requests_total", adapter="alpha", endpoint="chat",
                 status="200") == 1
    assert value(samples, "gateway_adapter_load_duration_seconds_count", adapter="alpha") == 1
    await client.delete("/v1/adapters/alpha")
    samples = parse((await client.get("/metrics")).text)
    assert not [key for key in samples if ("adapter", "alpha") in key[1]]
    assert value(samples, "gateway_adapters_loaded") == 0
    assert value(samples, "gateway_adapter_load_failures_total", reason="rank_too_large") == 1


async def test_a_removed_adapter_leaves_no_series_even_with_requests_in_flight(
    client: httpx.AsyncClient, fake_engine: FakeEngine, store: Path
) -> None:
    adapter(store, "alpha")
    await load(client, "alpha")
    fake_engine.enqueue("slow answer", delay=0.5)
    slow = asyncio.create_task(chat(client, "alpha"))
    await eventually(lambda: len(fake_engine.requests) == 1)
    deleted = await client.delete("/v1/adapters/alpha")  # returns once the request is done
    assert deleted.status_code == 200 and slow.done()
    assert (await slow).status_code == 200
    samples = parse((await client.get("/metrics")).text)
    assert not [key for key in samples if ("adapter", "alpha") in key[1]]


async def test_a_manifest_naming_an_unknown_schema_is_refused(
    client: httpx.AsyncClient, store: Path, fake_engine: FakeEngine
) -> None:
    adapter(store, "typo", serving={"response_schema": "tickte", "validate_by_default": True})
    response = await load(client, "typo")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_manifest" and "tickte" in error["message"]
    assert fake_engine.lora_calls == []
    adapter(store, "known", serving={"response_schema": "ticket"})
    assert (await load(client, "known")).status_code == 201


# -- claims ----------------------------------------------------------------------------------


async def test_claims_stay_fresh_while_the_store_is_still_loading(
    make_settings: SettingsFactory, fake_engine: FakeEngine, store: Path, tmp_path: Path
) -> None:
    adapter(store, "alpha")
    fake_engine.load_gate = asyncio.Event()  # a long load: a large copy, a queued probe
    app = create_app(make_settings(adapters={"claims_refresh_s": 0.05}))
    async with app.router.lifespan_context(app):
        try:
            await app.state.monitor.check()
            await eventually(lambda: bool(fake_engine.lora_calls))
            claim = next((tmp_path / "claims").glob("*.json"))
            first = claim.stat().st_mtime_ns
            # Other processes judge a claim by its file's age: it is rewritten meanwhile.
            await eventually(lambda: claim.stat().st_mtime_ns != first)
            assert not app.state.adapters.store_loaded.is_set()
        finally:
            fake_engine.load_gate.set()
        await asyncio.wait_for(app.state.adapters.store_loaded.wait(), timeout=30)


# -- drains are bounded ----------------------------------------------------------------------


@pytest.fixture
async def short_drain(make_settings: SettingsFactory, staging: Path
                      ) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(adapters={"staging_dir": str(staging), "drain_timeout_s": 0.5})
    async for client in start(create_app(settings)):
        yield client


async def _stream_events(client: httpx.AsyncClient, model: str) -> list[str]:
    body = {"model": model, "messages": HI, "stream": True}
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        return [line async for line in response.aiter_lines() if line.startswith("data:")]


async def test_pins_never_keep_a_replaced_version_alive_and_its_drain_ends_by_its_deadline(
    short_drain: httpx.AsyncClient, fake_engine: FakeEngine, store: Path
) -> None:
    client = short_drain
    adapter(store, "alpha")
    adapter(store, "alpha", folder="alpha-2", version="2", seed=1)
    await load(client, "alpha")
    fake_engine.enqueue("a long stream on version 1", hold_after=2)
    streaming = asyncio.create_task(_stream_events(client, "alpha@1"))
    await eventually(lambda: len(fake_engine.requests) == 1)
    held = asyncio.Event()
    fake_engine.enqueue("a long answer on version 1", gate=held)
    waiting = asyncio.create_task(chat(client, "alpha@1"))
    await eventually(lambda: len(fake_engine.requests) == 2)
    assert (await load(client, "alpha-2", replace=True)).status_code == 201
    # Overlapping pins used to keep version 1 draining for ever; now nothing new enters it.
    late = await chat(client, "alpha@1")
    assert late.status_code == 404 and "versions: ['2']" in late.json()["error"]["message"]
    # Past the deadline both requests end with a clear error, and version 1 leaves.
    try:
        answer = await asyncio.wait_for(waiting, timeout=30)
    finally:
        held.set()
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "adapter_version_retired"
    events = await asyncio.wait_for(streaming, timeout=30)
    assert "adapter_version_retired" in events[-1]
    await eventually(lambda: len(unloads(fake_engine)) == 1)
    samples = parse((await client.get("/metrics")).text)
    assert value(samples, "gateway_adapter_requests_cut_total", adapter="alpha") == 2


async def test_removing_an_adapter_returns_by_its_drain_deadline_despite_requests(
    short_drain: httpx.AsyncClient, fake_engine: FakeEngine, store: Path
) -> None:
    client = short_drain
    adapter(store, "alpha")
    await load(client, "alpha")
    fake_engine.enqueue("a long stream", hold_after=2)
    streaming = asyncio.create_task(_stream_events(client, "alpha"))
    await eventually(lambda: len(fake_engine.requests) == 1)
    removed = await asyncio.wait_for(client.delete("/v1/adapters/alpha"), timeout=30)
    assert removed.status_code == 200
    events = await asyncio.wait_for(streaming, timeout=30)
    assert "adapter_version_retired" in events[-1]
    assert (await chat(client, "alpha")).status_code == 404
