"""``make bench --check``: side-by-side figures are judged, absolute timings are not."""

from __future__ import annotations

import pytest

from benchmarks.side_by_side import Figure, Results, check

STATED = {
    "engine.e2e_ratio": {"median": 1.0, "spread": [0.98, 1.03]},
    "engine.e2e_direct": {"median": 4.0, "spread": [3.7, 4.4]},
    "swap.failed": {"median": 0, "spread": [0, 0]},
}


def _results(ratio: float, direct: float, failed: float) -> Results:
    results = Results()
    for key, unit, value in (("engine.e2e_ratio", "x", ratio), ("engine.e2e_direct", "s", direct),
                             ("swap.failed", "requests", failed)):
        results.figures[key] = Figure(key, key, unit, [value, value])
    return results


def test_absolute_drift_is_printed_not_judged(capsys: pytest.CaptureFixture[str]) -> None:
    assert check(_results(1.01, 5.2, 0), STATED) == 0
    out = capsys.readouterr().out
    assert "2 of 2 side-by-side figures within" in out
    assert "1.30x documented" in out


@pytest.mark.parametrize(("ratio", "failed"), [(1.10, 0), (1.0, 1)])
def test_a_ratio_or_a_count_outside_its_spread_fails(ratio: float, failed: float,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert check(_results(ratio, 4.0, failed), STATED) == 1
    assert "OUTSIDE" in capsys.readouterr().out
