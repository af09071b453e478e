"""Verdicts on grammars, by digest: compiled once in the background, then read from a cache.

The first sight of a grammar queues its compile (:meth:`GrammarChecker.prefetch`): a
structured request queues the grammar of its constrained retry while its first attempt is
still running, so a retry usually finds the verdict made. One compile runs at a time, in
the worker process, off the event loop; every waiter of the same grammar shares it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from gateway.grammar.settings import GrammarCheckSettings
from gateway.grammar.worker import CompileWorker, WorkerUnavailable
from gateway.metrics import Recorder
from gateway.structured.grammars import GrammarSpec, GrammarVerdict

log = logging.getLogger(__name__)

# After the worker failed to start, verdicts say so for this long before it is tried again.
_RESTART_AFTER_S = 30.0
# Grammars queued at most: past this, new ones get a transient "busy" verdict at once, so a
# flood of distinct grammars cannot grow the queue (or the waits behind it) without end.
MAX_QUEUED = 32


class GrammarChecker:
    """Compiles each grammar once under the limits and keeps the verdict."""

    def __init__(self, settings: GrammarCheckSettings, tokenizer: Path | None,
                 recorder: Recorder | None = None) -> None:
        self.settings = settings
        self.recorder = recorder
        self._worker = CompileWorker(settings.compiler, tokenizer, settings.threads,
                                     settings.start_timeout_s)
        self._verdicts: OrderedDict[str, GrammarVerdict] = OrderedDict()
        self._pending: dict[str, asyncio.Future[GrammarVerdict]] = {}
        # None in the queue: start the worker (``warm``).
        self._queue: asyncio.Queue[GrammarSpec | None] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None
        self._broken: tuple[float, str] | None = None
        self.compiles = 0

    @property
    def worker_pid(self) -> int | None:
        """The compile worker's process id, while one runs."""
        return self._worker.pid

    @property
    def worker_starts(self) -> int:
        """How many compile workers were started (one more after each kill)."""
        return self._worker.starts

    def verdict(self, spec: GrammarSpec) -> GrammarVerdict | None:
        """The cached verdict on ``spec``, or None when none is made yet."""
        verdict = self._verdicts.get(spec.key)
        if verdict is not None:
            self._verdicts.move_to_end(spec.key)
        return verdict

    def prefetch(self, specs: Iterable[GrammarSpec]) -> None:
        """Queues the compile of every grammar without a verdict (and not queued yet), while
        the queue has room."""
        for spec in specs:
            if spec.key in self._pending or len(self._pending) < MAX_QUEUED:
                self._future(spec)

    async def wait(self, spec: GrammarSpec, timeout_s: float) -> GrammarVerdict | None:
        """The verdict on ``spec``, waiting for it up to ``timeout_s``; None if not made."""
        cached = self.verdict(spec)
        if cached is not None:
            return cached
        if spec.key not in self._pending and len(self._pending) >= MAX_QUEUED:
            return GrammarVerdict(False, 0.0, f"the compile check is busy ({MAX_QUEUED} grammars "
                                              "queued)", transient=True)
        future = self._future(spec)
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        return None

    def warm(self) -> None:
        """Starts the worker in the background (it loads the tokenizer: seconds), so that the
        first grammar does not wait for it."""
        self._queue.put_nowait(None)
        self._ensure_runner()

    def wait_limit(self) -> float:
        """How long a passed-through request waits for a verdict: the compile limit for
        each grammar queued (one compile runs at a time), and the worker's start when it
        has not started yet."""
        return self.patience() + self.settings.time_limit_s * min(len(self._pending),
                                                                   MAX_QUEUED)

    def patience(self) -> float:
        """How long one verdict may take: the compile limit and a second for the worker to
        report a breach of it, and the worker's start while it is starting."""
        limit = self.settings.time_limit_s + 1.0
        return limit if self._worker.running else limit + self.settings.start_timeout_s

    def _future(self, spec: GrammarSpec) -> asyncio.Future[GrammarVerdict]:
        future = self._pending.get(spec.key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            cached = self.verdict(spec)
            if cached is not None:
                future.set_result(cached)
                return future
            self._pending[spec.key] = future
            self._queue.put_nowait(spec)
            self._ensure_runner()
        return future

    def _ensure_runner(self) -> None:
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name="grammar-check")

    async def _run(self) -> None:
        while True:
            spec = await self._queue.get()
            if spec is None:
                await asyncio.to_thread(self._start)
                continue
            try:
                verdict = self.verdict(spec)
                if verdict is None:
                    verdict = await asyncio.to_thread(self._compile, spec)
                    if not verdict.transient:
                        self._keep(spec, verdict)
            except Exception as exc:  # the worker's pipe or fork failed: this grammar's
                # waiters get a transient verdict, and the loop goes on with the next one
                log.exception("grammar compile check failed for %s", spec.key[:12])
                self._worker_failed(exc)
                verdict = GrammarVerdict(False, 0.0, f"the compile check failed: {exc}",
                                         transient=True)
            # Cancelled above (the gateway stops): the future stays for aclose to answer.
            future = self._pending.pop(spec.key, None)
            if future is not None and not future.done():
                future.set_result(verdict)

    def _start(self) -> None:
        try:
            self._worker.start()
        except (WorkerUnavailable, OSError) as exc:
            self._worker_failed(exc)

    def _worker_failed(self, exc: BaseException) -> None:
        self._broken = (time.monotonic(), str(exc))
        log.error("grammar compile check unavailable: %s", exc)
        self._worker.stop()

    def _compile(self, spec: GrammarSpec) -> GrammarVerdict:
        """One compile in the worker (blocking, on a thread)."""
        if self._broken is not None and time.monotonic() - self._broken[0] < _RESTART_AFTER_S:
            return GrammarVerdict(False, 0.0, self._broken[1], transient=True)
        try:
            result = self._worker.compile(spec.kind, spec.text, self.settings.time_limit_s,
                                          self.settings.memory_limit_mib << 20)
        except WorkerUnavailable as exc:
            # Not cached: a worker that starts later gives the grammar its real verdict.
            self._worker_failed(exc)
            return GrammarVerdict(False, 0.0, str(exc), transient=True)
        self._broken = None
        self.compiles += 1
        return GrammarVerdict(result.problem is None, result.ms, result.problem)

    def _keep(self, spec: GrammarSpec, verdict: GrammarVerdict) -> None:
        self._verdicts[spec.key] = verdict
        while len(self._verdicts) > self.settings.max_verdicts:
            self._verdicts.popitem(last=False)
        if not verdict.compilable:
            log.warning("grammar %s (%s, from %s) is not constrainable: %s", spec.key[:12],
                        spec.kind, spec.param, verdict.reason)
        if self.recorder is not None:
            self.recorder.grammar_verdict(spec.kind, verdict.compilable, verdict.ms / 1000)

    async def aclose(self) -> None:
        """Stops the background compiles and the worker; waiters get a transient verdict."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        closed = GrammarVerdict(False, 0.0, "the gateway is stopping", transient=True)
        for future in self._pending.values():
            if not future.done():
                future.set_result(closed)
        self._pending.clear()
        await asyncio.to_thread(self._worker.close)
