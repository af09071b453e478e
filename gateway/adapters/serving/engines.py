"""Which adapter versions the engines hold, and when one may leave them.

Publishing a version, loading it again after an engine restart, withdrawing it once its
drain ended and no other gateway process claims it, and the claims themselves. The
registry decides the states; this class carries out what they mean for the engines.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from gateway.adapters.serving.claims import ClaimBoard
from gateway.adapters.serving.publish import Publisher
from gateway.adapters.serving.registry import AdapterRegistry
from gateway.adapters.serving.staging import (
    discard_staged,
    stage_adapter,
    stage_checked,
    staged_path,
)
from gateway.adapters.serving.versions import AdapterVersion
from gateway.adapters.store.validation import AdapterSpec
from gateway.errors import GatewayError
from gateway.metrics import Recorder

log = logging.getLogger(__name__)


class EngineCopies:
    def __init__(self, registry: AdapterRegistry, publisher: Publisher, recorder: Recorder,
                 *, staging_root: Path, drain_timeout_s: float,
                 claims: ClaimBoard | None = None) -> None:
        self.registry = registry
        # How versions reach the engines: runtime loads or a resolver store.
        self.publisher = publisher
        self.recorder = recorder
        self.staging_root = staging_root
        self.drain_timeout_s = drain_timeout_s
        # What the other gateway processes (workers, replicas) still use: a version leaves
        # the engines only once none of them does. None: this process is alone.
        self.claims = claims
        self._tasks: set[asyncio.Task[None]] = set()
        # One staged folder serves every version with its digest: staging it for a new
        # load and deleting it after the last user left must not interleave (a version
        # draining away while the same content loads again).
        self._staging: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def stage(self, spec: AdapterSpec) -> Path:
        """The staged copy of ``spec`` for a load (:func:`stage_checked`)."""
        async with self._staging[spec.digest]:
            return await asyncio.to_thread(stage_checked, spec, self.staging_root)

    async def aclose(self) -> None:
        """Cancels the drains and retries still running; withdraws this process's claims."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.claims is not None:
            self.claims.withdraw()

    def claim(self) -> None:
        """Tells the other processes which versions this one still uses."""
        if self.claims is not None:
            # A drained version is unloaded: no longer in use here, so no longer claimed.
            self.claims.claim(v.engine_id for v in self.registry.in_use())

    async def keep_claims(self) -> None:
        """Keeps this process's claims fresh (runs for the app's life)."""
        if self.claims is None:
            return
        while True:
            self.claim()
            self.claims.refresh()
            await asyncio.sleep(self.claims.refresh_s)

    async def withdraw_unclaimed(self, engine_id: str) -> None:
        """Takes away what a failed load may have left (a published folder, a load on some
        servers), unless another process uses the same content under the same id."""
        if self.claims is not None and self.claims.claimed_elsewhere(engine_id):
            return
        try:
            await self.publisher.withdraw(engine_id)
        except OSError as exc:
            log.error("could not withdraw %s after its failed load: %s", engine_id, exc)

    async def retire(self, version: AdapterVersion) -> None:
        """Waits until no request uses ``version`` or its drain deadline passes (then the
        requests still running end with an error), then lets it leave the engines."""
        if not await self.registry.wait_drained(version, self.drain_timeout_s):
            cut = self.registry.retire(version)
            self.recorder.adapter_requests_cut(version.name, cut)
            log.warning("adapter %s@%s still had %d requests at its drain deadline (%g s, "
                        "adapters.drain_timeout_s); they were ended", version.name,
                        version.version, cut, self.drain_timeout_s)
        await self._release(version)

    async def _release(self, version: AdapterVersion) -> None:
        """``version`` is no longer used here: it leaves the engines now, or, while another
        gateway process still claims it, once none does. The caller never waits for the
        others (their drains are their own); the version stays listed as unloaded."""
        self.claim()
        if self.claims is not None and self.claims.claimed_elsewhere(version.engine_id):
            log.info("adapter %s@%s drained here; another gateway process still uses it, so "
                     "it leaves the engines once none does", version.name, version.version)
            self.background(self._leave_when_unclaimed(version))
            return
        await self._leave(version)

    async def _leave_when_unclaimed(self, version: AdapterVersion) -> None:
        assert self.claims is not None
        while self.claims.claimed_elsewhere(version.engine_id):
            await asyncio.sleep(min(1.0, self.claims.refresh_s))
        await self._leave(version)

    async def _leave(self, version: AdapterVersion) -> None:
        if version.loaded_at is not None or version.cancelled:
            await self.publisher.withdraw(version.engine_id)
        self.registry.forget(version)
        self.claim()
        async with self._staging[version.spec.digest]:
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

    async def reload(self, engine_id: str) -> None:
        found = self.registry.find(engine_id)
        if found is None:
            return
        try:
            async with self._staging[found.spec.digest]:
                path = await asyncio.to_thread(stage_adapter, found.spec, self.staging_root)
            await self.publisher.publish(engine_id, path)
        except (GatewayError, OSError) as exc:
            # One adapter that cannot come back must not keep the others (or the watcher,
            # which runs beside this) down; its requests get the engine's 404 meanwhile.
            log.error("adapter %s@%s could not be loaded into the restarted engine: %s",
                      found.name, found.version,
                      exc.message if isinstance(exc, GatewayError) else exc)

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Runs ``work`` beside the caller (a drain, a retry); cancelled at :meth:`aclose`."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
