"""The adapter service: validated loads into the engine, hot swaps, drains and unloads.

Every way in (the admin API, the vLLM-compatible aliases, the start-up scan and the
watcher) goes through :meth:`AdapterService.load` and :meth:`AdapterService.unload`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Coroutine
from pathlib import Path
from typing import Any

from gateway.adapters.errors import (
    ENGINE_LOAD_FAILURE_REASONS,
    AdapterRejected,
    AdapterUnavailable,
    RejectReason,
)
from gateway.adapters.serving.claims import ClaimBoard
from gateway.adapters.serving.conductor import Choice, RolloutConductor
from gateway.adapters.serving.engines import EngineCopies
from gateway.adapters.serving.notices import RolloutNotices
from gateway.adapters.serving.publish import Publisher, RuntimePublisher
from gateway.adapters.serving.registry import PIN_SEPARATOR, AdapterRegistry
from gateway.adapters.serving.routing import Routing
from gateway.adapters.serving.snapshots import AdapterSnapshot
from gateway.adapters.serving.target import Outcome, TargetLease
from gateway.adapters.serving.versions import AdapterVersion, VersionState
from gateway.adapters.store.scan import ScanResult, scan
from gateway.adapters.store.validation import (
    AdapterPolicy,
    AdapterSpec,
    validate_adapter,
)
from gateway.adapters.store.watcher import AdapterEvent, AdapterEventKind
from gateway.engine.client import EngineClient
from gateway.errors import AdapterNotFound, GatewayError
from gateway.metrics import Recorder
from gateway.rollouts.book import RolloutBook
from gateway.rollouts.rollout import (
    Action,
    Rollout,
    RolloutPolicy,
)

log = logging.getLogger(__name__)

ENGINE_ERROR = ENGINE_LOAD_FAILURE_REASONS[0]
# A load that failed on the engine is tried again after the engine restarts: this many
# times, this far apart at first (doubling).
RETRY_ATTEMPTS = 4
RETRY_BACKOFF_S = 2.0


class AdapterService:
    def __init__(
        self,
        registry: AdapterRegistry,
        policy: AdapterPolicy,
        engine: EngineClient,
        recorder: Recorder,
        *,
        staging_root: Path,
        drain_timeout_s: float,
        load_wait_s: float = 0.0,
        schema_names: Callable[[], Collection[str]] | None = None,
        rollout_policy: RolloutPolicy | None = None,
        rollouts_file: Path | None = None,
        publisher: Publisher | None = None,
        claims: ClaimBoard | None = None,
        notices: RolloutNotices | None = None,
    ) -> None:
        self.registry = registry
        self.policy = policy
        self.engine = engine
        self.recorder = recorder
        self.staging_root = staging_root
        self.load_wait_s = load_wait_s
        # The named schemas a manifest's serving.response_schema may refer to.
        self.schema_names = schema_names
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # Set once the start-up scan of the store is loaded: until then a store adapter
        # may still be missing, and an admin load may race the scan.
        self.store_loaded = asyncio.Event()
        # The policy a new version of a served adapter is rolled out with (None: hot swap).
        self.rollout_policy = rollout_policy
        self.rollouts = RolloutBook(rollouts_file)
        # What the engines hold, the drains and the claims shared with other processes.
        self.copies = EngineCopies(registry, publisher or RuntimePublisher(engine), recorder,
                                   staging_root=staging_root, drain_timeout_s=drain_timeout_s,
                                   claims=claims)
        self.conductor = RolloutConductor(registry, self.rollouts, self.copies, recorder,
                                          policy, staging_root=staging_root,
                                          on_change=self._update_loaded_gauge, notices=notices)
        self.routing = Routing(registry, self.rollouts, recorder, self.conductor.report)

    @property
    def publisher(self) -> Publisher:
        """How versions reach the engines (runtime loads or a resolver store)."""
        return self.copies.publisher

    @publisher.setter
    def publisher(self, publisher: Publisher) -> None:
        self.copies.publisher = publisher

    # The rollout API, as the admin routes and the inference service call it.

    def rollout(self, name: str) -> Rollout:
        return self.conductor.rollout(name)

    def decide(self, name: str, action: Action, reason: str) -> Rollout:
        return self.conductor.decide(name, action, reason)

    def report(self, name: str, role: str, outcome: Outcome) -> None:
        self.conductor.report(name, role, outcome)

    async def keep_claims(self) -> None:
        await self.copies.keep_claims()

    async def load_path(
        self, requested: str, *, name: str | None = None, replace: bool = False,
        rollout: Choice = None,
    ) -> tuple[AdapterSnapshot, bool]:
        """Validates the folder a caller named and loads it; (snapshot, created)."""
        started = time.perf_counter()
        try:
            spec = await asyncio.to_thread(validate_adapter, requested, self.policy, name=name)
        except AdapterRejected as exc:
            self._count_failure(name or "", exc.reason)
            raise
        return await self.load(spec, replace=replace, started=started, rollout=rollout)

    async def load(
        self, spec: AdapterSpec, *, replace: bool = False, started: float | None = None,
        rollout: Choice = None, resume: Rollout | None = None,
    ) -> tuple[AdapterSnapshot, bool]:
        """Loads a validated adapter; (snapshot, created).

        A new version of a served name is published at once (a hot swap), or, when a
        rollout policy applies, becomes the candidate of a rollout (``resume``: carry on
        with that one, after a restart).
        """
        started = started or time.perf_counter()
        try:
            check_schema(spec, self.schema_names)
        except AdapterRejected:
            self._count_failure(spec.name, RejectReason.INVALID_MANIFEST)
            raise
        async with self._locks[spec.name]:
            plan = self.registry.begin_load(spec, replace=replace)
            if not plan.created:
                await self.registry.wait_settled(plan.version)
                return self.snapshot(spec.name), False
            self.copies.claim()
            policy = resume.policy if resume else self._rollout_policy(spec, rollout)
            await self._load_version(plan.version, started, policy, resume)
        return self.snapshot(spec.name), True

    def _rollout_policy(self, spec: AdapterSpec, choice: Choice) -> RolloutPolicy | None:
        if isinstance(choice, RolloutPolicy):
            return choice
        if choice is None:
            choice = spec.rollout if spec.rollout is not None else self.rollout_policy
            if isinstance(choice, RolloutPolicy) or choice is None:
                return choice
        return (self.rollout_policy or RolloutPolicy()) if choice else None

    async def unload(self, name: str) -> AdapterSnapshot:
        """Stops serving ``name``: new requests get 404, running ones finish, then it unloads."""
        self.snapshot(name)  # unknown names get 404 before a lock is made for them
        async with self._locks[name]:
            before = self.snapshot(name)
            self.conductor.abort(name, "the adapter was removed")
            versions = self.registry.remove(name)
        self._update_loaded_gauge()
        await asyncio.gather(*(self.copies.retire(v) for v in versions))
        # Only now: requests still running when it was removed record under its label.
        if name not in self.registry.names():
            self.recorder.adapter_removed(name)
            lock = self._locks.get(name)
            if lock is not None and not lock.locked():
                del self._locks[name]
        log.info("adapter %s removed (%d versions)", name, len(versions))
        return before

    def acquire(self, model: str, caller: str = "") -> TargetLease | None:
        """See :meth:`Routing.acquire`."""
        return self.routing.acquire(model, caller)

    async def acquire_loaded(self, model: str, caller: str = "") -> TargetLease | None:
        """:meth:`acquire`, waiting up to ``load_wait_s`` for an adapter still on its way.

        A worker that has just started may not have scanned the store yet, and an adapter
        that has just appeared has a version loading and none serving: their requests
        wait for the scan and the load rather than being told the adapter does not exist
        or to retry. A load that fails or outlasts the wait answers as :meth:`acquire`.
        """
        if self.load_wait_s <= 0:
            return self.acquire(model, caller)
        name = model.partition(PIN_SEPARATOR)[0]
        deadline = time.monotonic() + self.load_wait_s
        if not self.store_loaded.is_set() and self.registry.get(name) is None:
            await _until(self.store_loaded.wait(), deadline)
        try:
            return self.acquire(model, caller)
        except AdapterUnavailable:
            loading = self.registry.loading(name)
            if loading is None:
                raise
            await _until(loading.settled.wait(), deadline)
            return self.acquire(model, caller)

    def shadow(self, model: str, draw: float) -> TargetLease | None:
        """See :meth:`Routing.shadow`."""
        return self.routing.shadow(model, draw)

    def public_names(self) -> list[tuple[str, str]]:
        listed = []
        for name in self.registry.names():
            version = self.registry.public(name)
            if version is not None and version.serving:
                listed.append((name, version.engine_id))
        return listed

    async def load_store(self, result: ScanResult | None = None) -> None:
        """Registers and loads every valid adapter in the roots; reports the invalid ones."""
        if result is None:
            result = await asyncio.to_thread(scan, self.policy)
        for bad in result.invalid:
            log.error("adapter folder %s skipped: %s", bad.folder, bad.message)
            self._count_failure("", bad.reason)
        resumed = await self.conductor.resume(self.load)
        for spec in result.valid:
            if spec.digest in resumed.get(spec.name, ()):
                continue  # loaded with its rollout
            for planned, choice in await self.conductor.unless_rejected(spec):
                await self._load_logged(planned, spec.path, choice)

    async def reload_engine(self) -> None:
        """After the engine restarted: loads every serving version again (it lost them),
        and retries, with backoff, the loads that failed on the engine meanwhile."""
        for failed in self.registry.failed_on_engine(ENGINE_LOAD_FAILURE_REASONS):
            self.copies.background(self._retry(failed))
        if self.publisher.lazy:
            return  # the engines load from the resolver store on first use
        for name in self.registry.names():
            snapshot = self.registry.get(name)
            for version in snapshot.versions if snapshot else ():
                if version.state in (VersionState.READY, VersionState.DRAINING):
                    await self.copies.reload(version.engine_id)

    async def _retry(self, version: AdapterVersion) -> None:
        """Loads again a version whose load failed on the engine (a crash, a restart), as the
        watcher never reports its unchanged folder again: ``RETRY_ATTEMPTS`` tries."""
        delay = RETRY_BACKOFF_S
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            async with self._locks[version.name]:
                if not self.registry.retry(version):
                    return  # superseded meanwhile (a newer load, a removal)
                log.info("adapter %s@%s: loading again after the engine restarted (try %d)",
                         version.name, version.version, attempt)
                self.copies.claim()
                try:
                    await self._load_version(version, time.perf_counter())
                    return
                except GatewayError:
                    pass
            await asyncio.sleep(delay)
            delay *= 2

    async def on_event(self, event: AdapterEvent) -> None:
        """Applies one change the watcher saw in the store."""
        if event.error is not None:
            log.error("adapter folder %s refused: %s", event.folder, event.error.message)
            self._count_failure(event.previous_name or "", event.error.reason)
            return
        if event.kind is AdapterEventKind.REMOVED:
            if event.previous_name and event.previous_name in self.registry.names():
                await self.unload(event.previous_name)
            return
        if event.spec is None:
            return
        if event.previous_name and event.previous_name != event.spec.name:
            await self.unload(event.previous_name)
        for planned, choice in await self.conductor.unless_rejected(event.spec):
            await self._load_logged(planned, event.folder, choice)

    async def _load_logged(self, spec: AdapterSpec, folder: Path, choice: Choice) -> None:
        """Loads for the store (start-up, watcher): one bad adapter never stops the others."""
        try:
            await self.load(spec, replace=True, rollout=choice)
        except Exception as exc:
            known = isinstance(exc, GatewayError)
            log.error("adapter %s from %s failed to load: %s", spec.name, folder,
                      getattr(exc, "message", exc), exc_info=not known)

    async def aclose(self) -> None:
        self.rollouts.save()  # the numbers since the last write
        await self.conductor.notices_posted()  # the last word for replicas yet to start
        await self.copies.aclose()

    async def _load_version(
        self, version: AdapterVersion, started: float, rollout: RolloutPolicy | None = None,
        resume: Rollout | None = None,
    ) -> None:
        spec = version.spec
        staged: Path | None = None
        try:
            staged = await self.copies.stage(spec)
            await self.publisher.publish(version.engine_id, staged)
        except BaseException as exc:
            # Whatever went wrong (cancellation included), the version must not stay
            # "loading": that would block the name for good.
            reason = exc.reason.value if isinstance(exc, AdapterRejected) else ENGINE_ERROR
            message = exc.message if isinstance(exc, GatewayError) else repr(exc)
            self.registry.mark_failed(version, reason, message)
            self.copies.claim()
            if staged is not None:  # the publish may have left something behind
                await self.copies.withdraw_unclaimed(version.engine_id)
            self._count_failure(spec.name, reason)
            log.error("adapter %s@%s (digest %s) failed to load: %s", spec.name, spec.version,
                      spec.short_digest, message)
            raise
        seconds = time.perf_counter() - started
        if not self.registry.mark_ready(version, seconds):
            # Removed while it was loading: the engines have it, and nothing will use it.
            await self.copies.retire(version)
            return
        self.recorder.adapter_loaded(spec.name, seconds)
        stable = self.registry.public(spec.name)
        if rollout is not None and stable is not None:
            self.registry.hold(version)
            self.conductor.start(stable, version, rollout, resume)
            return
        old = self.registry.publish(version)
        self._update_loaded_gauge()
        log.info("adapter %s@%s (digest %s) live as %s in %.2f s", spec.name, spec.version,
                 spec.short_digest, version.engine_id, seconds)
        if old is not None:
            self.copies.background(self.copies.retire(old))

    def snapshot(self, name: str) -> AdapterSnapshot:
        """One adapter's listing; 404 for an unknown name."""
        snapshot = self.registry.get(name)
        if snapshot is None:
            raise AdapterNotFound(f"No adapter named {name!r}. GET /v1/adapters lists them.",
                                  param="name")
        return snapshot

    def _count_failure(self, name: str, reason: RejectReason | str) -> None:
        self.recorder.adapter_load_failed(name, str(reason))

    def _update_loaded_gauge(self) -> None:
        self.recorder.adapters_served(len(self.public_names()))


async def _until(waiting: Coroutine[Any, Any, Any], deadline: float) -> None:
    """Awaits ``waiting`` until ``deadline`` (monotonic), then gives up quietly."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(waiting, max(0.0, deadline - time.monotonic()))


def check_schema(spec: AdapterSpec, schema_names: Callable[[], Collection[str]] | None
                 ) -> None:
    """A manifest's default schema must exist, or every request to it would fail."""
    wanted = spec.serving.response_schema
    if wanted is None or schema_names is None or wanted in schema_names():
        return
    raise AdapterRejected(
        RejectReason.INVALID_MANIFEST,
        f"adapter {spec.name!r} names serving.response_schema {wanted!r}, which is not a "
        f"registered schema; add config/schemas/{wanted}.json or fix adapter.yaml",
        path=spec.path,
    )
