"""Which engine model answers a request: the base model or one adapter version."""

from __future__ import annotations

from typing import Protocol

from gateway.adapters.serving.target import ModelTarget, TargetLease
from gateway.errors import ModelNotFound
from gateway.metrics import BASE, Recorder


class AdapterLookup(Protocol):
    async def acquire_loaded(self, model: str, caller: str = "") -> TargetLease | None: ...

    def shadow(self, model: str, draw: float) -> TargetLease | None: ...

    def public_names(self) -> list[tuple[str, str]]: ...


class TargetResolver:
    """Resolves the ``model`` field of a request into a lease on its target."""

    def __init__(
        self, base_model: str, recorder: Recorder, adapters: AdapterLookup | None = None
    ) -> None:
        self.base_model = base_model
        self.recorder = recorder
        self.adapters = adapters

    async def acquire(self, model: str, caller: str = "") -> TargetLease:
        """The lease to enter at once (``async with``); 404 for an unknown model.

        ``caller`` is the request's sticky key: a canary keeps each one on one version. An
        adapter that is still loading is waited for (``adapters.load_wait_s``).
        """
        if model == self.base_model:
            target = ModelTarget(public_name=model, engine_model=model, adapter=BASE, label=BASE)
            return TargetLease(target, self.recorder.in_flight(BASE))
        found = await self.adapters.acquire_loaded(model, caller) if self.adapters else None
        if found is None:
            raise ModelNotFound(
                f"The model {model!r} does not exist. GET /v1/models lists the base model "
                "and every served adapter.",
                param="model",
            )
        return found

    def shadow(self, model: str, draw: float) -> TargetLease | None:
        """A lease on a rollout candidate for a shadow copy of the request, when one is due."""
        return self.adapters.shadow(model, draw) if self.adapters else None
