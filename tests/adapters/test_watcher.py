from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters.errors import RejectReason
from gateway.adapters.store.validation import AdapterPolicy
from gateway.adapters.store.watcher import AdapterEvent, AdapterEventKind, AdapterWatcher
from tests.adapter_factory import write_adapter

pytestmark = pytest.mark.anyio

ADDED, CHANGED, REMOVED = AdapterEventKind.ADDED, AdapterEventKind.CHANGED, AdapterEventKind.REMOVED


class Recorder:
    """An event handler that keeps what it was given, for the test to await."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[AdapterEvent] = asyncio.Queue()

    async def __call__(self, event: AdapterEvent) -> None:
        await self.events.put(event)

    async def next(self, timeout: float = 10.0) -> AdapterEvent:
        return await asyncio.wait_for(self.events.get(), timeout)


def watcher(policy: AdapterPolicy) -> AdapterWatcher:
    return AdapterWatcher(policy, debounce_ms=100, step_ms=20, settle_s=0.02, rescan_ms=300)


def small(path: Path, name: str, **kw: Any) -> Path:
    return write_adapter(path, name=name, num_layers=2, **kw)


async def test_initial_scan_is_the_baseline(store: Path, policy: AdapterPolicy) -> None:
    small(store / "a", "a")
    (store / "broken").mkdir()
    (store / "broken" / "adapter_config.json").write_text("{}")
    w = watcher(policy)
    result = w.initial_scan()
    assert [s.name for s in result.valid] == ["a"]
    assert [i.reason for i in result.invalid] == [RejectReason.MISSING_FILES]
    assert await w.refresh(Recorder()) == []


async def test_added_changed_removed(store: Path, policy: AdapterPolicy) -> None:
    w = watcher(policy)
    w.initial_scan()
    record = Recorder()
    small(store / "a", "a")
    (added,) = await w.refresh(record)
    assert added.kind is ADDED and added.spec is not None and added.spec.name == "a"
    assert await record.next() is added

    small(store / "a", "a", seed=1)
    (changed,) = await w.refresh(record)
    assert changed.kind is CHANGED and changed.previous_name == "a"
    assert changed.spec is not None and changed.spec.digest != added.spec.digest

    (store / "a" / "adapter.yaml").touch()
    assert await w.refresh(record) == []  # same content: nothing to report

    shutil.rmtree(store / "a")
    (removed,) = await w.refresh(record)
    assert removed.kind is REMOVED and removed.previous_name == "a" and removed.spec is None


async def test_manifest_only_edit_is_a_change(store: Path, policy: AdapterPolicy) -> None:
    small(store / "a", "a", serving={"system_prompt": "one"})
    w = watcher(policy)
    w.initial_scan()
    small(store / "a", "a", serving={"system_prompt": "two"})
    (event,) = await w.refresh(Recorder())
    assert event.kind is CHANGED
    assert event.spec is not None and event.spec.serving.system_prompt == "two"


async def test_incomplete_folder_is_reported_once_then_picked_up(
    store: Path, policy: AdapterPolicy, tmp_path: Path
) -> None:
    small(tmp_path / "source", "a")
    w = watcher(policy)
    w.initial_scan()
    (store / "a").mkdir()
    assert await w.refresh(Recorder()) == []  # empty: the copy has not started
    shutil.copy(tmp_path / "source" / "adapter_config.json", store / "a")
    (refused,) = await w.refresh(Recorder())
    assert refused.error is not None and refused.error.reason is RejectReason.MISSING_FILES
    assert await w.refresh(Recorder()) == []  # no retry loop while nothing changes
    shutil.copy(tmp_path / "source" / "adapter_model.safetensors", store / "a")
    shutil.copy(tmp_path / "source" / "adapter.yaml", store / "a")
    (ready,) = await w.refresh(Recorder())
    assert ready.kind is CHANGED and ready.spec is not None and ready.error is None


async def test_a_folder_still_being_written_waits(store: Path, policy: AdapterPolicy) -> None:
    w = AdapterWatcher(policy, settle_s=0.2)
    w.initial_scan()
    small(store / "a", "a")
    refresh = asyncio.create_task(w.refresh(Recorder()))
    await asyncio.sleep(0.05)
    with (store / "a" / "adapter.yaml").open("a") as handle:
        handle.write("# still writing\n")
    assert await refresh == []
    (event,) = await w.refresh(Recorder())
    assert event.kind is ADDED and event.spec is not None


async def test_broken_update_keeps_the_name_for_removal(store: Path, policy: AdapterPolicy) -> None:
    small(store / "a", "a")
    w = watcher(policy)
    w.initial_scan()
    weights = store / "a" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    (broken,) = await w.refresh(Recorder())
    assert broken.kind is CHANGED and broken.spec is None
    assert broken.error is not None and broken.error.reason is RejectReason.CORRUPT_WEIGHTS
    assert broken.previous_name == "a"
    shutil.rmtree(store / "a")
    (removed,) = await w.refresh(Recorder())
    assert removed.previous_name == "a"  # still served from here until removed


async def test_a_second_folder_cannot_take_a_served_name(
    store: Path, policy: AdapterPolicy
) -> None:
    small(store / "a", "router")
    w = watcher(policy)
    w.initial_scan()
    small(store / "b", "router", seed=1)
    (event,) = await w.refresh(Recorder())
    assert event.error is not None and event.error.reason is RejectReason.DUPLICATE_NAME


async def test_a_failing_handler_does_not_stop_reporting(
    store: Path, policy: AdapterPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    async def explode(event: AdapterEvent) -> None:
        raise RuntimeError("handler bug")

    w = watcher(policy)
    w.initial_scan()
    small(store / "a", "a")
    assert len(await w.refresh(explode)) == 1
    assert "handler failed" in caplog.text
    small(store / "b", "b")
    assert len(await w.refresh(explode)) == 1


async def test_run_reports_file_system_changes(
    store: Path, policy: AdapterPolicy, tmp_path: Path
) -> None:
    small(tmp_path / "source", "a")
    w = watcher(policy)
    w.initial_scan()
    record = Recorder()
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(record, stop_event=stop))
    try:
        await asyncio.sleep(0.1)
        # Copy in the usual safe way: into a hidden folder, then rename into place.
        shutil.copytree(tmp_path / "source", store / ".a.tmp")
        (store / ".a.tmp").rename(store / "a")
        added = await record.next()
        assert (added.kind, added.folder) == (ADDED, store / "a")

        small(store / "a", "a", seed=7)
        changed = await record.next()
        assert changed.kind is CHANGED and changed.spec is not None

        shutil.rmtree(store / "a")
        removed = await record.next()
        assert removed.kind is REMOVED and removed.previous_name == "a"
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert record.events.empty()


async def test_run_without_any_root_returns(tmp_path: Path, policy: AdapterPolicy) -> None:
    absent = AdapterPolicy.build([tmp_path / "absent"], policy.base, 16)
    await asyncio.wait_for(watcher(absent).run(Recorder()), 1)
