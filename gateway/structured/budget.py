"""A retry budget: retries may be at most a share of the requests in a sliding window.

Retries multiply engine load exactly when the engine does worst, so they are
capped: within the last ``window_s`` seconds, retries may not exceed
``ratio`` times the requests seen, except that ``min_retries`` are always
allowed so that a quiet gateway can still retry. The runner keeps one budget
per adapter, so an adapter that deviates a lot spends only its own retries.

Every call holds a lock and never awaits, so one instance is safe from the
event loop and from worker threads alike.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field


class RetryBudgetSettings(BaseModel):
    """The share of requests that may be retried, over which window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ratio: float = Field(1.0, ge=0.0, le=1.0, description="Retries per request in the window.")
    window_s: float = Field(60.0, gt=0.0, description="Length of the sliding window.")
    min_retries: int = Field(10, ge=0, description="Retries always allowed in the window.")


class RetryBudget:
    """Counts requests and retries in a sliding window and rations retries."""

    def __init__(
        self,
        settings: RetryBudgetSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings if settings is not None else RetryBudgetSettings()
        self._clock = clock
        self._lock = threading.Lock()
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()

    def record_request(self) -> None:
        """Counts one request (a first attempt) toward the budget."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            self._requests.append(now)

    def try_spend(self) -> bool:
        """Takes one retry from the budget; ``False`` (and nothing taken) when it is spent."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            if len(self._retries) >= self._allowance():
                return False
            self._retries.append(now)
            return True

    def remaining(self) -> int:
        """Retries that would be granted now."""
        with self._lock:
            self._expire(self._clock())
            return max(0, self._allowance() - len(self._retries))

    def _allowance(self) -> int:
        share = int(self.settings.ratio * len(self._requests))
        return max(self.settings.min_retries, share)

    def _expire(self, now: float) -> None:
        horizon = now - self.settings.window_s
        for events in (self._requests, self._retries):
            while events and events[0] <= horizon:
                events.popleft()
