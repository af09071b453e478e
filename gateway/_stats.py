"""Intervals for proportions, shared by the eval report and the rollout gate.

Written here rather than taken from a library: the formulas are short and exact, and the
libraries that have them (statsmodels, scipy) are far heavier than the serving path
should carry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

Z95 = 1.959963984540054


def z_for(confidence: float) -> float:
    """The two-sided normal quantile for ``confidence`` (0.95 -> 1.96)."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``hits`` successes in ``n`` trials."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def difference_interval(
    hits_a: int, n_a: int, hits_b: int, n_b: int, z: float = Z95
) -> tuple[float, float]:
    """Interval of ``rate_a - rate_b``: Newcombe's hybrid score method (his method 10).

    Built from the two Wilson intervals; it keeps its coverage for small samples and
    rates near 0 or 1, where the plain normal approximation does not.
    """
    p_a = hits_a / n_a if n_a else 0.0
    p_b = hits_b / n_b if n_b else 0.0
    low_a, high_a = wilson(hits_a, n_a, z)
    low_b, high_b = wilson(hits_b, n_b, z)
    difference = p_a - p_b
    return (difference - math.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2),
            difference + math.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
