from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.structured.deviations import DeviationKind, Verdict
from gateway.structured.errors import InvalidRetryOverride
from gateway.structured.retry import (
    RetryPolicy,
    RetrySettings,
    Strategy,
    applies,
    effective_policy,
    next_strategy,
)

VALID = Verdict(valid=True, parsed={})
VIOLATION = Verdict(valid=False, kind=DeviationKind.SCHEMA_VIOLATION, keyword="enum")
WRAPPED = Verdict(valid=False, kind=DeviationKind.EXTRA_TEXT, extracted={"category": "billing"})
SETTINGS = RetrySettings()


def test_defaults() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 3
    assert policy.strategies == (Strategy.CONSTRAINED, Strategy.REASK)
    assert Strategy.EXTRACT not in policy.strategies  # opt-in


def test_policy_validation() -> None:
    with pytest.raises(ValidationError, match="at least one"):
        RetryPolicy(strategies=())
    with pytest.raises(ValidationError, match="must not repeat"):
        RetryPolicy(strategies=(Strategy.REASK, Strategy.REASK))
    with pytest.raises(ValidationError):
        RetryPolicy.model_validate({"strategies": ["pray"]})
    with pytest.raises(ValidationError):
        RetryPolicy.model_validate({"max_attempts": 3, "backoff": 1})
    with pytest.raises(ValidationError, match="above max_attempts_ceiling"):
        RetrySettings(policy=RetryPolicy(max_attempts=6), max_attempts_ceiling=5)


def test_no_override_keeps_the_configured_policy() -> None:
    assert effective_policy(SETTINGS, None) is SETTINGS.policy


def test_override_replaces_given_fields() -> None:
    policy = effective_policy(SETTINGS, {"max_attempts": 4, "strategies": ["reask", "extract"]})
    assert policy == RetryPolicy(max_attempts=4, strategies=(Strategy.REASK, Strategy.EXTRACT))
    assert effective_policy(SETTINGS, {"max_attempts": 1}).strategies == SETTINGS.policy.strategies
    assert effective_policy(SETTINGS, {}).max_attempts == SETTINGS.policy.max_attempts


def test_override_above_the_ceiling_is_refused() -> None:
    with pytest.raises(InvalidRetryOverride) as info:
        effective_policy(SETTINGS, {"max_attempts": 50})
    assert info.value.param == "retry.max_attempts"
    assert "at most 5" in info.value.message


@pytest.mark.parametrize(
    ("override", "param"),
    [
        ("three", "retry"),
        ({"max_attempts": 0}, "retry.max_attempts"),
        ({"max_attempts": "4"}, "retry.max_attempts"),
        ({"strategies": ["reask", "pray"]}, "retry.strategies.1"),
        ({"strategies": []}, "retry"),
        ({"max_attempt": 2}, "retry.max_attempt"),
    ],
)
def test_malformed_override_names_the_param(override: object, param: str) -> None:
    with pytest.raises(InvalidRetryOverride) as info:
        effective_policy(SETTINGS, override)
    assert info.value.param == param
    assert info.value.status_code == 400


def test_applies() -> None:
    assert applies(Strategy.EXTRACT, WRAPPED)
    assert not applies(Strategy.EXTRACT, VIOLATION)
    assert applies(Strategy.CONSTRAINED, VIOLATION)
    assert not applies(Strategy.CONSTRAINED, VIOLATION, can_constrain=False)
    assert applies(Strategy.REASK, VIOLATION) and applies(Strategy.RESAMPLE, VIOLATION)


def test_nothing_to_do_for_a_valid_answer_or_when_attempts_are_spent() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert next_strategy(policy, 1, VALID) is None
    assert next_strategy(policy, 3, VIOLATION) is None


def test_strategies_in_order_then_the_last_repeats() -> None:
    policy = RetryPolicy(max_attempts=5, strategies=(Strategy.CONSTRAINED, Strategy.REASK))
    assert next_strategy(policy, 1, VIOLATION) is Strategy.CONSTRAINED
    assert next_strategy(policy, 2, VIOLATION, [Strategy.CONSTRAINED]) is Strategy.REASK
    used = [Strategy.CONSTRAINED, Strategy.REASK]
    assert next_strategy(policy, 3, VIOLATION, used) is Strategy.REASK


def test_extract_only_for_an_answer_with_json_inside() -> None:
    policy = RetryPolicy(strategies=(Strategy.EXTRACT, Strategy.REASK))
    assert next_strategy(policy, 1, WRAPPED) is Strategy.EXTRACT
    # The extracted object failed the schema: extract is done, reask is next.
    assert next_strategy(policy, 1, VIOLATION, [Strategy.EXTRACT]) is Strategy.REASK
    assert next_strategy(policy, 1, VIOLATION) is Strategy.REASK


def test_extract_is_never_repeated() -> None:
    policy = RetryPolicy(strategies=(Strategy.EXTRACT,))
    assert next_strategy(policy, 1, WRAPPED, [Strategy.EXTRACT]) is None


def test_constrained_is_skipped_when_unavailable() -> None:
    policy = RetryPolicy(strategies=(Strategy.CONSTRAINED, Strategy.RESAMPLE))
    assert next_strategy(policy, 1, VIOLATION, can_constrain=False) is Strategy.RESAMPLE
    only = RetryPolicy(strategies=(Strategy.CONSTRAINED,))
    assert next_strategy(only, 1, VIOLATION, can_constrain=False) is None


def test_only_extract_calls_no_engine() -> None:
    assert [s for s in Strategy if not s.calls_engine] == [Strategy.EXTRACT]
