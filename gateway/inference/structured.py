"""Answers structured requests: validate every answer, classify deviations, retry until valid.

The request side of structured outputs: it calls the engine (through the forwarder the
inference service hands in) and uses the pure parts of ``gateway.structured`` to decide.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidRequest, UpstreamClientError
from gateway.grammar.checker import GrammarChecker
from gateway.inference.call import Call, Forwarder, Reply, Upstream
from gateway.inference.capture import ExampleCapture, chat_example, completion_example
from gateway.inference.fail_fast import UNSUPPORTED, watched_attempt
from gateway.inference.relay import DONE, sse
from gateway.inference.settings import StructuredSettings
from gateway.metrics import Recorder
from gateway.structured import attempts
from gateway.structured.budget import RetryBudget
from gateway.structured.contract import Contract, SchemaContract, StreamCheck, ToolContract
from gateway.structured.decoding_fields import check_decoding_fields, has_decoding_fields
from gateway.structured.deviations import Verdict
from gateway.structured.grammars import grammar_specs
from gateway.structured.outcome import EXTENSION, Outcome
from gateway.structured.response_format import (
    JSON_OBJECT,
    RequestedSchema,
    resolve_response_format,
)
from gateway.structured.retry import (
    RetryPolicy,
    RetrySettings,
    Strategy,
    effective_policy,
    next_strategy,
)
from gateway.structured.schemas import SchemaRegistry
from gateway.structured.tools import has_tools, parse_tools
from gateway.structured.validation import ValidatorCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    contract: Contract
    policy: RetryPolicy


class StructuredRunner:
    def __init__(
        self,
        schemas: SchemaRegistry,
        cache: ValidatorCache,
        retry: RetrySettings,
        recorder: Recorder,
        *,
        on_exhausted: str = "error",
        validate_adapter_defaults: bool = True,
        capture: ExampleCapture | None = None,
        fail_fast: bool = True,
        grammars: GrammarChecker | None = None,
    ) -> None:
        self.schemas = schemas
        self.cache = cache
        self.retry = retry
        # One budget per adapter label (a bounded set): each adapter can at most multiply
        # its own load by 1 + ratio, and one that deviates a lot cannot spend the others'.
        self._budgets: dict[str, RetryBudget] = {}
        self.recorder = recorder
        self.on_exhausted = on_exhausted
        self.validate_adapter_defaults = validate_adapter_defaults
        self.capture = capture
        self.fail_fast = fail_fast
        # The compile check's verdicts (None: grammars are not checked).
        self.grammars = grammars

    def plan(self, call: Call) -> Plan | None:
        """What ``call`` asks of its answer and the retry policy, or None for free text.

        A chat request that offers tools is checked call by call (the adapter's default
        schema does not apply to it); with ``n`` above 1 it is passed on unchecked.
        """
        request = call.request
        check_decoding_fields(call.body, self.cache)
        schema = resolve_response_format(request.response_format, self.schemas, self.cache)
        tools = (parse_tools(call.body, self.schemas, self.cache) if call.chat
                 else None)
        if tools is not None:
            if request.n != 1:
                return None
            return Plan(ToolContract(tools, schema), effective_policy(self.retry, request.retry))
        defaults = call.target.defaults
        if schema is None and defaults.response_schema and (
            defaults.validate_by_default and self.validate_adapter_defaults
        ):
            compiled = self.schemas.require(defaults.response_schema, param="model")
            schema = RequestedSchema(defaults.response_schema, compiled, "registered")
        if schema is None:
            return None
        if request.n != 1:
            raise InvalidRequest("Structured answers are validated one at a time: set n to 1.",
                                 param="n")
        if not call.chat and not isinstance(call.body.get("prompt"), str):
            raise InvalidRequest("Structured text completions need a single string prompt.",
                                 param="prompt")
        return Plan(SchemaContract(schema), effective_policy(self.retry, request.retry))

    async def answer(self, call: Call, upstream: Upstream) -> Reply | None:
        """Runs attempts until one is valid or the policy (or budget) says stop.

        None when the call asks for free text: the caller forwards it as it is.
        """
        # Compiling a client's schema and checking answers is CPU work: never on the event loop.
        plan = (await asyncio.to_thread(self.plan, call)
                if has_decoding_fields(call.body) or has_tools(call.body) else self.plan(call))
        if plan is None:
            return None
        contract = plan.contract
        chat = call.chat
        labels = (call.target.label, self.recorder.schema_label(contract.label))
        self.recorder.structured_started(*labels)
        outcome = Outcome(contract.name)
        first = contract.first_body(call.body)
        body = first
        budget = self.budget(labels[0])
        budget.record_request()
        strategy: Strategy | None = None
        can_constrain = True
        self._prefetch_grammars(plan, chat, budget)
        check = self._prefix_check(plan, first, budget)
        while True:
            early: Verdict | None = None
            try:
                if check is not None and strategy is None:
                    response, early = await watched_attempt(upstream, call, body, check, chat)
                else:
                    response = await upstream.forward(call, body)
            except UpstreamClientError as exc:
                if strategy is not Strategy.CONSTRAINED:
                    raise
                # The engine could not compile the grammar: the other strategies may still
                # get a valid answer, and the client asked for one, not for a grammar.
                log.warning("the engine refused the grammar for %s (%s); trying the "
                            "next strategy", contract.name, exc.message[:200])
                can_constrain = False
            else:
                answer = attempts.Answer.of(response, chat)
                outcome.add_answer(answer)
                verdict = early if early is not None else await asyncio.to_thread(
                    contract.check, answer, strategy)
                self._count_check(labels, verdict)
                if outcome.attempts == 1:
                    call.observation.first_deviated = not verdict.valid
                if early is not None:
                    self.recorder.structured_stopped_early(*labels)
                outcome.add_verdict(verdict, contract.kept_content(answer, verdict),
                                    stopped_early=early is not None)
                if verdict.valid:
                    break
            if can_constrain and budget.remaining() >= 1 and next_strategy(
                    plan.policy, outcome.attempts, verdict, outcome.strategies) \
                    is Strategy.CONSTRAINED:
                constrained = contract.retry_body(Strategy.CONSTRAINED, first, answer, verdict,
                                                  chat)
                outcome.constrained = await self._unavailable(constrained, chat)
                can_constrain = outcome.constrained is None
            strategy = self._next(plan, outcome, verdict, labels, budget, can_constrain)
            if strategy is Strategy.EXTRACT:
                if await asyncio.to_thread(self._extract, outcome, verdict, plan):
                    break
                strategy = self._next(plan, outcome, verdict, labels, budget, can_constrain)
            if strategy is None:
                break
            body = contract.retry_body(strategy, first, answer, verdict, chat)
        await self._capture(first, outcome, labels, chat)
        return self._finish(call, outcome, labels, chat)

    async def check_once(self, call: Call, forward: Forwarder) -> bool | None:
        """One attempt, checked and thrown away (a shadow copy): whether it deviated.

        None when the call wants free text. Nothing is recorded in the structured metrics:
        the caller keeps the numbers of the version it measures.
        """
        plan = await asyncio.to_thread(self.plan, call)
        if plan is None:
            return None
        answer = attempts.Answer.of(await forward(call, plan.contract.first_body(call.body)),
                                    call.chat)
        verdict = await asyncio.to_thread(plan.contract.check, answer, None)
        return not verdict.valid

    def _prefetch_grammars(self, plan: Plan, chat: bool, budget: RetryBudget) -> None:
        """Queues the compile check of the constrained retries' grammars, so that their
        verdicts are usually made by the time a retry needs one (when one can be made)."""
        policy = plan.policy
        if self.grammars is None or Strategy.CONSTRAINED not in policy.strategies or (
                policy.max_attempts < 2 or budget.remaining() < 1):
            return
        for fields in plan.contract.grammars():
            self.grammars.prefetch(grammar_specs(fields, chat))

    async def _unavailable(self, body: dict[str, Any], chat: bool) -> str | None:
        """Why a constrained retry with ``body`` cannot be made (its grammar fails the
        compile check, or has no verdict within the compile limit), or None."""
        if self.grammars is None:
            return None
        limit = self.grammars.patience()
        for spec in grammar_specs(body, chat):
            verdict = await self.grammars.wait(spec, limit)
            if verdict is None:
                return f"unavailable: no compile verdict within {limit:g} s"
            if not verdict.compilable:
                return verdict.describe()
        return None

    def _prefix_check(
        self, plan: Plan, first: dict[str, Any], budget: RetryBudget
    ) -> StreamCheck | None:
        """A check that stops the first attempt early, where a retry would follow it.

        An attempt is stopped only when another engine attempt can be made; with
        ``extract`` in the policy, prose is read on until an object inside it is complete.
        """
        policy = plan.policy
        if not self.fail_fast or policy.max_attempts < 2 or any(k in first for k in UNSUPPORTED):
            return None
        if not any(s.calls_engine for s in policy.strategies) or budget.remaining() < 1:
            return None
        return plan.contract.stream_check(read_prose=Strategy.EXTRACT in policy.strategies)

    async def _capture(
        self, first: dict[str, Any], outcome: Outcome, labels: tuple[str, str], chat: bool
    ) -> None:
        """Keeps a valid answer as a fine-tuning example, when capturing is on."""
        message = outcome.message()
        if self.capture is None or message is None or outcome.content is None and not chat:
            return
        if not self.capture.wants(bool(outcome.deviations)):
            return
        report = outcome.report()
        example = (chat_example(first["messages"], message, report,
                                first.get("tools")) if chat
                   else completion_example(str(first["prompt"]), str(outcome.content), report))
        failure = await asyncio.to_thread(self.capture.record, *labels, example)
        if failure is not None:
            self.recorder.capture_failed(failure)

    def budget(self, adapter_label: str) -> RetryBudget:
        """The retry budget of one adapter (``base`` for the base model)."""
        if adapter_label not in self._budgets:
            # Budgets of adapters removed since are dropped: the dict stays bounded.
            for stale in [k for k in self._budgets if not self.recorder.knows_adapter(k)]:
                del self._budgets[stale]
            self._budgets[adapter_label] = RetryBudget(self.retry.budget)
        return self._budgets[adapter_label]

    def _next(
        self,
        plan: Plan,
        outcome: Outcome,
        verdict: Verdict,
        labels: tuple[str, str],
        budget: RetryBudget,
        can_constrain: bool = True,
    ) -> Strategy | None:
        strategy = next_strategy(plan.policy, outcome.attempts, verdict, outcome.strategies,
                                 can_constrain=can_constrain)
        if strategy is None:
            return None
        if strategy.calls_engine and not budget.try_spend():
            outcome.budget_exhausted = True
            self.recorder.structured_budget_denied(*labels)
            log.warning("retry budget of %s spent: no retry for %s", labels[0],
                        plan.contract.name)
            return None
        outcome.strategies.append(strategy)
        self.recorder.structured_retry(*labels, strategy.value)
        return strategy

    @staticmethod
    def _extract(outcome: Outcome, verdict: Verdict, plan: Plan) -> bool:
        """Lenient extraction: the JSON (or the calls) inside the prose, when valid."""
        recovered = plan.contract.extract(verdict)
        if recovered is not None:
            outcome.add_verdict(*recovered)
        return recovered is not None

    def _count_check(self, labels: tuple[str, str], verdict: Verdict) -> None:
        kind = None if verdict.valid or verdict.kind is None else verdict.kind.value
        self.recorder.structured_check(*labels, kind)

    def _finish(
        self, call: Call, outcome: Outcome, labels: tuple[str, str], chat: bool
    ) -> Reply:
        if outcome.valid and outcome.deviations:
            self.recorder.structured_recovered(*labels)
        if not outcome.valid:
            self.recorder.structured_exhausted(*labels)
            if self.on_exhausted == "error":
                raise outcome.exhausted_error()
        response = outcome.response(call.target.public_name, chat)
        if not call.request.stream:
            return Reply(response, outcome.headers())
        options = call.request.stream_options
        stream = as_stream(response, chat, bool(options and options.include_usage))
        return Reply(stream, outcome.headers())


def build_structured_runner(
    settings: StructuredSettings, recorder: Recorder, grammars: GrammarChecker | None = None
) -> StructuredRunner:
    """Loads the named schemas and builds the runner; invalid schema files are logged."""
    cache = ValidatorCache(settings.bounds)
    schemas = SchemaRegistry.load(settings.schemas_dir, cache)
    recorder.register_schemas((*schemas.names(), "inline", JSON_OBJECT))
    capture = ExampleCapture(settings.capture) if settings.capture.enabled else None
    return StructuredRunner(
        schemas, cache, settings.retry, recorder,
        on_exhausted=settings.on_exhausted,
        validate_adapter_defaults=settings.validate_adapter_defaults,
        capture=capture,
        fail_fast=settings.fail_fast,
        grammars=grammars,
    )


async def as_stream(
    response: dict[str, Any], chat: bool, include_usage: bool
) -> AsyncIterator[bytes]:
    """A validated answer as server-sent events: content, then the verdict, then [DONE]."""
    base = {"id": response.get("id", ""), "created": response.get("created", int(time.time())),
            "model": response["model"],
            "object": "chat.completion.chunk" if chat else "text_completion"}
    choice = response["choices"][0]
    finish = choice.get("finish_reason")
    if chat:
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
        if message.get("tool_calls"):
            delta["tool_calls"] = message["tool_calls"]
        first = {"index": 0, "delta": delta, "finish_reason": None}
        last = {"index": 0, "delta": {}, "finish_reason": finish}
    else:
        first = {"index": 0, "text": choice.get("text"), "finish_reason": None}
        last = {"index": 0, "text": "", "finish_reason": finish}
    yield sse({**base, "choices": [first]})
    yield sse({**base, "choices": [last], EXTENSION: response[EXTENSION]})
    if include_usage:
        yield sse({**base, "choices": [], "usage": response["usage"]})
    yield DONE
