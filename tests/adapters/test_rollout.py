"""The rollout gate and routing, on counted answers (no engine, no gateway)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from gateway.rollouts.rollout import (
    CANDIDATE,
    STABLE,
    Action,
    GateSettings,
    Rollout,
    RolloutPolicy,
    Stage,
    State,
    bucket,
)

TWO_STAGES = RolloutPolicy(stages=(Stage(mode="shadow", share=0.5),
                                   Stage(mode="canary", share=0.2)),
                           gate=GateSettings(min_checks=30))


def _rollout(policy: RolloutPolicy = TWO_STAGES) -> Rollout:
    return Rollout("ticket-router", "1", "2", "sha256:aa", "sha256:bb", policy)


def _answers(rollout: Rollout, role: str, checks: int, deviated: int,
             latency_s: float = 1.0) -> None:
    for index in range(checks):
        rollout.record(role, error=False, latency_s=latency_s, deviated=index < deviated)


def test_a_candidate_that_deviates_more_is_rolled_back() -> None:
    rollout = _rollout()
    _answers(rollout, STABLE, 40, 2)
    _answers(rollout, CANDIDATE, 40, 20)
    decision = rollout.evaluate()
    assert decision is not None and decision.action is Action.ROLLBACK
    assert "20/40 deviated against 2/40" in decision.reason
    low, high = decision.numbers["deviation_difference_interval"]
    assert 0 < low < 0.45 < high


def test_too_few_checks_hold_and_an_equal_candidate_needs_enough_to_pass() -> None:
    rollout = _rollout()
    _answers(rollout, STABLE, 29, 0)
    _answers(rollout, CANDIDATE, 40, 0)
    assert rollout.evaluate() is None  # stable has 29 checks of 30
    _answers(rollout, STABLE, 1, 0)
    assert rollout.evaluate() is None  # 0/40 against 0/30: 0 to 8.8 % is still possible
    _answers(rollout, CANDIDATE, 40, 0)  # 0/80: at most 4.6 %, under the 5 % margin
    decision = rollout.evaluate()
    assert decision is not None and decision.action is Action.ADVANCE


def test_passing_every_stage_promotes() -> None:
    rollout = _rollout()
    for _ in TWO_STAGES.stages:
        _answers(rollout, STABLE, 40, 30)
        _answers(rollout, CANDIDATE, 40, 0)
        decision = rollout.evaluate()
        assert decision is not None
        rollout.apply(decision)
        assert rollout.stats[CANDIDATE].checks == 0 or decision.action is Action.PROMOTE
    assert [d.action for d in rollout.decisions] == [Action.ADVANCE, Action.PROMOTE]
    assert rollout.state is State.PROMOTED and rollout.evaluate() is None


def test_a_slower_candidate_holds_and_an_error_burst_rolls_back() -> None:
    rollout = _rollout()
    _answers(rollout, STABLE, 100, 0, latency_s=1.0)
    _answers(rollout, CANDIDATE, 100, 0, latency_s=2.0)
    assert rollout.evaluate() is None  # not worse in format, but 100 % slower at p95
    for _ in range(4):
        rollout.record(CANDIDATE, error=True)
    assert rollout.evaluate() is None
    rollout.record(CANDIDATE, error=True)
    decision = rollout.evaluate()
    assert decision is not None and decision.action is Action.ROLLBACK
    assert "5 candidate requests failed in a row" in decision.reason


def test_a_canary_caller_stays_on_one_version() -> None:
    rollout = _rollout()
    rollout.manual(Action.ADVANCE, "operator")  # to the canary stage
    callers = [f"key-{index}" for index in range(2000)]
    for caller in callers[:20]:  # enough distinct callers to split by caller
        rollout.answers_with_candidate(caller, 0.0)
    assert rollout.by_caller and rollout.as_dict()["split"] == "caller"
    # The draw no longer matters: each caller gets the same answer every time.
    chosen = {c for c in callers if rollout.answers_with_candidate(c, 0.0)}
    assert all(rollout.answers_with_candidate(c, 0.99) for c in chosen)
    assert 0.15 < len(chosen) / len(callers) < 0.25
    assert not rollout.wants_shadow(0.0)  # no shadow in a canary stage
    assert 0 <= bucket("ticket-router", "key-1") < 1


def test_a_canary_with_too_few_callers_splits_by_request() -> None:
    """One application key: a split by caller would send all or nothing to the candidate."""
    rollout = _rollout()
    rollout.manual(Action.ADVANCE, "operator")  # to the canary stage (share 0.2)
    assert rollout.answers_with_candidate("the-one-key", 0.1)
    assert not rollout.answers_with_candidate("the-one-key", 0.3)
    assert rollout.as_dict()["split"] == "request" and not rollout.by_caller


def test_shadow_copies_its_share_and_answers_nobody() -> None:
    rollout = _rollout()
    assert rollout.wants_shadow(0.49) and not rollout.wants_shadow(0.5)
    assert not any(rollout.answers_with_candidate(f"key-{i}", 0.0) for i in range(100))


def test_a_rollout_is_stored_and_read_back_whole() -> None:
    rollout = _rollout()
    _answers(rollout, STABLE, 10, 3)
    rollout.manual(Action.ADVANCE, "looked fine")
    _answers(rollout, CANDIDATE, 7, 1)
    again = Rollout.from_dict(json.loads(json.dumps(rollout.as_dict())))
    assert {k: v for k, v in again.as_dict().items() if k != "stats"} == {
        k: v for k, v in rollout.as_dict().items() if k != "stats"}
    assert again.stage == 1 and again.stats[CANDIDATE].checks == 7
    assert again.decisions[0].reason == "looked fine"


@given(stable=st.integers(0, 60), candidate=st.integers(0, 60))
def test_a_candidate_no_worse_than_stable_is_never_rolled_back(
    stable: int, candidate: int
) -> None:
    rollout = _rollout()
    _answers(rollout, STABLE, 60, max(stable, candidate))
    _answers(rollout, CANDIDATE, 60, min(stable, candidate))
    decision = rollout.evaluate()
    assert decision is None or decision.action is not Action.ROLLBACK
