"""What gateway processes share through folders: the resolver store and the claims.

Each test reproduces a way one process used to break another's: a failed probe or a
concurrent publish deleting a folder others serve, a claim judged by the reader's clock,
a withdraw left half done by a crash.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.adapters.serving.claims import ClaimBoard
from gateway.adapters.serving.publish import ResolverPublisher
from gateway.adapters.serving.registry import AdapterRegistry
from gateway.adapters.serving.service import AdapterService
from gateway.adapters.serving.staging import stage_adapter, staged_path
from gateway.adapters.store.validation import AdapterPolicy
from gateway.engine.client import EngineClient
from gateway.errors import GatewayError
from gateway.wiring.metrics import gateway_metrics
from tests.adapters.conftest import SpecFactory
from tests.fakes.engine import FakeAnswer, FakeEngine

pytestmark = pytest.mark.anyio

BASE = "/models/base"


def _publisher(url: str, folder: Path) -> ResolverPublisher:
    return ResolverPublisher(EngineClient([url]), folder, BASE)


def _intact(folder: Path) -> bool:
    return all((folder / name).is_file() for name in
               ("adapter_config.json", "adapter_model.safetensors", "published.json"))


async def test_a_failed_probe_leaves_a_folder_another_replica_serves(
    policy: AdapterPolicy, make_spec: SpecFactory, engine_url: str, fake_engine: FakeEngine,
    tmp_path: Path,
) -> None:
    spec = make_spec("foo")
    resolver, claims = tmp_path / "resolver", tmp_path / "resolver" / ".claims"
    staged = stage_adapter(spec, tmp_path / "staging-b")
    engine_id = f"foo--{spec.short_digest}"
    fake_engine.resolver_dir, fake_engine.resolver_base = resolver, BASE
    # Replica B publishes foo and serves it; its claim says so.
    publisher_b = _publisher(engine_url, resolver)
    await publisher_b.publish(engine_id, staged)
    await publisher_b.engine.aclose()
    board_b = ClaimBoard(claims)
    board_b.claim([engine_id])
    # Replica A starts while the pool is overloaded: its one-token probe gets a 503.
    fake_engine.answers.append(FakeAnswer("busy", status=503))
    engine = EngineClient([engine_url])
    service_a = AdapterService(
        AdapterRegistry(), policy, engine, gateway_metrics().record,
        staging_root=tmp_path / "staging-a", drain_timeout_s=5.0,
        publisher=ResolverPublisher(engine, resolver, BASE), claims=ClaimBoard(claims))
    with pytest.raises(GatewayError):
        await service_a.load(spec)
    assert _intact(resolver / engine_id), "replica A deleted the folder replica B serves"
    await service_a.aclose()
    await service_a.engine.aclose()


async def test_a_failed_probe_withdraws_a_folder_nobody_else_claims(
    policy: AdapterPolicy, make_spec: SpecFactory, engine_url: str, fake_engine: FakeEngine,
    tmp_path: Path,
) -> None:
    spec = make_spec("foo")
    resolver = tmp_path / "resolver"
    fake_engine.resolver_dir, fake_engine.resolver_base = resolver, BASE
    fake_engine.answers.append(FakeAnswer("busy", status=503))
    engine = EngineClient([engine_url])
    service = AdapterService(
        AdapterRegistry(), policy, engine, gateway_metrics().record,
        staging_root=tmp_path / "staging", drain_timeout_s=5.0,
        publisher=ResolverPublisher(engine, resolver, BASE),
        claims=ClaimBoard(resolver / ".claims"))
    with pytest.raises(GatewayError):
        await service.load(spec)
    assert not (resolver / f"foo--{spec.short_digest}").exists()
    await service.aclose()
    await service.engine.aclose()


def _twice_at_once(write: Callable[[], object], target: Path) -> None:
    """Runs ``write`` in two threads at once, five times over; whoever finishes first
    has placed a copy that others may read from then on: it must be the one that stays."""
    for attempt in range(5):
        if target.exists():
            os.rename(target, target.parent / f"old-{attempt}")
        start = threading.Barrier(2)
        finished: list[int] = []

        def run(start: threading.Barrier = start, finished: list[int] = finished) -> None:
            start.wait()
            write()
            finished.append(os.stat(target).st_ino)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(finished) == 2
        assert finished[0] == os.stat(target).st_ino, (
            "the second writer replaced the copy the first had already placed")


def test_two_replicas_publishing_one_id_at_once_keep_the_first_copy(
    make_spec: SpecFactory, tmp_path: Path
) -> None:
    spec = make_spec("foo")
    staged = stage_adapter(spec, tmp_path / "staging")
    engine_id = f"foo--{spec.short_digest}"
    resolver = tmp_path / "resolver"
    publisher = _publisher("http://unused", resolver)
    _twice_at_once(lambda: publisher._write(engine_id, staged), resolver / engine_id)
    assert _intact(resolver / engine_id)


def test_two_workers_staging_one_version_at_once_keep_the_first_copy(
    make_spec: SpecFactory, tmp_path: Path
) -> None:
    spec = make_spec("foo")
    staging = tmp_path / "staging"
    _twice_at_once(lambda: stage_adapter(spec, staging), staged_path(spec, staging))


def test_a_withdraw_after_a_crash_mid_withdraw_still_removes_the_folder(
    make_spec: SpecFactory, tmp_path: Path
) -> None:
    spec = make_spec("foo")
    engine_id = f"foo--{spec.short_digest}"
    resolver = tmp_path / "resolver"
    publisher = _publisher("http://unused", resolver)
    publisher._write(engine_id, stage_adapter(spec, tmp_path / "staging"))
    # A crash between the rename and the delete left this behind.
    leftover = resolver / f".withdrawn-{engine_id}"
    leftover.mkdir()
    (leftover / "adapter_model.safetensors").write_bytes(b"x")
    publisher._remove(engine_id)
    assert not (resolver / engine_id).exists()
    assert not leftover.exists()


def test_a_claim_is_fresh_by_the_shared_folder_s_clock_not_the_writer_s(
    tmp_path: Path
) -> None:
    folder = tmp_path / "claims"
    other = ClaimBoard(folder)
    other.claim(["foo--abc"])
    # The other replica's clock runs 10 minutes behind: its written_at is far in the past,
    # while the file it wrote a moment ago is fresh.
    data = json.loads(other.path.read_text())
    data["written_at"] = time.time() - 600
    other.path.write_text(json.dumps(data))
    assert ClaimBoard(folder, refresh_s=1.0).claimed_elsewhere("foo--abc")


def test_a_claim_not_rewritten_for_longer_than_its_margin_is_stale(tmp_path: Path) -> None:
    folder = tmp_path / "claims"
    other = ClaimBoard(folder)
    other.claim(["foo--abc"])
    old = time.time() - 600
    os.utime(other.path, (old, old))
    assert not ClaimBoard(folder, refresh_s=1.0).claimed_elsewhere("foo--abc")
