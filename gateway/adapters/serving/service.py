"""The adapter service: validated loads into the engine, hot swaps, drains and unloads.

Every way in (the admin API, the vLLM-compatible aliases, the start-up scan and the
watcher) goes through :meth:`AdapterService.load` and :meth:`AdapterService.unload`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
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
from gateway.adapters.serving.publish import Publisher, RuntimePublisher
from gateway.adapters.serving.registry import PIN_SEPARATOR, AdapterRegistry
from gateway.adapters.serving.snapshots import AdapterSnapshot
from gateway.adapters.serving.staging import discard_staged, stage_adapter, staged_path
from gateway.adapters.serving.target import ModelTarget, Outcome, TargetLease
from gateway.adapters.serving.versions import AdapterVersion, Lease, VersionState
from gateway.adapters.store.manifest import ServingDefaults
from gateway.adapters.store.scan import ScanResult, scan
from gateway.adapters.store.validation import (
    AdapterPolicy,
    AdapterSpec,
    validate_adapter,
    validate_folder,
)
from gateway.adapters.store.watcher import AdapterEvent, AdapterEventKind
from gateway.engine.client import EngineClient
from gateway.errors import AdapterNotFound, Conflict, GatewayError
from gateway.metrics import Recorder
from gateway.rollouts.book import RolloutBook
from gateway.rollouts.rollout import (
    CANDIDATE,
    STABLE,
    Action,
    Decision,
    Rollout,
    RolloutPolicy,
    State,
)

log = logging.getLogger(__name__)

ENGINE_ERROR = ENGINE_LOAD_FAILURE_REASONS[0]
# A load that failed on the engine is tried again after the engine restarts: this many
# times, this far apart at first (doubling).
RETRY_ATTEMPTS = 4
RETRY_BACKOFF_S = 2.0
# How a load is rolled out: a policy, True (the configured or default policy), False (a
# hot swap), or None (the manifest's choice, else the configured one).
RolloutChoice = RolloutPolicy | bool | None


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
    ) -> None:
        self.registry = registry
        self.policy = policy
        self.engine = engine
        self.recorder = recorder
        self.staging_root = staging_root
        self.drain_timeout_s = drain_timeout_s
        self.load_wait_s = load_wait_s
        # The named schemas a manifest's serving.response_schema may refer to.
        self.schema_names = schema_names
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._retiring: set[asyncio.Task[None]] = set()
        # Set once the start-up scan of the store is loaded: until then a store adapter
        # may still be missing, and an admin load may race the scan.
        self.store_loaded = asyncio.Event()
        # The policy a new version of a served adapter is rolled out with (None: hot swap).
        self.rollout_policy = rollout_policy
        self.rollouts = RolloutBook(rollouts_file)
        # How versions reach the engines: runtime loads (default) or a resolver store.
        self.publisher: Publisher = publisher or RuntimePublisher(engine)
        # What the other gateway processes (workers, replicas) still use: a version leaves
        # the engines only once none of them does. None: this process is alone.
        self.claims = claims
        self._let_go: set[str] = set()  # engine ids drained here, no longer claimed

    async def load_path(
        self, requested: str, *, name: str | None = None, replace: bool = False,
        rollout: RolloutChoice = None,
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
        rollout: RolloutChoice = None, resume: Rollout | None = None,
    ) -> tuple[AdapterSnapshot, bool]:
        """Loads a validated adapter; (snapshot, created).

        A new version of a served name is published at once (a hot swap), or, when a
        rollout policy applies, becomes the candidate of a rollout (``resume``: carry on
        with that one, after a restart).
        """
        started = started or time.perf_counter()
        self._check_schema(spec)
        async with self._locks[spec.name]:
            plan = self.registry.begin_load(spec, replace=replace)
            if not plan.created:
                await self.registry.wait_settled(plan.version)
                return self.snapshot(spec.name), False
            self.claim()
            policy = resume.policy if resume else self._rollout_policy(spec, rollout)
            await self._load_version(plan.version, started, policy, resume)
        return self.snapshot(spec.name), True

    def _rollout_policy(self, spec: AdapterSpec, choice: RolloutChoice) -> RolloutPolicy | None:
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
            rollout = self.rollouts.active(name)
            if rollout is not None:
                self._record_decision(rollout, rollout.manual(Action.ABORT, "the adapter was "
                                                                            "removed"))
            versions = self.registry.remove(name)
        self._update_loaded_gauge()
        await asyncio.gather(*(self._retire(v) for v in versions))
        # Only now: requests still running when it was removed record under its label.
        if name not in self.registry.names():
            self.recorder.adapter_removed(name)
            lock = self._locks.get(name)
            if lock is not None and not lock.locked():
                del self._locks[name]
        log.info("adapter %s removed (%d versions)", name, len(versions))
        return before

    def acquire(self, model: str, caller: str = "") -> TargetLease | None:
        """A lease on the target of a request's ``model`` (``name`` or ``name@version``).

        None when ``model`` names no adapter. The caller enters the lease at once. During a
        canary, ``caller`` (the sticky key) decides which version answers.
        """
        name, _, label = model.partition(PIN_SEPARATOR)
        rollout = self.rollouts.active(name)
        if rollout is not None and self._for_candidate(rollout, name, label, caller):
            lease = self.registry.resolve_candidate(name)
            if lease is not None:
                return self._target(model, lease, rollout, CANDIDATE)
        try:
            lease = self.registry.resolve(model)
        except AdapterNotFound:
            if self.registry.get(model.partition(PIN_SEPARATOR)[0]) is None:
                return None  # not an adapter name: the resolver reports an unknown model
            raise  # a known adapter: its message lists the versions or the failed load
        # A pin of the stable version is outside the rollout's split: not counted by the gate.
        return self._target(model, lease, None if label else rollout, STABLE)

    def _for_candidate(self, rollout: Rollout, name: str, label: str, caller: str) -> bool:
        """Whether the candidate answers: ``name`` when the canary gives it this caller, a
        pin of the candidate's version only then too (it is public for no one else)."""
        if not rollout.answers_with_candidate(caller, random.random()):
            return False
        candidate = self.registry.candidate(name)
        return not label or (candidate is not None and candidate.version == label)

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
        """A lease on the candidate for a shadow copy of this request, if one is due.

        Bounded per adapter (``shadow_max_in_flight``): over the bound, the copy is skipped,
        never queued, so shadow load cannot grow with the traffic.
        """
        rollout = None if PIN_SEPARATOR in model else self.rollouts.active(model)
        if rollout is None or not rollout.wants_shadow(draw):
            return None
        in_flight = self.rollouts.shadows_in_flight
        if in_flight.get(model, 0) >= rollout.policy.shadow_max_in_flight:
            self.recorder.rollout_shadow_skipped(model)
            return None
        lease = self.registry.resolve_candidate(model)
        if lease is None:
            return None
        in_flight[model] = in_flight.get(model, 0) + 1

        def done() -> None:
            in_flight[model] -= 1
            lease.release()

        target = self._target(model, lease, rollout, CANDIDATE).target
        return TargetLease(target, self.recorder.in_flight(target.label), done)

    def _target(self, model: str, lease: Lease, rollout: Rollout | None, role: str
                ) -> TargetLease:
        label = self.recorder.adapter_label(lease.name)
        report = None
        if rollout is not None:
            def report(outcome: Outcome, name: str = lease.name) -> None:
                self.report(name, role, outcome)

        target = ModelTarget(
            public_name=model,
            engine_model=lease.engine_id,
            adapter=lease.name,
            label=label,
            version=lease.version,
            defaults=lease.spec.serving,
            role=role if rollout is not None else None,
            report=report,
        )
        return TargetLease(target, self.recorder.in_flight(label), lease.release, lease.cut)

    # -- rollouts --------------------------------------------------------------------------

    def rollout(self, name: str) -> Rollout:
        """The rollout of ``name`` (the running one, else the last); 404 when there is none."""
        rollout = self.rollouts.get(name)
        if rollout is None:
            self.snapshot(name)  # an unknown adapter: its own 404
            raise AdapterNotFound(f"Adapter {name!r} has no rollout; load a new version with "
                                  "a rollout policy to start one.", param="name")
        return rollout

    def decide(self, name: str, action: Action, reason: str) -> Rollout:
        """An operator's advance, promote or abort of a running rollout."""
        rollout = self.rollout(name)
        if not rollout.active:
            raise Conflict(f"The rollout of {name!r} has ended ({rollout.state.value}); "
                           "nothing to decide.")
        self._record_decision(rollout, rollout.manual(action, reason))
        self._carry_out(rollout, rollout.decisions[-1])
        return rollout

    def report(self, name: str, role: str, outcome: Outcome) -> None:
        """One answer of a version in a rollout; the gate decides when it can."""
        rollout = self.rollouts.active(name)
        if rollout is None:
            return
        rollout.record(role, error=outcome.error, latency_s=outcome.latency_s,
                       deviated=outcome.deviated)
        self.recorder.rollout_answer(name, role, outcome.error, outcome.deviated)
        decision = rollout.evaluate()
        if decision is None:
            self.rollouts.counted()
            return
        rollout.apply(decision)
        self._record_decision(rollout, decision)
        self._carry_out(rollout, decision)

    def _start_rollout(self, stable: AdapterVersion, candidate: AdapterVersion,
                       policy: RolloutPolicy, resume: Rollout | None) -> None:
        if resume is None:
            rollout = Rollout(stable.name, stable.version, candidate.version, stable.digest,
                              candidate.digest, policy,
                              origins={STABLE: _origin(stable.spec),
                                       CANDIDATE: _origin(candidate.spec)})
            decision = Decision(Action.START, f"version {candidate.version} rolled out beside "
                                f"{stable.version}", 0, numbers={})
            rollout.apply(decision)
            self._record_decision(rollout, decision)
        else:
            rollout = resume
            log.info("rollout of %s resumed at stage %d", rollout.name, rollout.stage + 1)
            self.recorder.rollout_stage(rollout.name, rollout.stage + 1, rollout.current.mode,
                                        rollout.current.share)
        self.rollouts.put(rollout)

    def _record_decision(self, rollout: Rollout, decision: Decision) -> None:
        log.warning("rollout of %s: %s at stage %d: %s; numbers %s", rollout.name,
                    decision.action.value, decision.stage + 1, decision.reason, decision.numbers)
        self.recorder.rollout_decision(rollout.name, decision.action.value)
        if rollout.active:
            self.recorder.rollout_stage(rollout.name, rollout.stage + 1, rollout.current.mode,
                                        rollout.current.share)
        else:
            self.recorder.rollout_stage(rollout.name, 0, None, 0.0)
        self.rollouts.put(rollout)

    def _carry_out(self, rollout: Rollout, decision: Decision) -> None:
        """Publishes or drops the candidate as a decision says; drains run in the background."""
        if decision.action is Action.PROMOTE:
            retiring = self.registry.promote(rollout.name)
        elif decision.action in (Action.ROLLBACK, Action.ABORT):
            retiring = self.registry.drop_candidate(rollout.name)
        else:
            return
        self._update_loaded_gauge()
        if retiring is not None:
            self._background(self._retire(retiring))

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
        resumed = await self._resume_rollouts()
        for spec in result.valid:
            if spec.digest in resumed.get(spec.name, ()):
                continue  # loaded with its rollout
            await self._load_logged(await self._unless_rejected(spec), spec.path)

    async def _unless_rejected(self, spec: AdapterSpec) -> AdapterSpec:
        """The version to serve for a store folder: its own, unless the folder holds the
        candidate of a rollout that was rolled back or aborted (it began by replacing the
        folder); then that rollout's stable version, from its staged copy."""
        rollout = self.rollouts.get(spec.name)
        if (rollout is None or rollout.active or rollout.state is State.PROMOTED
                or rollout.candidate_digest != spec.digest):
            return spec
        stable = await asyncio.to_thread(self._recover, rollout, STABLE)
        if stable is None:
            log.error("adapter %s: the store folder holds version %s, which was %s, and the "
                      "stable version %s is gone; serving the folder's", spec.name,
                      rollout.candidate, rollout.state.value, rollout.stable)
            return spec
        log.warning("adapter %s: the store folder holds version %s, which was %s; serving "
                    "the stable version %s. Replace the folder to roll out again.", spec.name,
                    rollout.candidate, rollout.state.value, rollout.stable)
        return stable

    async def _resume_rollouts(self) -> dict[str, tuple[str, str]]:
        """Loads both versions of each running rollout again (after a restart)."""
        resumed = {}
        for rollout in self.rollouts.all_active():
            if self.registry.candidate(rollout.name) is not None:
                continue  # still loaded (the engine restarted, not the gateway)
            specs = [await asyncio.to_thread(self._recover, rollout, role)
                     for role in (STABLE, CANDIDATE)]
            if specs[0] is None or specs[1] is None:
                missing = STABLE if specs[0] is None else CANDIDATE
                self._record_decision(rollout, rollout.manual(
                    Action.ABORT, f"after a restart the {missing} version's files were gone"))
                continue
            try:
                await self.load(specs[0], replace=True, rollout=False)
                await self.load(specs[1], replace=True, resume=rollout)
            except GatewayError as exc:
                log.error("rollout of %s could not be resumed: %s", rollout.name, exc.message)
                continue
            resumed[rollout.name] = (rollout.stable_digest, rollout.candidate_digest)
        return resumed

    def _recover(self, rollout: Rollout, role: str) -> AdapterSpec | None:
        """One version of a rollout, from its folder, else from its staged copy."""
        origin = rollout.origins.get(role, {})
        digest = rollout.stable_digest if role == STABLE else rollout.candidate_digest
        label = rollout.stable if role == STABLE else rollout.candidate
        staged = self.staging_root / f"{rollout.name}--{digest}"
        staging = dataclasses.replace(self.policy, roots=(self.staging_root.resolve(),))
        tries = [(Path(origin["source"]), self.policy)] if origin.get("source") else []
        for folder, policy in [*tries, (staged, staging)]:
            try:
                spec = validate_folder(folder, policy, name=rollout.name)
            except (AdapterRejected, OSError):
                continue
            if spec.digest == digest:
                serving = ServingDefaults.model_validate(origin.get("serving") or {})
                return dataclasses.replace(spec, version=label, serving=serving)
        return None

    async def reload_engine(self) -> None:
        """After the engine restarted: loads every serving version again (it lost them),
        and retries, with backoff, the loads that failed on the engine meanwhile."""
        for failed in self.registry.failed_on_engine(ENGINE_LOAD_FAILURE_REASONS):
            self._background(self._retry(failed))
        if self.publisher.lazy:
            return  # the engines load from the resolver store on first use
        for name in self.registry.names():
            snapshot = self.registry.get(name)
            for version in snapshot.versions if snapshot else ():
                if version.state in (VersionState.READY, VersionState.DRAINING):
                    await self._reload(version.engine_id)

    async def _retry(self, version: AdapterVersion) -> None:
        """Loads a version again whose load failed on the engine (a crash, a restart):
        ``RETRY_ATTEMPTS`` tries, ``RETRY_BACKOFF_S`` apart and doubling. The watcher would
        never report its unchanged folder again."""
        delay = RETRY_BACKOFF_S
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            async with self._locks[version.name]:
                if not self.registry.retry(version):
                    return  # superseded meanwhile (a newer load, a removal)
                log.info("adapter %s@%s: loading again after the engine restarted (try %d)",
                         version.name, version.version, attempt)
                self.claim()
                try:
                    await self._load_version(version, time.perf_counter())
                    return
                except GatewayError:
                    pass
            await asyncio.sleep(delay)
            delay *= 2

    async def _reload(self, engine_id: str) -> None:
        found = self.registry.find(engine_id)
        if found is None:
            return
        try:
            path = await asyncio.to_thread(stage_adapter, found.spec, self.staging_root)
            await self.publisher.publish(engine_id, path)
        except (GatewayError, OSError) as exc:
            # One adapter that cannot come back must not keep the others (or the watcher,
            # which runs beside this) down; its requests get the engine's 404 meanwhile.
            log.error("adapter %s@%s could not be loaded into the restarted engine: %s",
                      found.name, found.version,
                      exc.message if isinstance(exc, GatewayError) else exc)

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
        await self._load_logged(await self._unless_rejected(event.spec), event.folder)

    async def _load_logged(self, spec: AdapterSpec, folder: Path) -> None:
        """Loads for the store (start-up, watcher): one bad adapter never stops the others."""
        try:
            await self.load(spec, replace=True)
        except GatewayError as exc:
            log.error("adapter %s from %s failed to load: %s", spec.name, folder, exc.message)
        except Exception:
            log.exception("adapter %s from %s failed to load", spec.name, folder)

    async def aclose(self) -> None:
        self.rollouts.save()  # the numbers since the last write
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        if self.claims is not None:
            self.claims.withdraw()

    # -- claims (several gateway processes) -------------------------------------------------

    def claim(self) -> None:
        """Tells the other processes which versions this one still uses."""
        if self.claims is not None:
            self.claims.claim(v.engine_id for v in self.registry.in_use()
                              if v.engine_id not in self._let_go)

    async def keep_claims(self) -> None:
        """Keeps this process's claims fresh (runs for the app's life)."""
        if self.claims is None:
            return
        while True:
            self.claim()
            self.claims.refresh()
            await asyncio.sleep(self.claims.refresh_s)

    async def _withdraw_unclaimed(self, engine_id: str) -> None:
        """Takes away what a failed load may have left (a published folder, a load on some
        servers), unless another process uses the same content under the same id."""
        if self.claims is not None and self.claims.claimed_elsewhere(engine_id):
            return
        try:
            await self.publisher.withdraw(engine_id)
        except OSError as exc:
            log.error("could not withdraw %s after its failed load: %s", engine_id, exc)

    async def _until_unclaimed(self, version: AdapterVersion) -> None:
        """Waits until no other gateway process uses ``version`` (its drain, not ours)."""
        if self.claims is None:
            return
        self._let_go.add(version.engine_id)
        self.claim()
        told = False
        # Bounded: the others drain by the same deadline, and a claim that is not refreshed
        # goes stale; past both, this process no longer waits.
        deadline = time.monotonic() + self.drain_timeout_s + self.claims.stale_after_s
        while self.claims.claimed_elsewhere(version.engine_id):
            if time.monotonic() > deadline:
                log.warning("adapter %s@%s is still claimed by another gateway process after "
                            "its drain deadline; it leaves anyway", version.name,
                            version.version)
                return
            if not told:
                log.info("adapter %s@%s drained here; another gateway process still uses it",
                         version.name, version.version)
                told = True
            await asyncio.sleep(min(1.0, self.claims.refresh_s))

    async def _load_version(
        self, version: AdapterVersion, started: float, rollout: RolloutPolicy | None = None,
        resume: Rollout | None = None,
    ) -> None:
        spec = version.spec
        staged: Path | None = None
        try:
            staged = await self._stage(spec)
            await self.publisher.publish(version.engine_id, staged)
        except BaseException as exc:
            # Whatever went wrong (cancellation included), the version must not stay
            # "loading": that would block the name for good.
            reason = exc.reason.value if isinstance(exc, AdapterRejected) else ENGINE_ERROR
            message = exc.message if isinstance(exc, GatewayError) else repr(exc)
            self.registry.mark_failed(version, reason, message)
            self.claim()
            if staged is not None:  # the publish may have left something behind
                await self._withdraw_unclaimed(version.engine_id)
            self._count_failure(spec.name, reason)
            log.error("adapter %s@%s (digest %s) failed to load: %s", spec.name, spec.version,
                      spec.short_digest, message)
            raise
        seconds = time.perf_counter() - started
        if not self.registry.mark_ready(version, seconds):
            # Removed while it was loading.
            await self._until_unclaimed(version)
            await self.publisher.withdraw(version.engine_id)
            self._let_go.discard(version.engine_id)
            self.claim()
            return
        self.recorder.adapter_loaded(spec.name, seconds)
        stable = self.registry.public(spec.name)
        if rollout is not None and stable is not None:
            self.registry.hold(version)
            self._start_rollout(stable, version, rollout, resume)
            return
        old = self.registry.publish(version)
        self._update_loaded_gauge()
        log.info("adapter %s@%s (digest %s) live as %s in %.2f s", spec.name, spec.version,
                 spec.short_digest, version.engine_id, seconds)
        if old is not None:
            self._background(self._retire(old))

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        """Runs ``work`` beside the caller; cancelled at :meth:`aclose`."""
        task = asyncio.create_task(work)
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def _check_schema(self, spec: AdapterSpec) -> None:
        """A manifest's default schema must exist, or every request to it would fail."""
        wanted = spec.serving.response_schema
        if wanted is None or self.schema_names is None or wanted in self.schema_names():
            return
        self._count_failure(spec.name, RejectReason.INVALID_MANIFEST)
        raise AdapterRejected(
            RejectReason.INVALID_MANIFEST,
            f"adapter {spec.name!r} names serving.response_schema {wanted!r}, which is not a "
            f"registered schema; add config/schemas/{wanted}.json or fix adapter.yaml",
            path=spec.path,
        )

    async def _stage(self, spec: AdapterSpec) -> Path:
        """Copies the validated files where the engine loads them from."""
        try:
            return await asyncio.to_thread(stage_adapter, spec, self.staging_root)
        except OSError as exc:
            raise AdapterRejected(
                RejectReason.MISSING_FILES,
                f"the files of adapter {spec.name!r} changed or vanished while being staged "
                f"({exc.strerror or exc}); load it again once its folder is complete",
                path=spec.path,
            ) from exc

    async def _retire(self, version: AdapterVersion) -> None:
        """Waits until no request uses ``version`` or its drain deadline passes (then the
        requests still running end with an error), then unloads it from the engine."""
        if not await self.registry.wait_drained(version, self.drain_timeout_s):
            cut = self.registry.retire(version)
            self.recorder.adapter_requests_cut(version.name, cut)
            log.warning("adapter %s@%s still had %d requests at its drain deadline (%g s, "
                        "adapters.drain_timeout_s); they were ended", version.name,
                        version.version, cut, self.drain_timeout_s)
        await self._until_unclaimed(version)
        if version.loaded_at is not None:
            await self.publisher.withdraw(version.engine_id)
        self.registry.forget(version)
        self._let_go.discard(version.engine_id)
        self.claim()
        if not self._digest_in_use(version.spec):
            path = staged_path(version.spec, self.staging_root)
            await asyncio.to_thread(discard_staged, path, self.staging_root)
        log.info("adapter %s@%s (digest %s) unloaded", version.name, version.version,
                 version.spec.short_digest)

    def _digest_in_use(self, spec: AdapterSpec) -> bool:
        """The engine may re-read a staged folder (LRU eviction) while any version uses it,
        here or in another gateway process sharing the staging folder."""
        snapshot = self.registry.get(spec.name)
        if snapshot is not None and any(v.digest == spec.digest for v in snapshot.versions):
            return True
        return (self.claims is not None
                and self.claims.claimed_elsewhere(f"{spec.name}--{spec.short_digest}"))

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


def _origin(spec: AdapterSpec) -> dict[str, Any]:
    return {"source": str(spec.path), "serving": spec.serving.model_dump(mode="json")}


async def _until(waiting: Coroutine[Any, Any, Any], deadline: float) -> None:
    """Awaits ``waiting`` until ``deadline`` (monotonic), then gives up quietly."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(waiting, max(0.0, deadline - time.monotonic()))
