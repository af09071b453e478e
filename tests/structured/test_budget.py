from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError

from gateway.structured.budget import RetryBudget, RetryBudgetSettings


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def budget(clock: Clock, **settings: float) -> RetryBudget:
    return RetryBudget(RetryBudgetSettings.model_validate(settings), clock=clock)


def test_retries_are_a_share_of_requests() -> None:
    clock = Clock()
    retries = budget(clock, ratio=0.2, window_s=60, min_retries=0)
    for _ in range(50):
        retries.record_request()
    granted = sum(retries.try_spend() for _ in range(20))
    assert granted == 10
    assert retries.remaining() == 0


def test_a_quiet_gateway_can_still_retry() -> None:
    clock = Clock()
    retries = budget(clock, ratio=0.2, min_retries=3)
    retries.record_request()
    assert [retries.try_spend() for _ in range(4)] == [True, True, True, False]


def test_the_window_slides() -> None:
    clock = Clock()
    retries = budget(clock, ratio=0.5, window_s=10, min_retries=0)
    for _ in range(4):
        retries.record_request()
    assert retries.try_spend() and retries.try_spend() and not retries.try_spend()
    clock.now += 5
    for _ in range(2):
        retries.record_request()
    assert retries.try_spend() and not retries.try_spend()
    clock.now += 5.5  # the first four requests and two retries leave the window
    assert retries.remaining() == 0  # 2 requests * 0.5 = 1, and 1 retry is still inside
    clock.now += 5
    assert retries.remaining() == 0  # nothing left in the window at all
    retries.record_request()
    retries.record_request()
    assert retries.try_spend()


def test_zero_ratio_allows_only_the_floor() -> None:
    clock = Clock()
    retries = budget(clock, ratio=0.0, min_retries=1)
    for _ in range(100):
        retries.record_request()
    assert retries.try_spend() and not retries.try_spend()


def test_defaults() -> None:
    settings = RetryBudgetSettings()
    assert (settings.ratio, settings.window_s, settings.min_retries) == (1.0, 60.0, 10)
    with pytest.raises(ValidationError):
        RetryBudgetSettings(ratio=1.5)
    with pytest.raises(ValidationError):
        RetryBudgetSettings.model_validate({"share": 0.1})


def test_concurrent_spending_never_exceeds_the_allowance() -> None:
    retries = RetryBudget(RetryBudgetSettings(ratio=0.1, min_retries=0))
    for _ in range(1000):
        retries.record_request()
    results: list[bool] = []
    lock = threading.Lock()

    def spend() -> None:
        granted = [retries.try_spend() for _ in range(50)]
        with lock:
            results.extend(granted)

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(results) == 100
