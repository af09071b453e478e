"""Rollouts carried out on the serving side: a candidate held beside the stable version,
the gate's decisions applied to the registry, and rollouts brought back after a restart.

The bookkeeping (stages, the gate, the book on disk) is :mod:`gateway.rollouts`; this class
turns its decisions into registry transitions and drains.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway.adapters.errors import AdapterRejected
from gateway.adapters.serving import staging
from gateway.adapters.serving.engines import EngineCopies
from gateway.adapters.serving.notices import RolloutNotices
from gateway.adapters.serving.registry import AdapterRegistry
from gateway.adapters.serving.target import Outcome
from gateway.adapters.serving.versions import AdapterVersion
from gateway.adapters.store.manifest import ServingDefaults
from gateway.adapters.store.validation import AdapterPolicy, AdapterSpec, validate_folder
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

# The service's load, as resume calls it.
Loader = Callable[..., Awaitable[Any]]
# How a load is rolled out: a policy, True (the configured or default policy), False (a
# hot swap), or None (the manifest's choice, else the configured one).
Choice = RolloutPolicy | bool | None


class RolloutConductor:
    def __init__(self, registry: AdapterRegistry, book: RolloutBook, copies: EngineCopies,
                 recorder: Recorder, policy: AdapterPolicy, *, staging_root: Path,
                 on_change: Callable[[], None], notices: RolloutNotices | None = None) -> None:
        self.registry = registry
        self.notices = notices or RolloutNotices(None)
        self._posting = asyncio.Lock()  # notices are written in the order decided
        self._notes: set[asyncio.Task[None]] = set()
        self.book = book
        self.copies = copies
        self.recorder = recorder
        self.policy = policy
        self.staging_root = staging_root
        # Called when a decision changed what is public (the served-adapters gauge).
        self.on_change = on_change

    def rollout(self, name: str) -> Rollout:
        """The rollout of ``name`` (the running one, else the last); 404 when there is none."""
        rollout = self.book.get(name)
        if rollout is None:
            if self.registry.get(name) is None:
                raise AdapterNotFound(f"No adapter named {name!r}. GET /v1/adapters lists "
                                      "them.", param="name")
            raise AdapterNotFound(f"Adapter {name!r} has no rollout; load a new version with "
                                  "a rollout policy to start one.", param="name")
        return rollout

    def decide(self, name: str, action: Action, reason: str) -> Rollout:
        """An operator's advance, promote or abort of a running rollout."""
        rollout = self.rollout(name)
        if not rollout.active:
            raise Conflict(f"The rollout of {name!r} has ended ({rollout.state.value}); "
                           "nothing to decide.")
        self.record(rollout, rollout.manual(action, reason))
        self._carry_out(rollout, rollout.decisions[-1])
        return rollout

    def abort(self, name: str, reason: str) -> None:
        """Ends the running rollout of ``name``, if any (the adapter is being removed)."""
        rollout = self.book.active(name)
        if rollout is not None:
            self.record(rollout, rollout.manual(Action.ABORT, reason))

    def report(self, name: str, role: str, outcome: Outcome) -> None:
        """One answer of a version in a rollout; the gate decides when it can."""
        rollout = self.book.active(name)
        if rollout is None:
            return
        rollout.record(role, error=outcome.error, latency_s=outcome.latency_s,
                       deviated=outcome.deviated)
        self.recorder.rollout_answer(name, role, outcome.error, outcome.deviated)
        decision = rollout.evaluate()
        if decision is None:
            self.book.counted()
            return
        rollout.apply(decision)
        self.record(rollout, decision)
        self._carry_out(rollout, decision)

    def start(self, stable: AdapterVersion, candidate: AdapterVersion,
                       policy: RolloutPolicy, resume: Rollout | None) -> None:
        if resume is None:
            rollout = Rollout(stable.name, stable.version, candidate.version, stable.digest,
                              candidate.digest, policy,
                              origins={STABLE: _origin(stable.spec),
                                       CANDIDATE: _origin(candidate.spec)})
            decision = Decision(Action.START, f"version {candidate.version} rolled out beside "
                                f"{stable.version}", 0, numbers={})
            rollout.apply(decision)
            # The stable version's files, from its staged copy: its folder may hold the
            # candidate now.
            staged = staging.staged_path(stable.spec, self.staging_root)
            self.record(rollout, decision, dataclasses.replace(stable.spec, path=staged))
        else:
            rollout = resume
            log.info("rollout of %s resumed at stage %d", rollout.name, rollout.stage + 1)
            self.recorder.rollout_stage(rollout.name, rollout.stage + 1, rollout.current.mode,
                                        rollout.current.share)
        self.book.put(rollout)

    def record(self, rollout: Rollout, decision: Decision,
               stable: AdapterSpec | None = None) -> None:
        """Keeps a decision: logged, counted, in the book, and in the replicas' notice."""
        log.warning("rollout of %s: %s at stage %d: %s; numbers %s", rollout.name,
                    decision.action.value, decision.stage + 1, decision.reason, decision.numbers)
        self.recorder.rollout_decision(rollout.name, decision.action.value)
        if rollout.active:
            self.recorder.rollout_stage(rollout.name, rollout.stage + 1, rollout.current.mode,
                                        rollout.current.share)
        else:
            self.recorder.rollout_stage(rollout.name, 0, None, 0.0)
        self.book.put(rollout)
        if self.notices.folder is not None:  # written beside the caller, in order
            task = asyncio.create_task(self._post(rollout.as_dict(), stable))
            self._notes.add(task)
            task.add_done_callback(self._notes.discard)

    async def notices_posted(self) -> None:
        """Waits for the notices being written (at shutdown: the last word is kept)."""
        await asyncio.gather(*self._notes, return_exceptions=True)

    async def _post(self, rollout: dict[str, Any], stable: AdapterSpec | None) -> None:
        async with self._posting:
            await asyncio.to_thread(self.notices.post, rollout, stable)

    def _carry_out(self, rollout: Rollout, decision: Decision) -> None:
        """Publishes or drops the candidate as a decision says; drains run in the background."""
        if decision.action is Action.PROMOTE:
            retiring = self.registry.promote(rollout.name)
        elif decision.action in (Action.ROLLBACK, Action.ABORT):
            retiring = self.registry.drop_candidate(rollout.name)
        else:
            return
        self.on_change()
        if retiring is not None:
            self.copies.background(self.copies.retire(retiring))

    async def unless_rejected(self, spec: AdapterSpec) -> list[tuple[AdapterSpec, Choice]]:
        """What to load for a store folder, in order, each with its rollout choice: its own
        version, unless the folder holds the candidate of a rollout (it began by replacing
        the folder) that this replica rolled back or aborted, or that another replica runs
        or rejected while this one was away: then that rollout's stable version first."""
        rollout = self.book.get(spec.name)
        if rollout is None:  # nothing of its own: what the other replicas said
            notice = await asyncio.to_thread(self.notices.read, spec.name)
            if notice is None or notice.candidate_digest != spec.digest or (
                    notice.state is State.PROMOTED):
                return [(spec, None)]
            stable = await self._stable_instead(spec, notice)
            if stable is spec or not notice.active:
                return [(stable, False)]
            # Its own verdict: the candidate rolled out here from the first stage.
            return [(stable, False), (spec, notice.policy)]
        if rollout.active or rollout.state is State.PROMOTED or (
                rollout.candidate_digest != spec.digest):
            return [(spec, None)]
        return [(await self._stable_instead(spec, rollout), None)]

    async def _stable_instead(self, spec: AdapterSpec, rollout: Rollout) -> AdapterSpec:
        stable = await asyncio.to_thread(self._recover, rollout, STABLE)
        if stable is None:
            log.error("adapter %s: the store folder holds version %s, which is %s, and the "
                      "stable version %s is gone; serving the folder's", spec.name,
                      rollout.candidate, rollout.state.value, rollout.stable)
            return spec
        log.warning("adapter %s: the store folder holds version %s, which is %s; serving "
                    "the stable version %s. Replace the folder to roll out again.", spec.name,
                    rollout.candidate, rollout.state.value, rollout.stable)
        return stable

    async def resume(self, load: Loader) -> dict[str, tuple[str, str]]:
        """Loads both versions of each running rollout again (after a restart), with
        ``load`` (the service's); returns their digests by name."""
        resumed = {}
        for rollout in self.book.all_active():
            if self.registry.candidate(rollout.name) is not None:
                continue  # still loaded (the engine restarted, not the gateway)
            specs = [await asyncio.to_thread(self._recover, rollout, role)
                     for role in (STABLE, CANDIDATE)]
            if specs[0] is None or specs[1] is None:
                missing = STABLE if specs[0] is None else CANDIDATE
                self.record(rollout, rollout.manual(
                    Action.ABORT, f"after a restart the {missing} version's files were gone"))
                continue
            try:
                await load(specs[0], replace=True, rollout=False)
                await load(specs[1], replace=True, resume=rollout)
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
        tries = [(Path(origin["source"]), self.policy)] if origin.get("source") else []
        for root in (self.staging_root, self.notices.folder):
            if root is not None:  # a staged copy here, or the one beside the notices
                tries.append((root / f"{rollout.name}--{digest}",
                              dataclasses.replace(self.policy, roots=(root.resolve(),))))
        for folder, policy in tries:
            try:
                spec = validate_folder(folder, policy, name=rollout.name)
            except (AdapterRejected, OSError):
                continue
            if spec.digest == digest:
                serving = ServingDefaults.model_validate(origin.get("serving") or {})
                return dataclasses.replace(spec, version=label, serving=serving)
        return None


def _origin(spec: AdapterSpec) -> dict[str, Any]:
    return {"source": str(spec.path), "serving": spec.serving.model_dump(mode="json")}
