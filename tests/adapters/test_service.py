"""AdapterService against the fake engine over HTTP: loads, swaps, drains, events, restarts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.adapters.errors import (
    AdapterNotFound,
    AdapterRejected,
    AdapterUnavailable,
    RejectReason,
)
from gateway.adapters.serving.publish import RuntimePublisher
from gateway.adapters.serving.registry import AdapterRegistry
from gateway.adapters.serving.service import AdapterService
from gateway.adapters.serving.versions import VersionState
from gateway.adapters.store.scan import scan
from gateway.adapters.store.validation import AdapterPolicy, validate_folder
from gateway.adapters.store.watcher import AdapterEvent, AdapterEventKind
from gateway.engine.client import EngineClient
from gateway.errors import UpstreamError
from gateway.wiring.metrics import gateway_metrics
from tests.adapter_factory import expected_digest, write_adapter
from tests.adapters.conftest import SpecFactory
from tests.fakes.engine import FakeEngine
from tests.servers import serving

pytestmark = pytest.mark.anyio


def make_service(policy: AdapterPolicy, url: str, staging: Path,
                 drain_timeout_s: float = 5.0, load_wait_s: float = 0.0) -> AdapterService:
    return AdapterService(AdapterRegistry(), policy, EngineClient([url]), gateway_metrics().record,
                          staging_root=staging, drain_timeout_s=drain_timeout_s,
                          load_wait_s=load_wait_s)


@pytest.fixture
def staging(tmp_path: Path) -> Path:
    return tmp_path / "staging"


@pytest.fixture
async def service(policy: AdapterPolicy, engine_url: str,
                  staging: Path) -> AsyncIterator[AdapterService]:
    service = make_service(policy, engine_url, staging)
    yield service
    await service.aclose()
    await service.engine.aclose()


def failures(service: AdapterService, reason: str) -> float:
    found = service.recorder.metrics.registry.get_sample_value(
        "gateway_adapter_load_failures_total", {"reason": reason})
    return found or 0.0


def versions(service: AdapterService, name: str) -> int:
    snapshot = service.registry.get(name)
    return len(snapshot.versions) if snapshot else 0


def unloads(fake: FakeEngine) -> list[str]:
    return [body["lora_name"] for kind, body in fake.lora_calls if kind == "unload"]


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Waits for what the background retirement of a swapped-out version does."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_load_path_stages_a_checked_copy_and_loads_it(
    service: AdapterService, fake_engine: FakeEngine, store: Path, staging: Path
) -> None:
    folder = write_adapter(store / "alpha", name="alpha", num_layers=2)
    snapshot, created = await service.load_path("alpha")
    assert created and snapshot.versions[0].state is VersionState.READY
    engine_id = f"alpha--{expected_digest(folder)[:12]}"
    assert fake_engine.loras == {engine_id: str(staging / f"alpha--{expected_digest(folder)}")}
    target = service.acquire("alpha")
    assert target is not None
    assert target.target.engine_model == engine_id and target.target.version == "1"
    await target.__aexit__(None, None, None)


async def test_a_refused_folder_is_counted_and_reaches_no_engine(
    service: AdapterService, fake_engine: FakeEngine, store: Path
) -> None:
    write_adapter(store / "huge", name="huge", rank=32, num_layers=2)
    with pytest.raises(AdapterRejected):
        await service.load_path("huge")
    assert failures(service, "rank_too_large") == 1
    assert fake_engine.lora_calls == [] and service.registry.list() == []


async def test_concurrent_loads_of_the_same_content_load_it_once(
    service: AdapterService, fake_engine: FakeEngine, make_spec: SpecFactory
) -> None:
    spec = make_spec("alpha")
    results = await asyncio.gather(service.load(spec), service.load(spec))
    assert sorted(created for _, created in results) == [False, True]
    assert len(fake_engine.lora_calls) == 1


async def test_acquire_tells_unknown_models_from_unknown_versions(
    service: AdapterService, make_spec: SpecFactory
) -> None:
    await service.load(make_spec("alpha"))
    assert service.acquire("not-an-adapter") is None
    with pytest.raises(AdapterNotFound, match=r"versions: \['1'\]"):
        service.acquire("alpha@7")


async def test_unload_waits_for_requests_in_flight(
    service: AdapterService, fake_engine: FakeEngine, make_spec: SpecFactory
) -> None:
    await service.load(make_spec("alpha"))
    target = service.acquire("alpha")
    assert target is not None
    unloading = asyncio.create_task(service.unload("alpha"))
    await asyncio.sleep(0.2)
    assert not unloading.done() and unloads(fake_engine) == []
    assert service.public_names() == []
    with pytest.raises(AdapterNotFound, match="not being served"):
        service.acquire("alpha")
    await target.__aexit__(None, None, None)
    await unloading
    assert unloads(fake_engine) == [target.target.engine_model]
    assert service.registry.list() == []


async def test_a_drain_past_its_deadline_ends_the_requests_still_running(
    policy: AdapterPolicy, engine_url: str, staging: Path, fake_engine: FakeEngine,
    make_spec: SpecFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    service = make_service(policy, engine_url, staging, drain_timeout_s=0.05)
    try:
        await service.load(make_spec("alpha"))
        target = service.acquire("alpha")
        assert target is not None and target.cut is not None
        with caplog.at_level(logging.WARNING, "gateway.adapters.serving.service"):
            await service.unload("alpha")  # returns: the drain is bounded
        assert "still had 1 requests at its drain deadline" in caplog.text
        assert target.cut.is_set()  # the request sees it and ends with an error
        assert unloads(fake_engine) == [target.target.engine_model]
        await target.__aexit__(None, None, None)
        assert service.registry.list() == []
    finally:
        await service.engine.aclose()


async def _refuse(request: Request) -> Response:
    """vLLM's answer to a load it cannot do (here: a rank above its max_lora_rank)."""
    message = ("Call to add_lora method failed: Worker failed with error 'LoRA rank 8 is "
               "greater than max_lora_rank 4.'")
    return JSONResponse({"error": {"message": message, "type": "InternalServerError",
                                   "param": None, "code": 500}}, status_code=500)


REFUSING_ENGINE = Starlette(routes=[Route("/v1/load_lora_adapter", _refuse, methods=["POST"])])


async def test_an_engine_refusal_marks_the_version_failed(
    policy: AdapterPolicy, staging: Path, make_spec: SpecFactory
) -> None:
    async with serving(REFUSING_ENGINE) as url:
        service = make_service(policy, url, staging)
        with pytest.raises(UpstreamError, match="max_lora_rank 4"):
            await service.load(make_spec("alpha"))
        await service.engine.aclose()
    [version] = service.registry.list()[0].versions
    assert (version.state, version.failure_reason) == (VersionState.FAILED, "engine_error")
    assert failures(service, "engine_error") == 1
    with pytest.raises(AdapterNotFound, match="last load failed") as raised:
        service.acquire("alpha")
    # A user key reads that the load failed, not the engine's words or the store's paths.
    public = raised.value.envelope(internals=False)["error"]["message"]
    assert "last load failed" in public and "max_lora_rank" not in public


async def test_an_engine_that_already_holds_the_content_is_fine(
    service: AdapterService, fake_engine: FakeEngine, make_spec: SpecFactory
) -> None:
    spec = make_spec("alpha")
    fake_engine.loras[f"alpha--{spec.short_digest}"] = "loaded before a gateway restart"
    snapshot, _ = await service.load(spec)
    assert snapshot.versions[0].state is VersionState.READY


async def test_a_swap_back_keeps_the_staged_copy_the_new_version_uses(
    service: AdapterService, fake_engine: FakeEngine, make_spec: SpecFactory, staging: Path
) -> None:
    one, two = make_spec("alpha", seed=1), make_spec("alpha", seed=2, version="2")
    await service.load(one)
    held = service.acquire("alpha")  # keeps version 1 draining through both swaps
    assert held is not None
    await service.load(two, replace=True)
    await service.load(one, replace=True)
    await asyncio.sleep(0.1)
    assert unloads(fake_engine) == [f"alpha--{two.short_digest}"]
    await held.__aexit__(None, None, None)
    await eventually(lambda: versions(service, "alpha") == 1)
    await asyncio.sleep(0.1)  # a wrongly discarded copy would be gone by now
    assert unloads(fake_engine)[-1] == f"alpha--{one.short_digest}"
    assert list(fake_engine.loras) == [f"alpha--{one.short_digest}-2"]
    assert [p.name for p in staging.iterdir()] == [f"alpha--{one.digest}"]


async def test_load_store_loads_the_valid_and_reports_the_invalid(
    service: AdapterService, store: Path
) -> None:
    for name in ("alpha", "beta"):
        write_adapter(store / name, name=name, num_layers=2)
    write_adapter(store / "huge", name="huge", rank=32, num_layers=2)
    await service.load_store(scan(service.policy))
    assert [name for name, _ in service.public_names()] == ["alpha", "beta"]
    assert failures(service, "rank_too_large") == 1


async def test_watcher_events(
    service: AdapterService, fake_engine: FakeEngine, make_spec: SpecFactory, store: Path
) -> None:
    first = make_spec("alpha")
    folder = first.path
    await service.on_event(AdapterEvent(AdapterEventKind.ADDED, folder, first))
    changed = make_spec("alpha", seed=1, version="2")
    await service.on_event(AdapterEvent(AdapterEventKind.CHANGED, folder, changed, None, "alpha"))
    assert service.public_names() == [("alpha", f"alpha--{changed.short_digest}")]
    renamed = make_spec("beta", seed=1, version="2")
    await service.on_event(AdapterEvent(AdapterEventKind.CHANGED, folder, renamed, None, "alpha"))
    assert [name for name, _ in service.public_names()] == ["beta"]
    refusal = AdapterRejected(RejectReason.PICKLE_WEIGHTS, "holds pickles")
    await service.on_event(AdapterEvent(AdapterEventKind.CHANGED, folder, None, refusal, "beta"))
    assert [name for name, _ in service.public_names()] == ["beta"]
    assert failures(service, "pickle_weights") == 1
    await service.on_event(AdapterEvent(AdapterEventKind.REMOVED, folder, previous_name="beta"))
    await eventually(lambda: len(unloads(fake_engine)) == 3)
    assert service.public_names() == [] and fake_engine.loras == {}


async def test_reload_engine_after_an_engine_restart(
    service: AdapterService, fake_engine: FakeEngine, make_spec: SpecFactory, staging: Path
) -> None:
    await service.load(make_spec("alpha"))
    await service.load(make_spec("beta"))
    before = dict(fake_engine.loras)
    fake_engine.loras.clear()  # a restarted engine has no adapter
    shutil.rmtree(staging)
    await service.reload_engine()
    assert fake_engine.loras == before
    assert all(Path(path).is_dir() for path in before.values())


async def test_a_load_that_failed_while_the_engine_was_down_is_retried_after_it_restarts(
    service: AdapterService, fake_engine: FakeEngine, make_spec: SpecFactory
) -> None:
    await service.load(make_spec("alpha"))
    fake_engine.api_key = "not-yet"  # the engine is restarting: it refuses every load
    with pytest.raises(UpstreamError):
        await service.load(make_spec("alpha", seed=1, version="2"), replace=True)
    with pytest.raises(UpstreamError):
        await service.load(make_spec("beta"))
    fake_engine.api_key = None
    await service.reload_engine()  # the watcher never reports the unchanged folders again
    await eventually(lambda: service.public_names() == [
        ("alpha", f"alpha--{make_spec('alpha', seed=1).short_digest}"),
        ("beta", f"beta--{make_spec('beta').short_digest}")])
    snapshot = service.snapshot("alpha")
    assert snapshot.public_version == "2"


async def test_aclose_cancels_pending_retirements(
    service: AdapterService, fake_engine: FakeEngine, make_spec: SpecFactory
) -> None:
    await service.load(make_spec("alpha"))
    held = service.acquire("alpha")
    await service.load(make_spec("alpha", seed=1, version="2"), replace=True)
    await service.aclose()
    assert held is not None
    await held.__aexit__(None, None, None)  # the cancelled retirement no longer waits for this
    await asyncio.sleep(0.1)
    assert unloads(fake_engine) == []


async def test_reload_engine_goes_on_past_adapters_that_cannot_come_back(
    service: AdapterService, fake_engine: FakeEngine, make_spec: SpecFactory, staging: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    alpha, beta = make_spec("alpha"), make_spec("beta")
    await service.load(alpha)
    await service.load(beta)
    fake_engine.loras.clear()
    shutil.rmtree(staging)
    shutil.rmtree(alpha.path)  # nothing left to stage alpha from
    await service.reload_engine()
    assert list(fake_engine.loras) == [f"beta--{beta.short_digest}"]
    assert "alpha@1 could not be loaded into the restarted engine" in caplog.text
    async with serving(REFUSING_ENGINE) as url:
        refusing = EngineClient([url])
        publisher, service.publisher = service.publisher, RuntimePublisher(refusing)
        try:
            await service.reload_engine()
        finally:
            await refusing.aclose()
            service.publisher = publisher
    assert "beta@1 could not be loaded into the restarted engine" in caplog.text


async def test_files_vanishing_before_staging_fail_the_version_not_the_name(
    service: AdapterService, fake_engine: FakeEngine, store: Path
) -> None:
    folder = write_adapter(store / "vanishing", name="vanishing", version="1")
    spec = validate_folder(folder, service.policy)
    shutil.rmtree(folder)
    with pytest.raises(AdapterRejected) as caught:
        await service.load(spec)
    assert caught.value.reason is RejectReason.MISSING_FILES
    assert fake_engine.lora_calls == []
    snapshot = service.registry.get("vanishing")
    assert snapshot is not None and snapshot.versions[0].state == VersionState.FAILED
    again = write_adapter(store / "vanishing", name="vanishing", version="2", seed=3)
    reloaded, created = await service.load(validate_folder(again, service.policy), replace=True)
    assert created and reloaded.public_version == "2"
    assert [kind for kind, _ in fake_engine.lora_calls] == ["load"]


@contextlib.asynccontextmanager
async def _held_load(policy: AdapterPolicy, engine_url: str, staging: Path,
                     fake_engine: FakeEngine, make_spec: SpecFactory,
                     load_wait_s: float) -> AsyncIterator[AdapterService]:
    """A service whose load of ``alpha`` the engine holds until ``fake_engine.load_gate``."""
    service = make_service(policy, engine_url, staging, load_wait_s=load_wait_s)
    fake_engine.load_gate = asyncio.Event()
    loading = asyncio.create_task(service.load(make_spec("alpha")))
    try:
        while service.registry.loading("alpha") is None:
            await asyncio.sleep(0.01)
        yield service
    finally:
        fake_engine.load_gate.set()
        await loading
        await service.aclose()
        await service.engine.aclose()


@pytest.mark.parametrize("load_wait_s", [0.0, 0.05])
async def test_a_request_for_an_adapter_still_loading_is_told_to_retry_after_the_wait(
    policy: AdapterPolicy, engine_url: str, staging: Path, fake_engine: FakeEngine,
    make_spec: SpecFactory, load_wait_s: float,
) -> None:
    # The load is never let go here: it outlasts the wait.
    async with _held_load(policy, engine_url, staging, fake_engine, make_spec,
                          load_wait_s) as service:
        with pytest.raises(AdapterUnavailable, match="still loading"):
            await service.acquire_loaded("alpha")


async def test_a_request_waits_for_the_load_of_an_adapter_that_has_just_appeared(
    policy: AdapterPolicy, engine_url: str, staging: Path, fake_engine: FakeEngine,
    make_spec: SpecFactory,
) -> None:
    async with _held_load(policy, engine_url, staging, fake_engine, make_spec,
                          60.0) as service:  # 60 s: a guard only
        waiting = asyncio.create_task(service.acquire_loaded("alpha"))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # held while the engine is loading the adapter
        assert fake_engine.load_gate is not None
        fake_engine.load_gate.set()
        lease = await waiting
        assert lease is not None
        public = service.registry.public("alpha")
        assert public is not None and public.state is VersionState.READY
        async with lease as target:
            assert target.engine_model == public.engine_id


async def test_a_request_on_a_worker_still_scanning_its_store_waits_for_the_scan(
    policy: AdapterPolicy, engine_url: str, staging: Path, make_spec: SpecFactory,
) -> None:
    service = make_service(policy, engine_url, staging, load_wait_s=60.0)  # a guard only
    try:
        waiting = asyncio.create_task(service.acquire_loaded("alpha"))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # the store has not been scanned: alpha may be in it
        await service.load(make_spec("alpha"))
        service.store_loaded.set()
        lease = await waiting
        assert lease is not None
        async with lease as target:
            assert target.adapter == "alpha"
        assert await service.acquire_loaded("not-an-adapter") is None  # scanned: at once
    finally:
        await service.aclose()
        await service.engine.aclose()
