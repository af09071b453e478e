"""Retry policy for structured answers, its per-request override, and the planner.

Strategies, tried in the order a policy lists them:

``constrained``  ask again with grammar-constrained decoding on the schema.
``reask``        ask again, quoting the invalid answer and what was wrong with it.
``resample``     ask the same thing again.
``extract``      take the JSON object found inside the answer (``extra_text``); makes no
                 engine call. Opt-in: it accepts an answer the model wrapped in prose.

A request may override the configured policy with a top-level body field
``retry`` (with the openai SDK: ``extra_body={"retry": {...}}``)::

    "retry": {"max_attempts": 4, "strategies": ["reask", "constrained"]}

Both keys are optional; ``max_attempts: 1`` turns retries off.
``max_attempts`` may not exceed ``RetrySettings.max_attempts_ceiling``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.structured.budget import RetryBudgetSettings
from gateway.structured.deviations import Verdict
from gateway.structured.errors import InvalidRetryOverride

OVERRIDE_FIELD = "retry"


class Strategy(StrEnum):
    """How the next attempt is made; values are metric labels."""

    RESAMPLE = "resample"
    REASK = "reask"
    CONSTRAINED = "constrained"
    EXTRACT = "extract"

    @property
    def calls_engine(self) -> bool:
        return self is not Strategy.EXTRACT


def _check_strategies(strategies: Sequence[Strategy]) -> None:
    if not strategies:
        raise ValueError("strategies must name at least one strategy")
    if len(set(strategies)) != len(strategies):
        raise ValueError("strategies must not repeat a strategy")


class RetryPolicy(BaseModel):
    """How many attempts a structured request gets, and how each retry is made."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(3, ge=1, le=20, description="Attempts in all, the first included.")
    strategies: tuple[Strategy, ...] = Field(
        (Strategy.CONSTRAINED, Strategy.REASK),
        description="Retry strategies in the order they are tried.",
    )

    @model_validator(mode="after")
    def _valid_strategies(self) -> Self:
        _check_strategies(self.strategies)
        return self


class RetryOverride(BaseModel):
    """The per-request ``retry`` body field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int | None = Field(None, ge=1, strict=True)
    strategies: tuple[Strategy, ...] | None = None

    @model_validator(mode="after")
    def _valid_strategies(self) -> Self:
        if self.strategies is not None:
            _check_strategies(self.strategies)
        return self


class RetrySettings(BaseModel):
    """The configured policy, the ceiling for overrides, and the retry budget."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: RetryPolicy = RetryPolicy()
    max_attempts_ceiling: int = Field(5, ge=1, le=20)
    budget: RetryBudgetSettings = RetryBudgetSettings()

    @model_validator(mode="after")
    def _policy_under_ceiling(self) -> Self:
        if self.policy.max_attempts > self.max_attempts_ceiling:
            raise ValueError(
                f"policy.max_attempts ({self.policy.max_attempts}) is above "
                f"max_attempts_ceiling ({self.max_attempts_ceiling})"
            )
        return self


def effective_policy(settings: RetrySettings, override: object) -> RetryPolicy:
    """The policy for one request: the configured one, changed by its ``retry`` field."""
    if override is None:
        return settings.policy
    try:
        parsed = RetryOverride.model_validate(override)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join([OVERRIDE_FIELD, *(str(part) for part in first["loc"])])
        raise InvalidRetryOverride(
            f"{param}: {first['msg']}; expected "
            '{"max_attempts": <int>, "strategies": [<one or more of '
            '"constrained", "reask", "resample", "extract">]}',
            param=param,
        ) from exc
    attempts = parsed.max_attempts or settings.policy.max_attempts
    if attempts > settings.max_attempts_ceiling:
        raise InvalidRetryOverride(
            f"retry.max_attempts is {attempts}; at most {settings.max_attempts_ceiling} "
            "attempts are allowed",
            param=f"{OVERRIDE_FIELD}.max_attempts",
        )
    return RetryPolicy(
        max_attempts=attempts, strategies=parsed.strategies or settings.policy.strategies
    )


def applies(strategy: Strategy, verdict: Verdict, *, can_constrain: bool = True) -> bool:
    """Whether ``strategy`` can fix an answer with this verdict."""
    if strategy is Strategy.EXTRACT:
        return verdict.extracted is not None
    if strategy is Strategy.CONSTRAINED:
        return can_constrain
    return True


def next_strategy(
    policy: RetryPolicy,
    attempt: int,
    verdict: Verdict,
    used: Sequence[Strategy] = (),
    *,
    can_constrain: bool = True,
) -> Strategy | None:
    """The strategy for the next attempt, or ``None`` when there is none to make.

    ``attempt`` counts the engine answers so far (1 after the first), ``used``
    the strategies already applied to this request. The first applicable
    strategy not yet used wins; once all were used, the last applicable one
    is repeated. ``extract`` makes no engine call and so does not count as an
    attempt. ``can_constrain`` is false where constrained decoding is not
    available (a caller without a grammar backend).
    """
    if verdict.valid or attempt >= policy.max_attempts:
        return None
    candidates = [s for s in policy.strategies if applies(s, verdict, can_constrain=can_constrain)]
    if not candidates:
        return None
    fresh = [s for s in candidates if s not in used]
    if fresh:
        return fresh[0]
    repeatable = [s for s in candidates if s.calls_engine]
    return repeatable[-1] if repeatable else None
