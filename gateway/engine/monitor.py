"""Tracks whether the engine answers, so readiness can gate traffic."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.engine.client import EngineClient
from gateway.errors import EngineUnavailable
from gateway.metrics import Recorder

log = logging.getLogger(__name__)


def server_label(url: str) -> str:
    """The metrics label of an engine server: its host and port (no scheme, no path)."""
    return url.split("://", 1)[-1].split("/", 1)[0]


class EngineMonitor:
    """Polls the engine's health in the background; ``ready`` is the last answer."""

    def __init__(self, engine: EngineClient, recorder: Recorder, interval: float) -> None:
        self.engine = engine
        self.recorder = recorder
        self.interval = interval
        self.ready = False
        self.reason = "the engine has not answered yet"
        self.became_ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ejections = {server.url: 0 for server in engine.servers}

    async def check(self) -> bool:
        healthy = await self.engine.healthy()
        self._set(healthy, "" if healthy else "the engine does not answer its health check")
        for server in self.engine.servers:
            new = server.ejections_total - self._ejections[server.url]
            self._ejections[server.url] = server.ejections_total
            self.recorder.engine_server(server_label(server.url), server.admitted, new)
        if self.engine.readmitted.is_set():
            # A server is back: with runtime loads it has lost its adapters; the store
            # loads them into every server again (the others answer "already loaded").
            self.engine.readmitted.clear()
            if self.ready:
                self.became_ready.set()
        return healthy

    def servers(self) -> list[dict[str, object]]:
        """Each engine server's standing, for /ready."""
        return [server.as_dict() for server in self.engine.servers]

    def engine_down(self, reason: str) -> None:
        """The engine is known to be down (restarting): not ready until it answers again,
        which then counts as becoming ready (the adapters are loaded into it again)."""
        self._set(False, reason)

    def require_ready(self) -> None:
        if not self.ready:
            raise EngineUnavailable(
                f"The engine is not ready ({self.reason}); retry shortly. GET /ready tells when.",
                headers={"retry-after": "5"},
            )

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="engine-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval if self.ready else min(self.interval, 1.0))

    def _set(self, ready: bool, reason: str) -> None:
        if ready != self.ready:
            log.info("engine %s", "ready" if ready else f"not ready: {reason}")
            # Set on every transition to ready; whoever waits clears it after acting.
            if ready:
                self.became_ready.set()
        self.ready = ready
        self.reason = reason
        self.recorder.engine_ready(ready)
