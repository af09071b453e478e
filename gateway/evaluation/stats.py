"""Proportions with Wilson intervals, percentiles, and how many items a decision needs."""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway._stats import Z95, percentile, wilson

__all__ = ["Z95", "Proportion", "items_needed", "percentile", "wilson"]


@dataclass(frozen=True)
class Proportion:
    """``hits`` of ``n``, with its 95 % Wilson score interval."""

    hits: int
    n: int

    @property
    def rate(self) -> float:
        return self.hits / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.hits, self.n)


def items_needed(rate: float, low: float, high: float, limit: int = 1_000_000) -> int:
    """How many items, at the observed ``rate``, make the interval leave [low, high] apart:
    no longer reach both thresholds at once."""
    n = 10
    while n < limit:
        lo, hi = wilson(round(rate * n), n)
        if not (lo < low and hi > high):
            return n
        n = math.ceil(n * 1.25)
    return limit
