"""A candidate adapter version earning its traffic: stages, routing and the gate.

Pure bookkeeping: which share of requests the candidate sees (``shadow``: a copy of the
request, whose answer is checked and never returned; ``canary``: the answer itself, sticky
per caller), what each version's answers did, and what the gate decides from it. The
adapter service acts on the decisions (publishing or dropping the candidate).

The gate compares first-attempt deviation rates, the format-quality measure the gateway
already takes on every structured answer. Once both versions have ``min_checks`` checks
in the current stage:

* **roll back** when the candidate deviates more with confidence: the lower bound of the
  interval of (candidate rate - stable rate) is above 0 (Newcombe's interval from the two
  Wilson intervals), or its error ratio is above stable's by more than ``error_margin``
  with confidence, or ``error_burst`` of its requests failed in a row (at any time);
* **pass** when it is not worse: the upper bound is below ``deviation_margin``, its error
  ratio is within ``error_margin`` of stable's and its p95 latency within
  ``latency_margin`` of stable's. A pass moves to the next stage; after the last stage
  the candidate is promoted;
* else **hold**: more checks are needed to tell.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway._stats import difference_interval, percentile, wilson, z_for

STABLE, CANDIDATE = "stable", "candidate"
ROLES = (STABLE, CANDIDATE)
# Latencies kept per version and stage for the p95 (the most recent ones).
_LATENCIES = 500


class Stage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["shadow", "canary"]
    share: float = Field(gt=0, le=1, description="Share of the adapter's requests.")


class GateSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_checks: int = Field(30, ge=1, description="Structured checks per version and stage "
                                                  "before the gate decides.")
    confidence: float = Field(0.95, gt=0.5, lt=1)
    deviation_margin: float = Field(0.05, ge=0, le=1, description="How much higher the "
                                    "candidate's deviation rate may be and still pass.")
    error_margin: float = Field(0.02, ge=0, le=1)
    latency_margin: float = Field(0.5, ge=0, description="Candidate p95 at most this much "
                                  "above stable's (0.5: 50 %).")
    error_burst: int = Field(5, ge=1, description="Candidate failures in a row that roll it "
                                                  "back at once.")


class RolloutPolicy(BaseModel):
    """How a new version of an adapter is rolled out (``adapters.rollout`` and per call)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stages: tuple[Stage, ...] = Field(
        (Stage(mode="shadow", share=0.5), Stage(mode="canary", share=0.1),
         Stage(mode="canary", share=0.5)), min_length=1)
    gate: GateSettings = GateSettings()
    # Shadow requests in flight at once, per adapter; more are skipped, never queued.
    shadow_max_in_flight: int = Field(4, ge=1)
    # A canary splits by caller (sticky) once it has seen this many distinct callers in
    # the stage; before that, by request, so that both versions get traffic even behind
    # one application key.
    min_sticky_callers: int = Field(20, ge=1)


class State(StrEnum):
    ACTIVE = "active"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"


class Action(StrEnum):
    START = "start"
    ADVANCE = "advance"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    ABORT = "abort"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    stage: int
    at: float = field(default_factory=time.time)
    numbers: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action.value, "reason": self.reason, "stage": self.stage,
                "at": self.at, "numbers": self.numbers}


@dataclass
class RoleStats:
    """What one version's answers did in the current stage."""

    requests: int = 0
    errors: int = 0
    checks: int = 0
    deviations: int = 0
    errors_in_row: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCIES))

    def record(self, *, error: bool, latency_s: float | None, deviated: bool | None) -> None:
        self.requests += 1
        if error:
            self.errors += 1
            self.errors_in_row += 1
        else:
            self.errors_in_row = 0
            if latency_s is not None:
                self.latencies.append(latency_s)
        if deviated is not None:
            self.checks += 1
            self.deviations += deviated

    @property
    def deviation_rate(self) -> float | None:
        return self.deviations / self.checks if self.checks else None

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def p95_s(self) -> float | None:
        return percentile(list(self.latencies), 0.95) if self.latencies else None

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "checks": self.checks,
                "deviations": self.deviations, "deviation_rate": self.deviation_rate,
                "error_ratio": self.error_ratio, "p95_s": self.p95_s}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoleStats:
        return cls(requests=int(data["requests"]), errors=int(data["errors"]),
                   checks=int(data["checks"]), deviations=int(data["deviations"]))


@dataclass
class Rollout:
    """One adapter's rollout: its two versions, its stage, their numbers, its decisions."""

    name: str
    stable: str  # version labels
    candidate: str
    stable_digest: str
    candidate_digest: str
    policy: RolloutPolicy = field(default_factory=RolloutPolicy)
    # Per role: where its files were loaded from and its serving defaults, to load it
    # again after a restart (``source``, ``serving``).
    origins: dict[str, dict[str, Any]] = field(default_factory=dict)
    stage: int = 0
    state: State = State.ACTIVE
    stats: dict[str, RoleStats] = field(
        default_factory=lambda: {role: RoleStats() for role in ROLES})
    decisions: list[Decision] = field(default_factory=list)
    # Distinct callers the current canary stage has seen (their places, up to the policy's
    # min_sticky_callers: no key is kept).
    callers: set[float] = field(default_factory=set)

    @property
    def current(self) -> Stage:
        return self.policy.stages[self.stage]

    @property
    def active(self) -> bool:
        return self.state is State.ACTIVE

    # -- routing -------------------------------------------------------------------------

    def answers_with_candidate(self, caller: str, draw: float) -> bool:
        """Canary: whether this request of ``caller`` goes to the candidate.

        By caller (the same answer each time) once the stage has seen enough distinct
        callers; until then by request (``draw`` uniform in [0, 1)): with a single
        application key a split by caller would send all or nothing to the candidate,
        and the gate would never see both sides.
        """
        if not (self.active and self.current.mode == "canary"):
            return False
        place = bucket(self.name, caller)
        if not self.by_caller:
            self.callers.add(place)
        return (place if self.by_caller else draw) < self.current.share

    @property
    def by_caller(self) -> bool:
        return len(self.callers) >= self.policy.min_sticky_callers

    def wants_shadow(self, draw: float) -> bool:
        """Shadow: whether this request (``draw`` uniform in [0, 1)) is copied."""
        return self.active and self.current.mode == "shadow" and draw < self.current.share

    # -- measuring -----------------------------------------------------------------------

    def record(self, role: str, *, error: bool, latency_s: float | None = None,
               deviated: bool | None = None) -> None:
        if self.active:
            self.stats[role].record(error=error, latency_s=latency_s, deviated=deviated)

    def evaluate(self) -> Decision | None:
        """The gate's decision now (advance, promote, rollback), or None to hold."""
        if not self.active:
            return None
        gate = self.policy.gate
        stable, candidate = self.stats[STABLE], self.stats[CANDIDATE]
        if candidate.errors_in_row >= gate.error_burst:
            return self._decide(Action.ROLLBACK, f"{candidate.errors_in_row} candidate "
                                                 "requests failed in a row")
        if min(stable.checks, candidate.checks) < gate.min_checks:
            return None
        z = z_for(gate.confidence)
        low, high = difference_interval(candidate.deviations, candidate.checks,
                                        stable.deviations, stable.checks, z)
        numbers = self.numbers(low, high)
        if low > 0:
            return self._decide(Action.ROLLBACK, "the candidate deviates more than stable "
                                f"({_rate(candidate)} against {_rate(stable)})", numbers)
        error_low, _ = difference_interval(candidate.errors, candidate.requests,
                                           stable.errors, stable.requests, z)
        if error_low > gate.error_margin:
            return self._decide(Action.ROLLBACK, "the candidate fails more requests than "
                                f"stable ({candidate.errors}/{candidate.requests} against "
                                f"{stable.errors}/{stable.requests})", numbers)
        if high >= gate.deviation_margin or not self._errors_within(gate) or (
            not self._latency_within(gate)
        ):
            return None
        last = self.stage == len(self.policy.stages) - 1
        action = Action.PROMOTE if last else Action.ADVANCE
        return self._decide(action, f"the candidate is not worse than stable ({_rate(candidate)} "
                            f"against {_rate(stable)}, difference at most {high:+.3f})", numbers)

    def _errors_within(self, gate: GateSettings) -> bool:
        stable, candidate = self.stats[STABLE].error_ratio, self.stats[CANDIDATE].error_ratio
        return (candidate or 0.0) <= (stable or 0.0) + gate.error_margin

    def _latency_within(self, gate: GateSettings) -> bool:
        stable, candidate = self.stats[STABLE].p95_s, self.stats[CANDIDATE].p95_s
        return stable is None or candidate is None or candidate <= stable * (
            1 + gate.latency_margin)

    def numbers(self, low: float | None = None, high: float | None = None) -> dict[str, Any]:
        numbers: dict[str, Any] = {role: self.stats[role].as_dict() for role in ROLES}
        if low is not None and high is not None:
            numbers["deviation_difference_interval"] = [round(low, 4), round(high, 4)]
            numbers["confidence"] = self.policy.gate.confidence
        return numbers

    # -- changing ------------------------------------------------------------------------

    def apply(self, decision: Decision) -> None:
        """Records ``decision`` and moves the rollout on accordingly."""
        self.decisions.append(decision)
        if decision.action is Action.ADVANCE:
            self.stage += 1
            self.stats = {role: RoleStats() for role in ROLES}
            self.callers = set()
        elif decision.action is Action.PROMOTE:
            self.state = State.PROMOTED
        elif decision.action is Action.ROLLBACK:
            self.state = State.ROLLED_BACK
        elif decision.action is Action.ABORT:
            self.state = State.ABORTED

    def manual(self, action: Action, reason: str) -> Decision:
        """An operator's decision (advance, promote, abort), with the numbers so far."""
        if action is Action.ADVANCE and self.stage == len(self.policy.stages) - 1:
            action = Action.PROMOTE
        decision = self._decide(action, reason, self.numbers())
        self.apply(decision)
        return decision

    def _decide(self, action: Action, reason: str,
                numbers: dict[str, Any] | None = None) -> Decision:
        return Decision(action, reason, self.stage, numbers=numbers or self.numbers())

    # -- storing -------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        z = z_for(self.policy.gate.confidence)
        stats = {}
        for role in ROLES:
            numbers = self.stats[role]
            stats[role] = {**numbers.as_dict(),
                           "deviation_interval": list(wilson(numbers.deviations, numbers.checks,
                                                             z))}
        return {"name": self.name, "state": self.state.value, "stage": self.stage,
                "stages": [s.model_dump() for s in self.policy.stages],
                "current": self.current.model_dump() if self.active else None,
                # How the running canary splits: "caller" (sticky) or "request" (too few
                # distinct callers seen yet); None outside a canary.
                "split": (("caller" if self.by_caller else "request")
                          if self.active and self.current.mode == "canary" else None),
                "callers_seen": len(self.callers),
                "stable": {"version": self.stable, "digest": self.stable_digest,
                           **self.origins.get(STABLE, {})},
                "candidate": {"version": self.candidate, "digest": self.candidate_digest,
                              **self.origins.get(CANDIDATE, {})},
                "policy": self.policy.model_dump(mode="json"), "stats": stats,
                "last_decision": self.decisions[-1].as_dict() if self.decisions else None,
                "decisions": [d.as_dict() for d in self.decisions]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rollout:
        return cls(
            name=data["name"], stable=data["stable"]["version"],
            candidate=data["candidate"]["version"],
            stable_digest=data["stable"]["digest"], candidate_digest=data["candidate"]["digest"],
            policy=RolloutPolicy.model_validate(data["policy"]),
            origins={role: {k: v for k, v in data[role].items() if k in ("source", "serving")}
                     for role in ROLES},
            stage=int(data["stage"]),
            state=State(data["state"]),
            stats={role: RoleStats.from_dict(data["stats"][role]) for role in ROLES},
            decisions=[Decision(Action(d["action"]), d["reason"], d["stage"], d["at"],
                                d.get("numbers") or {}) for d in data["decisions"]])


def bucket(name: str, caller: str) -> float:
    """A caller's fixed place in [0, 1) for one adapter's canary."""
    digest = hashlib.blake2b(f"{name}\0{caller}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _rate(stats: RoleStats) -> str:
    return f"{stats.deviations}/{stats.checks} deviated"
