"""Keeps the embedded engine running: restarts it when it exits or stops answering.

The supervisor starts and stops one vLLM process; the keeper watches it for the life
of the app. When the process exits, never becomes healthy, or stops answering its
health check, the keeper logs why, counts the restart, stops what is left of it and
starts it again after a backoff (1 s, 2 s, 4 s, ... up to ``max_backoff_s``), on the
same port and with the same key, so the engine client needs no change. The monitor is
told, so readiness drops at once and, once the engine answers again, the adapter store
loads every adapter into it again.

The keeper gives up when the engine cannot run here: after ``max_failed_starts`` starts
in a row that never became healthy (exits before answering, or start time-outs), or after
more than ``max_restarts`` restarts within ``window_s``. Counting failed starts apart matters:
a start time-out cycle lasts ``startup_timeout_s``, and a slow crash cycle (an out-of-memory
kill after a long GPU load) may outlast ``window_s / max_restarts``, so the window alone
might never fill. Giving up is reported (``/health`` answers 503, so a liveness probe
restarts the whole gateway; ``gateway_engine_failed`` turns 1 for the alerts), or ends the
process with status :data:`EXIT_ENGINE_FAILED` for a process manager to act on. So does any
error of the keeper itself: it never ends silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable
from typing import Literal

from pydantic import Field

from gateway._sections import Section
from gateway.engine.monitor import EngineMonitor
from gateway.engine.supervisor import VllmSupervisor
from gateway.metrics import Recorder

log = logging.getLogger(__name__)

EXIT_ENGINE_FAILED = 3
# The bounded reasons of gateway_engine_restarts_total.
EXITED, UNRESPONSIVE, START_TIMEOUT = "exited", "unresponsive", "start_timeout"
RESTART_REASONS = (EXITED, UNRESPONSIVE, START_TIMEOUT)


class RestartSettings(Section):
    """The ``engine.restart`` section (embedded mode)."""

    max_restarts: int = Field(5, ge=0)
    window_s: float = Field(1800.0, gt=0)
    # Starts in a row that never became healthy before the keeper gives up.
    max_failed_starts: int = Field(3, ge=1)
    max_backoff_s: float = Field(30.0, gt=0)
    # A running engine whose health check fails this long is restarted.
    unresponsive_after_s: float = Field(30.0, gt=0)
    on_failure: Literal["report", "exit"] = "report"


class EngineKeeper:
    """Watches one supervised engine and restarts it; ``failure`` once it gave up."""

    def __init__(
        self,
        supervisor: VllmSupervisor,
        monitor: EngineMonitor,
        recorder: Recorder,
        settings: RestartSettings,
        *,
        startup_timeout_s: float,
        check_interval_s: float = 1.0,
        exit_process: Callable[[int], object] = os._exit,
    ) -> None:
        self.supervisor = supervisor
        self.monitor = monitor
        self.recorder = recorder
        self.settings = settings
        self.startup_timeout_s = startup_timeout_s
        self.check_interval_s = check_interval_s
        self.failure: str | None = None
        self.restarts = 0
        # Whether the engine answered the keeper's last health check.
        self.answering = False
        self.failed_starts = 0
        self._recent: deque[float] = deque()
        self._exit = exit_process
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep(), name="engine-keeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _keep(self) -> None:
        try:
            await self._restart_until_given_up()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the keeper must never end without a word
            log.exception("the engine keeper failed")
            await self._give_up(f"could not be kept running: the keeper failed with "
                                f"{type(exc).__name__}: {exc}")

    async def _restart_until_given_up(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            reason, detail, answered = await self._watch()
            now = loop.time()
            self._recent.append(now)
            while self._recent and now - self._recent[0] > self.settings.window_s:
                self._recent.popleft()
            self.failed_starts = 0 if answered else self.failed_starts + 1
            self.recorder.engine_restarted(reason)
            self.monitor.engine_down(f"the engine {detail}; restarting it")
            if len(self._recent) > self.settings.max_restarts:
                await self._give_up(f"{detail}, and was restarted {self.settings.max_restarts} "
                                    f"times within {self.settings.window_s:.0f} s")
                return
            if self.failed_starts >= self.settings.max_failed_starts:
                await self._give_up(f"{detail}, and {self.failed_starts} starts in a row never "
                                    "became healthy")
                return
            backoff = min(2.0 ** (len(self._recent) - 1), self.settings.max_backoff_s)
            log.error("the engine %s (log: %s); restart %d in %.0f s", detail,
                      self.supervisor.log_file, len(self._recent), backoff)
            await self.supervisor.stop()
            await asyncio.sleep(backoff)
            await self.supervisor.start()
            self.restarts += 1

    async def _watch(self) -> tuple[str, str, bool]:
        """Returns (reason, what happened, whether it ever answered) once the engine needs a
        restart."""
        loop = asyncio.get_running_loop()
        exited = asyncio.create_task(self.supervisor.wait_exit())
        started = loop.time()
        answered_at: float | None = None
        try:
            while not exited.done():
                now = loop.time()
                self.answering = await self.supervisor.healthy()
                if self.answering:
                    answered_at = now
                elif answered_at is None and now - started > self.startup_timeout_s:
                    return START_TIMEOUT, (f"did not become healthy within "
                                           f"{self.startup_timeout_s:.0f} s"), False
                elif (answered_at is not None
                      and now - answered_at > self.settings.unresponsive_after_s):
                    return UNRESPONSIVE, (f"stopped answering its health check for "
                                          f"{self.settings.unresponsive_after_s:.0f} s"), True
                await asyncio.wait({exited}, timeout=self.check_interval_s)
            return EXITED, f"exited with status {exited.result()}", answered_at is not None
        finally:
            self.answering = False
            exited.cancel()

    async def _give_up(self, detail: str) -> None:
        self.failure = f"the engine {detail}; see {self.supervisor.log_file}"
        log.critical("giving up on the engine: %s", self.failure)
        self.recorder.engine_failed()
        self.monitor.engine_down(self.failure)
        with contextlib.suppress(Exception):
            await self.supervisor.stop()
        if self.settings.on_failure == "exit":
            logging.shutdown()
            self._exit(EXIT_ENGINE_FAILED)
