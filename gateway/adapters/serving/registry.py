"""In-memory registry of adapter names, their versions, and which version answers what.

The registry is the one owner of every version's state: it applies each transition of
:data:`gateway.adapters.serving.versions.TRANSITIONS` (drawn in docs/adapters.md), and the
rest of the gateway (the service, the rollouts, the publisher) reacts to what it did.
Which version is public and which is a rollout's candidate is each version's role, kept
once, on the version.

Every method except :meth:`AdapterRegistry.wait_drained` is synchronous, so within one
asyncio loop each check-and-update is atomic. The registry never talks to the engine;
a hot swap driven by the caller is::

    plan = registry.begin_load(spec, replace=True)   # new version, state loading
    ...engine load of plan.version.engine_id...      # on failure: registry.mark_failed(...)
    registry.mark_ready(plan.version)
    old = registry.publish(plan.version)             # every request now gets the new one
    if not await registry.wait_drained(old, deadline):
        registry.retire(old)                         # running requests end with an error
    ...engine unload of old.engine_id...
    registry.forget(old)

Requests call :meth:`resolve` and release the lease when done. ``name`` and
``name@version`` resolve only to a public version: once a version drains, nothing new
enters it, pins included, so every drain ends by its deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from gateway.adapters.errors import (
    AdapterConflict,
    AdapterNotFound,
    AdapterStateError,
    AdapterUnavailable,
)
from gateway.adapters.serving.snapshots import AdapterSnapshot
from gateway.adapters.serving.versions import AdapterVersion, Event, Lease, Role, VersionState
from gateway.adapters.store.validation import AdapterSpec

log = logging.getLogger(__name__)

PIN_SEPARATOR = "@"


@dataclass(frozen=True)
class LoadPlan:
    """What :meth:`AdapterRegistry.begin_load` decided.

    ``created``: a new version in state loading; the caller must load it in the engine.
    Otherwise ``version`` already has this content (loading or ready): nothing to load;
    await :meth:`AdapterRegistry.wait_settled` if it is still loading.
    """

    version: AdapterVersion
    created: bool
    replaces: AdapterVersion | None = None


@dataclass
class _Adapter:
    versions: list[AdapterVersion] = field(default_factory=list)

    @property
    def public(self) -> AdapterVersion | None:
        return next((v for v in self.versions if v.role is Role.PUBLIC), None)

    @property
    def candidate(self) -> AdapterVersion | None:
        """A ready version in a rollout: it answers only the requests the rollout gives it."""
        return next((v for v in self.versions if v.role is Role.CANDIDATE), None)

    def snapshot(self, name: str) -> AdapterSnapshot:
        return AdapterSnapshot.of(name, self.versions, self.public, self.candidate)

    def live(self) -> list[AdapterVersion]:
        return [v for v in self.versions if v.state in (VersionState.LOADING, VersionState.READY)]

    def serving_public(self, name: str) -> AdapterVersion:
        """The public version, or why there is none (503 while loading, else 404)."""
        if self.public is not None and self.public.serving:
            return self.public
        if any(v.state is VersionState.LOADING and not v.cancelled for v in self.versions):
            raise AdapterUnavailable(
                f"Adapter {name!r} is still loading; retry in a few seconds.",
                param="model",
                headers={"Retry-After": "2"},
            )
        failed = [v for v in self.versions if v.state is VersionState.FAILED]
        detail = f" Its last load failed: {failed[-1].failure_message}" if failed else ""
        raise AdapterNotFound(f"Adapter {name!r} is not being served.{detail}", param="model",
                              public=(f"Adapter {name!r} is not being served: its last load "
                                      "failed." if failed else None))

    def pinned(self, name: str, label: str) -> AdapterVersion:
        """A pin reaches the public version only: a candidate answers what its rollout
        gives it, and a draining version takes nothing new."""
        public = self.public
        if public is not None and public.version == label and public.serving:
            return public
        served = [public.version] if public is not None else []
        raise AdapterNotFound(
            f"Adapter {name!r} has no version {label!r} in service; versions: {served}. "
            f"Use {name!r} alone for the current one.",
            param="model",
        )

    def check_conflict(self, spec: AdapterSpec, replace: bool) -> None:
        if self.candidate is not None:
            raise AdapterConflict(
                f"Version {self.candidate.version!r} of adapter {spec.name!r} is being rolled "
                "out; promote or abort that rollout before loading another version."
            )
        live = self.live()
        if any(v.state is VersionState.LOADING for v in live):
            raise AdapterConflict(
                f"Another version of adapter {spec.name!r} is loading; retry when it is done."
            )
        if live and not replace:
            current = live[-1]
            raise AdapterConflict(
                f"Adapter {spec.name!r} is already served as version {current.version!r} with "
                f"other content (digest {current.digest[:12]}); ask to replace it, remove it "
                "first, or choose another name."
            )


class AdapterRegistry:
    """Adapter versions by name; see the module docstring for the swap protocol."""

    def __init__(self) -> None:
        self._adapters: dict[str, _Adapter] = {}
        self._engine_ids: dict[str, AdapterVersion] = {}

    # -- loading -------------------------------------------------------------------------

    def begin_load(self, spec: AdapterSpec, *, replace: bool = False) -> LoadPlan:
        """Register ``spec`` as a loading version, or return the version that has its content.

        Same name and digest: nothing new (a manifest-only edit updates that version's
        serving defaults in place). Same name, other digest: a new version if ``replace``,
        else :class:`AdapterConflict`.
        """
        entry = self._adapters.setdefault(spec.name, _Adapter())
        for version in entry.live():
            if version.digest == spec.digest:
                self._update_manifest(entry, version, spec)
                return LoadPlan(version, created=False)
        entry.check_conflict(spec, replace)
        for failed in [v for v in entry.versions if v.state is VersionState.FAILED]:
            self._drop(entry, failed)  # a new attempt supersedes earlier failures
        version = AdapterVersion(spec, self._label(entry, spec), self._engine_id(spec))
        entry.versions.append(version)
        self._engine_ids[version.engine_id] = version
        log.info(
            "adapter %s version %s loading as %s", spec.name, version.version, version.engine_id
        )
        return LoadPlan(version, created=True, replaces=entry.public)

    def mark_ready(self, version: AdapterVersion, load_seconds: float | None = None) -> bool:
        """Record a finished engine load. False: it was removed meanwhile; unload it."""
        if version.state is VersionState.DRAINING and version.cancelled:
            version.settled.set()
            return False
        version.apply(Event.LOADED)
        version.load_seconds = (
            load_seconds if load_seconds is not None else time.monotonic() - version.started
        )
        return True

    def mark_failed(self, version: AdapterVersion, reason: str, message: str) -> None:
        """Record that the engine refused the version; it stays listed with its reason."""
        version.failure_reason, version.failure_message = reason, message
        version.apply(Event.LOAD_FAILED)
        log.warning("adapter %s version %s failed: %s", version.name, version.version, reason)

    def failed_on_engine(self, reasons: tuple[str, ...]) -> list[AdapterVersion]:
        """The newest version of each name, where it failed for one of ``reasons``."""
        return [entry.versions[-1] for entry in self._adapters.values()
                if entry.versions and entry.versions[-1].state is VersionState.FAILED
                and entry.versions[-1].failure_reason in reasons]

    def retry(self, version: AdapterVersion) -> bool:
        """A failed version loads again (its failure was the engine's). False: it is no
        longer the newest version of its name, or another one is loading or rolled out."""
        entry = self._adapters.get(version.name)
        if (entry is None or not entry.versions or entry.versions[-1] is not version
                or version.state is not VersionState.FAILED or entry.candidate is not None
                or any(v.state is VersionState.LOADING for v in entry.versions)):
            return False
        version.apply(Event.RETRIED)
        version.started = time.monotonic()
        return True

    async def wait_settled(self, version: AdapterVersion) -> VersionState:
        """Wait until a loading version is ready or failed (for idempotent concurrent loads)."""
        await version.settled.wait()
        return version.state

    def publish(self, version: AdapterVersion) -> AdapterVersion | None:
        """Make a ready version the public one; the one it replaces (now draining) is returned."""
        entry = self._entry(version.name)
        previous = entry.public
        if previous is version:
            return None
        version.apply(Event.PUBLISHED)
        if previous is None:
            return None
        previous.apply(Event.RETIRED)
        log.info(
            "adapter %s: version %s public, %s draining",
            version.name,
            version.version,
            previous.version,
        )
        return previous

    # -- rollouts ------------------------------------------------------------------------

    def hold(self, version: AdapterVersion) -> AdapterVersion:
        """Make a ready version the candidate of its name, beside the public (stable) one.

        Returns the stable version. Nothing is public yet for the name: publish instead.
        """
        entry = self._entry(version.name)
        stable = entry.public
        if stable is None:
            raise AdapterStateError(f"adapter {version.name!r} has no public version to roll "
                                    "out against; publish this one instead")
        version.apply(Event.HELD)
        log.info("adapter %s: version %s is the candidate beside %s", version.name,
                 version.version, stable.version)
        return stable

    def candidate(self, name: str) -> AdapterVersion | None:
        entry = self._adapters.get(name)
        return entry.candidate if entry else None

    def promote(self, name: str) -> AdapterVersion | None:
        """The candidate becomes public; the old public version (now draining) is returned."""
        candidate = self._entry(name).candidate
        if candidate is None:
            raise AdapterStateError(f"adapter {name!r} has no candidate version to promote")
        return self.publish(candidate)

    def drop_candidate(self, name: str) -> AdapterVersion | None:
        """The candidate leaves service (rolled back or aborted); returned draining."""
        entry = self._adapters.get(name)
        candidate = entry.candidate if entry else None
        if candidate is None:
            return None
        candidate.apply(Event.RETIRED)
        log.info("adapter %s: candidate %s dropped", name, candidate.version)
        return candidate

    def resolve_candidate(self, name: str) -> Lease | None:
        """A lease on ``name``'s candidate, or None when it has none in service."""
        candidate = self.candidate(name)
        if candidate is None or not candidate.serving:
            return None
        candidate.acquire()
        return Lease(candidate, pinned=False)

    # -- serving -------------------------------------------------------------------------

    def resolve(self, model: str) -> Lease:
        """Lease the version a request's ``model`` names: ``name`` or ``name@version``."""
        name, pinned, label = model.partition(PIN_SEPARATOR)
        entry = self._adapters.get(name)
        if entry is None:
            raise AdapterNotFound(
                f"No adapter named {name!r}; GET /v1/adapters lists them.", param="model"
            )
        version = entry.pinned(name, label) if pinned else entry.serving_public(name)
        version.acquire()
        return Lease(version, pinned=bool(pinned))

    def loading(self, name: str) -> AdapterVersion | None:
        """A version of ``name`` being loaded (not cancelled), if any."""
        entry = self._adapters.get(name)
        if entry is None:
            return None
        return next((v for v in entry.versions
                     if v.state is VersionState.LOADING and not v.cancelled), None)

    def public(self, name: str) -> AdapterVersion | None:
        entry = self._adapters.get(name)
        return entry.public if entry else None

    def names(self) -> list[str]:
        """Names that serve unpinned requests now (what /v1/models lists)."""
        return sorted(name for name, entry in self._adapters.items() if entry.public)

    def find(self, engine_id: str) -> AdapterVersion | None:
        return self._engine_ids.get(engine_id)

    def in_use(self) -> list[AdapterVersion]:
        """Versions loading, serving or draining: the ones the engines must keep."""
        return [v for v in self._engine_ids.values() if v.state is not VersionState.FAILED
                and v.state is not VersionState.UNLOADED]

    # -- retiring ------------------------------------------------------------------------

    async def wait_drained(self, version: AdapterVersion, timeout: float) -> bool:
        """Wait until a draining version has no request in flight, then close it.

        True: it is now unloaded and may leave the engine. False: requests were still
        running after ``timeout`` seconds; it stays draining (:meth:`retire` ends them).
        """
        if version.state is VersionState.UNLOADED:
            return True
        self._expect(version, VersionState.DRAINING, "wait_drained")
        deadline = time.monotonic() + timeout
        while version.in_flight > 0:
            try:
                await asyncio.wait_for(version.idle.wait(), deadline - time.monotonic())
            except TimeoutError:
                return False
        # No await between the check above and this line; and nothing enters a draining
        # version anyway.
        version.apply(Event.DRAINED)
        return True

    def retire(self, version: AdapterVersion) -> int:
        """Close a draining version now; its running requests end with an error. Returns
        how many there were."""
        if version.state is VersionState.UNLOADED:
            return 0
        version.apply(Event.CUT)
        return version.in_flight

    def remove(self, name: str) -> list[AdapterVersion]:
        """Take ``name`` out of service; returns the versions now draining for the caller.

        A version still loading is cancelled (``mark_ready`` will return False) and one
        already draining is left to whoever is draining it.
        """
        entry = self._entry(name)
        draining = []
        for version in list(entry.versions):
            if version.state is VersionState.READY:
                version.apply(Event.RETIRED)
                draining.append(version)
            elif version.state is VersionState.LOADING:
                version.cancelled = True
                version.apply(Event.RETIRED)
            elif version.state is VersionState.FAILED:
                self._drop(entry, version)
        self._prune(name)
        return draining

    def forget(self, version: AdapterVersion) -> None:
        """Drop an unloaded or failed version from the registry."""
        if version.state not in (VersionState.UNLOADED, VersionState.FAILED):
            self._expect(version, VersionState.UNLOADED, "forget")
        entry = self._adapters.get(version.name)
        if entry is not None and version in entry.versions:
            self._drop(entry, version)
            self._prune(version.name)

    # -- listing -------------------------------------------------------------------------

    def list(self) -> list[AdapterSnapshot]:
        return [entry.snapshot(name) for name, entry in sorted(self._adapters.items())]

    def get(self, name: str) -> AdapterSnapshot | None:
        entry = self._adapters.get(name)
        return entry.snapshot(name) if entry else None

    # -- helpers -------------------------------------------------------------------------

    def _update_manifest(self, entry: _Adapter, version: AdapterVersion, spec: AdapterSpec) -> None:
        if version.spec.fingerprint == spec.fingerprint:
            return
        version.spec = spec
        version.version = self._label(entry, spec, ignore=version)
        log.info("adapter %s version %s: manifest updated", spec.name, version.version)

    def _label(
        self, entry: _Adapter, spec: AdapterSpec, ignore: AdapterVersion | None = None
    ) -> str:
        """The manifest's version, unless other content already uses that label."""
        taken = {
            v.version
            for v in entry.versions
            if v is not ignore and v.digest != spec.digest and v.state is not VersionState.FAILED
        }
        return spec.version if spec.version not in taken else f"{spec.version}+{spec.digest[:8]}"

    def _engine_id(self, spec: AdapterSpec) -> str:
        """``name--digest12``; a suffix only while an older copy (draining) holds that id."""
        base = f"{spec.name}--{spec.short_digest}"
        candidate, count = base, 1
        while candidate in self._engine_ids:
            count += 1
            candidate = f"{base}-{count}"
        return candidate

    def _entry(self, name: str) -> _Adapter:
        entry = self._adapters.get(name)
        if entry is None:
            raise AdapterNotFound(f"No adapter named {name!r}; GET /v1/adapters lists them.")
        return entry

    def _drop(self, entry: _Adapter, version: AdapterVersion) -> None:
        entry.versions.remove(version)
        if self._engine_ids.get(version.engine_id) is version:
            del self._engine_ids[version.engine_id]

    def _prune(self, name: str) -> None:
        entry = self._adapters.get(name)
        if entry is not None and not entry.versions:
            del self._adapters[name]

    @staticmethod
    def _expect(version: AdapterVersion, state: VersionState, operation: str) -> None:
        if version.state is not state:
            raise AdapterStateError(
                f"{operation} needs adapter {version.name!r} version {version.version!r} to be "
                f"{state.value}, but it is {version.state.value}."
            )
