"""One adapter version as the registry tracks it, and the lease a request holds on it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType

from gateway.adapters.store.validation import AdapterSpec


class VersionState(StrEnum):
    LOADING = "loading"  # validated; the engine is loading it
    READY = "ready"  # loaded in the engine; the public one serves unpinned requests
    FAILED = "failed"  # the engine refused it; see failure_reason
    DRAINING = "draining"  # replaced or removed; serves pinned requests until idle
    UNLOADED = "unloaded"  # closed to new requests; being (or been) unloaded from the engine


@dataclass(eq=False)
class AdapterVersion:
    """A version's state and counters. Read freely; only :class:`AdapterRegistry` changes it."""

    spec: AdapterSpec
    version: str
    engine_id: str
    state: VersionState = VersionState.LOADING
    failure_reason: str | None = None
    failure_message: str | None = None
    created_at: float = field(default_factory=time.time)
    loaded_at: float | None = None
    load_seconds: float | None = None
    requests_served: int = 0
    in_flight: int = 0
    cancelled: bool = False  # removed while loading: unload it once the engine has it
    started: float = field(default_factory=time.monotonic, repr=False)
    idle: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    settled: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def __post_init__(self) -> None:
        self.idle.set()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def digest(self) -> str:
        return self.spec.digest

    def acquire(self) -> None:
        self.in_flight += 1
        self.idle.clear()

    def release(self) -> None:
        self.in_flight -= 1
        self.requests_served += 1
        if self.in_flight == 0:
            self.idle.set()


class Lease:
    """A request's hold on one adapter version; release it when the answer is complete.

    Usable as ``async with`` or ``with``; ``release()`` is idempotent, so a streaming
    response can release from its own cleanup as well.
    """

    def __init__(self, version: AdapterVersion, *, pinned: bool) -> None:
        self._version = version
        self._released = False
        self.pinned = pinned
        # Captured now so that a manifest edit mid-request does not change this request.
        self.spec = version.spec
        self.version = version.version
        self.engine_id = version.engine_id

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._version.release()

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
