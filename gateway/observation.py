"""Per-request facts gathered along the way and recorded once, at the end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.types import Scope

from gateway.metrics import OTHER

_KEY = "observation"


@dataclass
class Observation:
    """What the metrics middleware needs to know about one request."""

    endpoint: str | None = None
    adapter: str = OTHER
    schema: str | None = None
    upstream_seconds: float = 0.0
    # Set when a stream fails after its 200 went out: the status the failure would have had.
    failed_status: int | None = None
    # Whether a structured answer's first attempt deviated (None: not structured).
    first_deviated: bool | None = None
    # Whether the caller may read the gateway's internals in an error (an admin key, or no
    # keys): decides what a stream's error event says, as the error handler does for the rest.
    sees_internals: bool = False

    def add_upstream(self, seconds: float) -> None:
        self.upstream_seconds += seconds


def attach(scope: Scope) -> Observation:
    observation = Observation()
    state: dict[str, Any] = scope.setdefault("state", {})
    state[_KEY] = observation
    return observation


def observation_of(scope: Scope) -> Observation:
    state: dict[str, Any] = scope.setdefault("state", {})
    found = state.get(_KEY)
    if isinstance(found, Observation):
        return found
    return attach(scope)
