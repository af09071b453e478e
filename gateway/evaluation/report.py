"""From results to numbers per variant, a recommendation, and the economics behind it.

The framework: format deviation is fixed by fine-tuning (or the gateway's retries while it
is rare); wrong values in valid answers are content failures, fixed by retrieval (facts)
or a stronger model / chain-of-thought (items tagged ``reasoning``). The first variant is
the subject of the decision: the base model with a careful prompt, no retries.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.evaluation.runner import Result
from gateway.evaluation.stats import Proportion, items_needed, percentile
from gateway.evaluation.variants import EvalPlan, Variant
from gateway.structured.deviations import DeviationKind

FINE_TUNE = "fine-tune"
KEEP = "keep the prompt and the gateway's retries"
RETRIEVAL = "use retrieval"
STRONGER = "try a stronger model or chain-of-thought"
ENOUGH = "the prompt is enough"
MORE_DATA = "not enough data yet"
REASONING_TAG = "reasoning"
KINDS = [kind.value for kind in DeviationKind]


@dataclass
class Summary:
    """One variant's numbers."""

    name: str
    model: str
    schema: str
    mode: str
    requests: int
    errors: int
    first_deviation: Proportion
    by_kind: dict[str, int]
    final_deviation: Proportion
    attempts_per_request: float
    exact: Proportion
    fields: dict[str, Proportion]
    correct: int
    format_failures: int
    content_failures: int
    content_reasoning: int
    latency_p50_s: float
    latency_p95_s: float
    prompt_tokens: float
    completion_tokens: float
    usd_per_1k_requests: float


@dataclass
class Decision:
    recommendation: str
    reasons: list[str]
    items_needed: int | None = None


@dataclass
class Economics:
    fine_tune_usd_per_year: float
    alternative: str | None = None
    adapter: str | None = None
    alternative_usd_per_1k: float | None = None
    adapter_usd_per_1k: float | None = None
    break_even_requests_per_year: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    dataset: str
    items: int
    variants: list[Summary]
    decision: Decision
    economics: Economics


def _mode(variant: Variant) -> str:
    if variant.constrained:
        return "constrained decoding"
    mode = "gateway retries" if variant.retries else "prompt only"
    return mode if variant.tool is None else f"{mode}, tool call"


def summarize(plan: EvalPlan, results: Sequence[Result], variant: Variant) -> Summary:
    mine = [r for r in results if r.variant == variant.name]
    answered = [r for r in mine if r.error is None]
    first = sum(r.first_deviation is not None for r in answered)
    with_expected = [r for r in answered if r.has_expected]
    correct = sum(1 for r in with_expected if r.valid and r.exact)
    content = [r for r in with_expected if r.valid and not r.exact]
    fields: dict[str, list[bool]] = {}
    for r in answered:
        for name, ok in (r.fields or {}).items():
            fields.setdefault(name, []).append(ok)
    latencies = [r.latency_s for r in answered]
    count = len(answered) or 1
    summary = Summary(
        name=variant.name, model=variant.model, schema=variant.schema_name,
        mode=_mode(variant), requests=len(answered), errors=len(mine) - len(answered),
        first_deviation=Proportion(first, len(answered)),
        by_kind=dict(Counter(r.first_deviation for r in answered if r.first_deviation)),
        final_deviation=Proportion(sum(not r.valid for r in answered), len(answered)),
        attempts_per_request=sum(r.attempts for r in answered) / count,
        exact=Proportion(correct, len(with_expected)),
        fields={n: Proportion(sum(v), len(v)) for n, v in sorted(fields.items())},
        correct=correct, format_failures=sum(not r.valid for r in with_expected),
        content_failures=len(content),
        content_reasoning=sum(REASONING_TAG in r.tags for r in content),
        latency_p50_s=percentile(latencies, 0.5), latency_p95_s=percentile(latencies, 0.95),
        prompt_tokens=sum(r.prompt_tokens for r in answered) / count,
        completion_tokens=sum(r.completion_tokens for r in answered) / count,
        usd_per_1k_requests=0.0,
    )
    summary.usd_per_1k_requests = _cost(plan, summary, latencies)
    return summary


def _cost(plan: EvalPlan, summary: Summary, latencies: list[float]) -> float:
    prices = plan.economics
    if prices.prompt_usd_per_1k_tokens is not None or prices.completion_usd_per_1k_tokens:
        return (summary.prompt_tokens * (prices.prompt_usd_per_1k_tokens or 0.0)
                + summary.completion_tokens * (prices.completion_usd_per_1k_tokens or 0.0))
    if prices.gpu_hour_usd is None or not latencies:
        return 0.0
    # GPU time per request: its latency, shared by the requests the engine ran beside it.
    seconds = statistics.fmean(latencies) / plan.concurrency
    return 1000 * seconds * prices.gpu_hour_usd / 3600


def decide(plan: EvalPlan, subject: Summary) -> Decision:
    """The recommendation for the subject variant, with the numbers behind it."""
    t = plan.thresholds
    rate = subject.first_deviation.rate
    low, high = subject.first_deviation.interval
    reasons = [f"{subject.name}: first-attempt format deviation {rate:.1%} "
               f"(95 % interval {low:.1%} to {high:.1%}) over {subject.requests} requests; "
               f"acceptable up to {t.acceptable:.0%}, fine-tune from {t.fine_tune:.0%}"]
    if subject.requests == 0:
        return Decision(MORE_DATA, [*reasons, "no request was answered"])
    if low < t.acceptable and high > t.fine_tune:
        needed = items_needed(rate, t.acceptable, t.fine_tune)
        return Decision(MORE_DATA, [*reasons, "the interval reaches both thresholds: about "
                                    f"{needed} requests would tell them apart"], needed)
    if rate >= t.fine_tune:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(subject.by_kind.items()))
        return Decision(FINE_TUNE, [*reasons, f"the deviations are format failures ({kinds}): "
                                    "a LoRA adapter trained on valid answers fixes format"])
    scored = subject.correct + subject.format_failures + subject.content_failures
    content_rate = subject.content_failures / scored if scored else 0.0
    if content_rate > t.content:
        reasoning = subject.content_reasoning
        reasons.append(f"{subject.content_failures} of {scored} answers are valid JSON with "
                       f"wrong values ({content_rate:.0%}; {reasoning} on items tagged "
                       "reasoning): a content problem, which fine-tuning for format does not "
                       "fix")
        if reasoning * 2 > subject.content_failures:
            return Decision(STRONGER, reasons)
        return Decision(RETRIEVAL, reasons)
    if rate > t.acceptable:
        return Decision(KEEP, [*reasons, "deviation is real but below the fine-tune threshold: "
                               "the gateway's retries repair it at a small cost"])
    return Decision(ENOUGH, [*reasons, "format and content are fine as they are"])


def economics(plan: EvalPlan, summaries: Sequence[Summary]) -> Economics:
    """A fine-tune's yearly cost against the running cost it would save."""
    prices = plan.economics
    found = Economics(prices.fine_tune_usd_per_year)
    subject = summaries[0]
    retries = next((s for s in summaries if s.mode == "gateway retries"
                    and s.model == subject.model), None)
    adapter = next((s for s in summaries if s.model != subject.model), None)
    alternative = retries or subject
    found.alternative, found.alternative_usd_per_1k = (alternative.name,
                                                       alternative.usd_per_1k_requests)
    if adapter is None:
        found.notes.append("no variant uses another model or adapter: add the fine-tuned "
                           "adapter as a variant to measure what it saves")
        return found
    found.adapter, found.adapter_usd_per_1k = adapter.name, adapter.usd_per_1k_requests
    saving = alternative.usd_per_1k_requests - adapter.usd_per_1k_requests
    if saving <= 0:
        found.notes.append(f"{adapter.name} costs no less per request than {alternative.name}: "
                           "no volume pays the fine-tune back on running cost alone")
        return found
    found.break_even_requests_per_year = found.fine_tune_usd_per_year / saving * 1000
    return found


def build_report(plan: EvalPlan, results: Sequence[Result], dataset: str, items: int
                 ) -> Report:
    summaries = [summarize(plan, results, v) for v in plan.variants]
    decision = decide(plan, summaries[0])
    decision.reasons += _content_once_formatted(plan, summaries)
    return Report(dataset, items, summaries, decision, economics(plan, summaries))


def _content_once_formatted(plan: EvalPlan, summaries: Sequence[Summary]) -> list[str]:
    """What the variants that do get the format right say about content."""
    notes = []
    for s in summaries:
        scored = s.correct + s.content_failures + s.format_failures
        if (s.final_deviation.rate <= plan.thresholds.acceptable and scored
                and s.content_failures / scored > plan.thresholds.content):
            notes.append(f"with the format right ({s.name}: {s.final_deviation.rate:.0%} "
                         f"invalid), {s.content_failures} of {scored} answers still have wrong "
                         "values: the labels need teaching too (fine-tune on correct answers, "
                         "or retrieval / a stronger model), not only the format")
    return notes
