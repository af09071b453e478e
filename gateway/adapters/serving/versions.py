"""One adapter version as the registry tracks it, and the lease a request holds on it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType

from gateway.adapters.errors import AdapterStateError
from gateway.adapters.store.validation import AdapterSpec


class VersionState(StrEnum):
    """Where a version is in its life; the ``state`` the admin API lists."""

    LOADING = "loading"  # validated; being staged and published to the engines
    READY = "ready"  # in the engines; its role says which requests reach it
    FAILED = "failed"  # the engines (or staging) refused it; see failure_reason
    DRAINING = "draining"  # out of service: no new request enters, running ones finish
    UNLOADED = "unloaded"  # idle (or cut at its deadline); leaving the engines


class Role(StrEnum):
    """Which requests a ready version answers."""

    NONE = "none"  # loaded, not yet placed
    PUBLIC = "public"  # ``name`` and ``name@version``
    CANDIDATE = "candidate"  # only what its rollout gives it (a shadow copy, a canary)


class Event(StrEnum):
    LOADED = "loaded"  # the engines have it
    LOAD_FAILED = "load_failed"  # they refused it (or its files vanished)
    PUBLISHED = "published"  # it becomes the public version
    HELD = "held"  # it becomes the candidate of a rollout
    RETIRED = "retired"  # replaced, rolled back, aborted or removed (cancelled if loading)
    DRAINED = "drained"  # its last request ended
    CUT = "cut"  # its drain deadline passed; the requests still running were ended
    RETRIED = "retried"  # loaded again after the failure was the engine's (a crash)


# (state, event) -> state: every transition a version can make, and no other. docs/adapters.md
# draws it. Only AdapterVersion.apply changes a state, and only the registry calls it.
TRANSITIONS: dict[tuple[VersionState, Event], VersionState] = {
    (VersionState.LOADING, Event.LOADED): VersionState.READY,
    (VersionState.LOADING, Event.LOAD_FAILED): VersionState.FAILED,
    (VersionState.LOADING, Event.RETIRED): VersionState.DRAINING,  # removed mid-load
    (VersionState.READY, Event.PUBLISHED): VersionState.READY,
    (VersionState.READY, Event.HELD): VersionState.READY,
    (VersionState.READY, Event.RETIRED): VersionState.DRAINING,
    (VersionState.DRAINING, Event.LOAD_FAILED): VersionState.FAILED,  # cancelled, then failed
    (VersionState.DRAINING, Event.DRAINED): VersionState.UNLOADED,
    (VersionState.DRAINING, Event.CUT): VersionState.UNLOADED,
    (VersionState.FAILED, Event.RETRIED): VersionState.LOADING,
}
_ROLES = {Event.PUBLISHED: Role.PUBLIC, Event.HELD: Role.CANDIDATE}


@dataclass(eq=False)
class AdapterVersion:
    """A version's state and counters. Read freely; only :class:`AdapterRegistry` changes
    its state, through :meth:`apply`."""

    spec: AdapterSpec
    version: str
    engine_id: str
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
    # Set at CUT: the requests still running on it end with an error.
    cut: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _state: VersionState = field(default=VersionState.LOADING, repr=False)
    _role: Role = field(default=Role.NONE, repr=False)

    def __post_init__(self) -> None:
        self.idle.set()

    @property
    def state(self) -> VersionState:
        return self._state

    @property
    def role(self) -> Role:
        return self._role

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def digest(self) -> str:
        return self.spec.digest

    @property
    def serving(self) -> bool:
        """Whether new requests may enter it (what its role allows)."""
        return self._state is VersionState.READY and self._role is not Role.NONE

    def apply(self, event: Event) -> VersionState:
        """Makes one transition of :data:`TRANSITIONS`; anything else is a bug, raised."""
        after = TRANSITIONS.get((self._state, event))
        if after is None:
            raise AdapterStateError(
                f"adapter {self.name!r} version {self.version!r} cannot take {event.value!r} "
                f"while {self._state.value}")
        self._state = after
        self._role = _ROLES.get(event, self._role if after is VersionState.READY else Role.NONE)
        if event is Event.LOADED:
            self.loaded_at = time.time()
        if event is Event.RETRIED:
            self.failure_reason = self.failure_message = None
            self.settled.clear()
        if event is Event.CUT:
            self.cut.set()
        if after in (VersionState.READY, VersionState.FAILED):
            self.settled.set()
        return after

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
        # Set when the version's drain deadline passes with this request still running.
        self.cut = version.cut

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
