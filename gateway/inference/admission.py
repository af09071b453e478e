"""Fair shares: how many requests each API key, and the gateway in all, may have in flight.

Past a limit the request is refused at once with 429 (``rate_limit_error``) and
``retry-after``, before anything reaches the engine, so one tenant cannot starve the
others by holding every engine slot. A request holds its place until its answer is
complete: a structured request for all of its attempts (retries count against the
caller), a stream until it ends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from gateway.errors import RateLimited

ANONYMOUS = "anonymous"
RETRY_AFTER_S = 1


class Admission:
    """Counts requests in flight per caller and in all; ``None`` limits are unlimited."""

    def __init__(self, total: int | None = None, per_key: int | None = None) -> None:
        self.total = total
        self.per_key = per_key
        self._in_flight: Counter[str] = Counter()
        self._all = 0

    @contextmanager
    def admit(self, caller: str | None) -> Iterator[None]:
        """Holds one place for ``caller`` (an API key's name; None without keys)."""
        name = caller or ANONYMOUS
        if self.total is not None and self._all >= self.total:
            raise _refused(f"The gateway is answering its limit of {self.total} requests at "
                           "once; retry shortly.")
        if self.per_key is not None and self._in_flight[name] >= self.per_key:
            raise _refused(f"The API key {name!r} has {self.per_key} requests in flight, its "
                           "limit; wait for one to finish or retry shortly.")
        self._all += 1
        self._in_flight[name] += 1
        try:
            yield
        finally:
            self._all -= 1
            self._in_flight[name] -= 1
            if not self._in_flight[name]:
                del self._in_flight[name]


def _refused(message: str) -> RateLimited:
    return RateLimited(message, code="concurrency_limit",
                       headers={"retry-after": str(RETRY_AFTER_S)})
