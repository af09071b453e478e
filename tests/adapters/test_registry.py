from __future__ import annotations

import asyncio

import pytest

from gateway.adapters.errors import (
    AdapterConflict,
    AdapterNotFound,
    AdapterStateError,
    AdapterUnavailable,
)
from gateway.adapters.serving.registry import AdapterRegistry
from gateway.adapters.serving.versions import AdapterVersion, VersionState
from gateway.adapters.store.validation import AdapterSpec
from tests.adapters.conftest import SpecFactory

pytestmark = pytest.mark.anyio


def state(version: AdapterVersion) -> VersionState:
    """Read afresh (mypy would otherwise keep an earlier assertion's narrowing)."""
    return version.state


def serve(registry: AdapterRegistry, spec: AdapterSpec, *, replace: bool = False) -> AdapterVersion:
    """Drive one load the way the service does, without an engine."""
    plan = registry.begin_load(spec, replace=replace)
    assert plan.created
    assert registry.mark_ready(plan.version, load_seconds=0.5)
    registry.publish(plan.version)
    return plan.version


def test_load_then_serve(make_spec: SpecFactory) -> None:
    registry = AdapterRegistry()
    spec = make_spec("router")
    plan = registry.begin_load(spec)
    assert plan.created and plan.replaces is None
    assert plan.version.state is VersionState.LOADING
    assert plan.version.engine_id == f"router--{spec.digest[:12]}"
    with pytest.raises(AdapterUnavailable):
        registry.resolve("router")
    assert registry.names() == []
    registry.mark_ready(plan.version, load_seconds=1.5)
    assert registry.publish(plan.version) is None
    lease = registry.resolve("router")
    assert (lease.name, lease.version, lease.engine_id) == ("router", "1", plan.version.engine_id)
    assert plan.version.in_flight == 1
    lease.release()
    lease.release()  # idempotent
    assert (plan.version.in_flight, plan.version.requests_served) == (0, 1)
    assert registry.names() == ["router"]
    assert plan.version.load_seconds == 1.5


def test_unknown_names(make_spec: SpecFactory) -> None:
    registry = AdapterRegistry()
    serve(registry, make_spec("router"))
    for model in ("nope", "nope@1", "router@2", "router@", "@1"):
        with pytest.raises(AdapterNotFound):
            registry.resolve(model)


def test_same_content_is_a_no_op(make_spec: SpecFactory) -> None:
    registry = AdapterRegistry()
    spec = make_spec("router")
    version = serve(registry, spec)
    again = registry.begin_load(spec)
    assert not again.created
    assert again.version is version


async def test_concurrent_loads_of_the_same_content_share_one_version(
    make_spec: SpecFactory,
) -> None:
    registry = AdapterRegistry()
    spec = make_spec("router")
    first = registry.begin_load(spec)
    second = registry.begin_load(spec)
    assert second.version is first.version and not second.created
    waiter = asyncio.create_task(registry.wait_settled(second.version))
    await asyncio.sleep(0)
    assert not waiter.done()
    registry.mark_ready(first.version)
    assert await waiter is VersionState.READY


def test_other_content_needs_replace(make_spec: SpecFactory) -> None:
    registry = AdapterRegistry()
    serve(registry, make_spec("router", seed=0))
    with pytest.raises(AdapterConflict) as info:
        registry.begin_load(make_spec("router", seed=1))
    assert info.value.status_code == 409
    assert "replace" in info.value.message


def test_one_load_at_a_time_per_name(make_spec: SpecFactory) -> None:
    registry = AdapterRegistry()
    registry.begin_load(make_spec("router", seed=0))
    with pytest.raises(AdapterConflict, match="loading"):
        registry.begin_load(make_spec("router", seed=1), replace=True)


async def test_hot_swap_drains_the_old_version(make_spec: SpecFactory) -> None:
    registry = AdapterRegistry()
    old = serve(registry, make_spec("router", seed=0, version="1"))
    busy = registry.resolve("router")
    plan = registry.begin_load(make_spec("router", seed=1, version="2"), replace=True)
    assert plan.replaces is old
    registry.mark_ready(plan.version)
    assert registry.publish(plan.version) is old
    assert old.state is VersionState.DRAINING
    with registry.resolve("router") as fresh:
        assert fresh.engine_id == plan.version.engine_id
    # Nothing new enters a draining version, pins included: its drain only ever shrinks.
    with pytest.raises(AdapterNotFound, match=r"versions: \['2'\]"):
        registry.resolve("router@1")
    assert not await registry.wait_drained(old, timeout=0.05)
    waiter = asyncio.create_task(registry.wait_drained(old, timeout=5))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    busy.release()
    assert await waiter
    assert state(old) is VersionState.UNLOADED
    with pytest.raises(AdapterNotFound):
        registry.resolve("router@1")
    registry.forget(old)
    assert registry.find(old.engine_id) is None
    assert [v.version for v in registry.get("router").versions] == ["2"]  # type: ignore[union-attr]


async def test_requests_never_miss_during_swaps(make_spec: SpecFactory) -> None:
    registry = AdapterRegistry()
    specs = [make_spec("router", seed=i, version=str(i)) for i in range(4)]
    serve(registry, specs[0])
    swapped = asyncio.Event()
    served: list[tuple[str, VersionState]] = []

    async def client() -> None:
        while not swapped.is_set():
            async with registry.resolve("router") as lease:
                state = registry.find(lease.engine_id).state  # type: ignore[union-attr]
                served.append((lease.spec.digest, state))
                await asyncio.sleep(0.0005)

    async def swapper() -> None:
        for spec in specs[1:]:
            await asyncio.sleep(0.01)  # requests on the current version meanwhile
            plan = registry.begin_load(spec, replace=True)
            await asyncio.sleep(0.002)  # the engine loading
            registry.mark_ready(plan.version)
            old = registry.publish(plan.version)
            assert old is not None
            assert await registry.wait_drained(old, timeout=5)
            registry.forget(old)
        await asyncio.sleep(0.01)
        swapped.set()

    await asyncio.gather(*(client() for _ in range(8)), swapper())
    assert {digest for digest, _ in served} == {s.digest for s in specs}
    assert {state for _, state in served} == {VersionState.READY}  # never a draining one
    final = registry.get("router")
    assert final is not None
    assert [(v.version, v.state) for v in final.versions] == [("3", VersionState.READY)]


def test_failed_load_is_listed_and_old_version_keeps_serving(make_spec: SpecFactory) -> None:
    registry = AdapterRegistry()
    old = serve(registry, make_spec("router", seed=0))
    plan = registry.begin_load(make_spec("router", seed=1, version="2"), replace=True)
    registry.mark_failed(plan.version, "engine_error", "out of LoRA slots")
    with registry.resolve("router") as lease:
        assert lease.engine_id == old.engine_id
    snapshot = registry.get("router")
    assert snapshot is not None
    failed = [v for v in snapshot.versions if v.state is VersionState.FAILED]
    assert failed[0].failure_reason == "engine_error"
    registry.begin_load(make_spec("router", seed=2, version="3"), replace=True)
    states = [v.state for v in registry.get("router").versions]  # type: ignore[union-attr]
    assert VersionState.FAILED not in states  # a new attempt supersedes the failure


def test_first_load_failing_leaves_a_clear_not_found(make_spec: SpecFactory) -> None:
    registry = AdapterRegistry()
    plan = registry.begin_load(make_spec("router"))
    registry.mark_failed(plan.version, "engine_error", "engine said no")
    with pytest.raises(AdapterNotFound, match="engine said no"):
        registry.resolve("router")


async def test_remove(make_spec: SpecFactory) -> None:
    registry = AdapterRegistry()
    version = serve(registry, make_spec("router"))
    pinned = registry.resolve("router@1")
    assert registry.remove("router") == [version]
    with pytest.raises(AdapterNotFound):
        registry.resolve("router")
    assert registry.names() == []
    pinned.release()
    assert await registry.wait_drained(version, timeout=1)
    registry.forget(version)
    assert registry.get("router") is None
    with pytest.raises(AdapterNotFound):
        registry.remove("router")


def test_remove_while_loading_cancels_the_load(make_spec: SpecFactory) -> None:
    registry = AdapterRegistry()
    plan = registry.begin_load(make_spec("router"))
    assert registry.remove("router") == []
    with pytest.raises(AdapterNotFound):
        registry.resolve("router@1")
    assert registry.mark_ready(plan.version) is False  # the caller unloads it
    with pytest.raises(AdapterStateError):
        registry.publish(plan.version)


def test_manifest_edit_updates_serving_defaults_in_place(make_spec: SpecFactory) -> None:
    registry = AdapterRegistry()
    version = serve(registry, make_spec("router", serving={"system_prompt": "one"}))
    held = registry.resolve("router")
    edited = make_spec("router", version="1.1", serving={"system_prompt": "two"})
    plan = registry.begin_load(edited)
    assert plan.version is version and not plan.created
    assert held.spec.serving.system_prompt == "one"  # a running request keeps its view
    with registry.resolve("router") as lease:
        assert lease.spec.serving.system_prompt == "two"
        assert lease.version == "1.1"
    assert registry.get("router").serving.system_prompt == "two"  # type: ignore[union-attr]


def test_reused_version_label_with_new_content_gets_a_suffix(make_spec: SpecFactory) -> None:
    registry = AdapterRegistry()
    serve(registry, make_spec("router", seed=0, version="1"))
    spec = make_spec("router", seed=1, version="1")
    plan = registry.begin_load(spec, replace=True)
    assert plan.version.version == f"1+{spec.digest[:8]}"


def test_reverting_while_the_old_copy_drains_gets_a_fresh_engine_id(
    make_spec: SpecFactory,
) -> None:
    registry = AdapterRegistry()
    first_spec = make_spec("router", seed=0, version="1")
    first = serve(registry, first_spec)
    held = registry.resolve("router")
    serve(registry, make_spec("router", seed=1, version="2"), replace=True)
    assert first.state is VersionState.DRAINING
    revert = serve(registry, first_spec, replace=True)
    assert revert is not first
    assert revert.engine_id == first.engine_id + "-2"
    assert registry.find(revert.engine_id) is revert
    assert registry.resolve("router@1").engine_id == revert.engine_id  # public wins
    held.release()


def test_state_errors(make_spec: SpecFactory) -> None:
    registry = AdapterRegistry()
    plan = registry.begin_load(make_spec("router"))
    with pytest.raises(AdapterStateError):
        registry.publish(plan.version)
    registry.mark_ready(plan.version)
    with pytest.raises(AdapterStateError):
        registry.mark_ready(plan.version)
    with pytest.raises(AdapterStateError):
        registry.forget(plan.version)
    with pytest.raises(AdapterStateError):
        registry.retire(plan.version)


async def test_wait_drained_needs_a_draining_version(make_spec: SpecFactory) -> None:
    registry = AdapterRegistry()
    version = serve(registry, make_spec("router"))
    with pytest.raises(AdapterStateError):
        await registry.wait_drained(version, timeout=1)


def test_retire_closes_despite_requests_in_flight(make_spec: SpecFactory) -> None:
    registry = AdapterRegistry()
    old = serve(registry, make_spec("router", seed=0))
    registry.resolve("router")
    serve(registry, make_spec("router", seed=1, version="2"), replace=True)
    assert registry.retire(old) == 1
    assert state(old) is VersionState.UNLOADED


def test_listing(make_spec: SpecFactory) -> None:
    registry = AdapterRegistry()
    spec = make_spec("router", description="Routes tickets.")
    version = serve(registry, spec)
    make_spec("zeta")
    registry.begin_load(make_spec("zeta"))
    listing = registry.list()
    assert [a.name for a in listing] == ["router", "zeta"]
    router = listing[0]
    assert router.public_version == "1"
    assert router.description == "Routes tickets."
    (only,) = router.versions
    assert only.public and only.state is VersionState.READY
    assert only.engine_id == version.engine_id
    assert only.target_modules == ("q_proj", "v_proj")
    assert listing[1].public_version is None
    assert listing[1].versions[0].state is VersionState.LOADING
    assert router.model_dump(mode="json")["versions"][0]["state"] == "ready"
