"""What answers one request, held for as long as the request runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from gateway.adapters.store.manifest import ServingDefaults
from gateway.metrics import InFlight


@dataclass(frozen=True)
class Outcome:
    """How one answer went, for a rollout's gate."""

    error: bool
    latency_s: float | None = None
    # Whether the first attempt deviated from the schema (None: not a structured answer).
    deviated: bool | None = None


@dataclass(frozen=True)
class ModelTarget:
    """The resolved target of one request: the base model or one adapter version."""

    public_name: str
    engine_model: str
    adapter: str
    label: str
    version: str | None = None
    defaults: ServingDefaults = field(default_factory=ServingDefaults)
    # In a rollout: "stable" or "candidate", and where the answer's outcome goes.
    role: str | None = None
    report: Callable[[Outcome], None] | None = None


class TargetLease:
    """A request's hold on its target, as ``async with lease as target``.

    Entering counts the request in flight; leaving releases the adapter version (so a
    drain can finish) and uncounts it. Leaving twice does nothing.
    """

    def __init__(
        self, target: ModelTarget, in_flight: InFlight, release: Callable[[], None] | None = None,
        cut: asyncio.Event | None = None,
    ) -> None:
        self.target = target
        # Set when the version's drain deadline passes with the request still running: the
        # request ends with AdapterVersionCut (None: the base model, never drained).
        self.cut = cut
        self._in_flight = in_flight
        self._release = release
        self._entered = False

    async def __aenter__(self) -> ModelTarget:
        self._in_flight.inc()
        self._entered = True
        return self.target

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()
        if self._entered:
            self._entered = False
            self._in_flight.dec()
