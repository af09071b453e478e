"""Which adapter version answers a request: ``name`` (the public version, or the
candidate when a canary gives it this caller), ``name@version`` (a public version only),
and the shadow copies a rollout asks for."""

from __future__ import annotations

import random
from collections.abc import Callable

from gateway.adapters.serving.registry import PIN_SEPARATOR, AdapterRegistry
from gateway.adapters.serving.target import ModelTarget, Outcome, TargetLease
from gateway.adapters.serving.versions import Lease
from gateway.errors import AdapterNotFound
from gateway.metrics import Recorder
from gateway.rollouts.book import RolloutBook
from gateway.rollouts.rollout import CANDIDATE, STABLE, Rollout


class Routing:
    def __init__(self, registry: AdapterRegistry, book: RolloutBook, recorder: Recorder,
                 report: Callable[[str, str, Outcome], None]) -> None:
        self.registry = registry
        self.book = book
        self.recorder = recorder
        # Where a rollout version's outcome goes (the gate).
        self.report = report

    def acquire(self, model: str, caller: str = "") -> TargetLease | None:
        """A lease on the target of a request's ``model`` (``name`` or ``name@version``).

        None when ``model`` names no adapter. The caller enters the lease at once. During a
        canary, ``caller`` (the sticky key) decides which version answers.
        """
        name, _, label = model.partition(PIN_SEPARATOR)
        rollout = self.book.active(name)
        if rollout is not None and self._for_candidate(rollout, name, label, caller):
            lease = self.registry.resolve_candidate(name)
            if lease is not None:
                return self._target(model, lease, rollout, CANDIDATE)
        try:
            lease = self.registry.resolve(model)
        except AdapterNotFound:
            if self.registry.get(name) is None:
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

    def shadow(self, model: str, draw: float) -> TargetLease | None:
        """A lease on the candidate for a shadow copy of this request, if one is due.

        Bounded per adapter (``shadow_max_in_flight``): over the bound, the copy is skipped,
        never queued, so shadow load cannot grow with the traffic.
        """
        rollout = None if PIN_SEPARATOR in model else self.book.active(model)
        if rollout is None or not rollout.wants_shadow(draw):
            return None
        in_flight = self.book.shadows_in_flight
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
        return TargetLease(target, self.recorder.in_flight(target.label), done, lease.cut)

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
