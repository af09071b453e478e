"""Which engine model answers a request: the base model or one adapter version."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from gateway.adapters.manifest import ServingDefaults
from gateway.errors import ModelNotFound
from gateway.metrics import BASE


@dataclass
class ModelTarget:
    """The resolved target of one request; ``release`` must be called when it ends."""

    public_name: str
    engine_model: str
    adapter: str
    version: str | None = None
    defaults: ServingDefaults = field(default_factory=ServingDefaults)
    on_release: Callable[[], None] | None = None

    def release(self) -> None:
        """Ends the request's hold on its adapter version; safe to call more than once."""
        callback, self.on_release = self.on_release, None
        if callback is not None:
            callback()


class AdapterLookup(Protocol):
    def acquire(self, model: str) -> ModelTarget | None: ...

    def public_names(self) -> list[tuple[str, str]]: ...


class TargetResolver:
    """Resolves the ``model`` field of a request."""

    def __init__(self, base_model: str, adapters: AdapterLookup | None = None) -> None:
        self.base_model = base_model
        self.adapters = adapters

    def acquire(self, model: str) -> ModelTarget:
        if model == self.base_model:
            return ModelTarget(public_name=model, engine_model=model, adapter=BASE)
        found = self.adapters.acquire(model) if self.adapters else None
        if found is None:
            raise ModelNotFound(
                f"The model {model!r} does not exist. GET /v1/models lists the base model "
                "and every served adapter.",
                param="model",
            )
        return found
