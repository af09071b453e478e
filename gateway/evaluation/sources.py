"""Deviation measured in what already happened: captured examples, or live Prometheus data.

Neither knows the right answers, so the report holds format deviation by kind and the
recommendation that follows from it; one "variant" per adapter and schema.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import httpx

from gateway.evaluation.report import Report, decide, economics
from gateway.evaluation.report import Summary as VariantSummary
from gateway.evaluation.stats import Proportion
from gateway.evaluation.variants import EvalPlan, Variant


def from_counts(plan: EvalPlan, source: str, counts: Mapping[tuple[str, str], tuple[int,
                Counter[str]]], mode: str) -> Report:
    """A report from (adapter, schema) -> (answers checked, first deviations by kind)."""
    summaries = []
    for (adapter, schema), (checked, kinds) in sorted(counts.items()):
        deviated = sum(kinds.values())
        summaries.append(VariantSummary(
            name=f"{adapter}/{schema}", model=adapter, schema=schema, mode=mode,
            requests=checked, errors=0, first_deviation=Proportion(deviated, checked),
            by_kind=dict(kinds), final_deviation=Proportion(0, checked),
            attempts_per_request=0.0, exact=Proportion(0, 0), fields={}, correct=0,
            format_failures=0, content_failures=0, content_reasoning=0, latency_p50_s=0.0,
            latency_p95_s=0.0, prompt_tokens=0.0, completion_tokens=0.0,
            usd_per_1k_requests=0.0))
    if not summaries:
        raise ValueError(f"{source} holds no structured answers to evaluate")
    worst = max(summaries, key=lambda s: s.first_deviation.rate)
    decision = decide(plan, worst)
    decision.reasons.append(f"the pair with the highest deviation rate decides: {worst.name}")
    return Report(source, sum(s.requests for s in summaries), summaries, decision,
                  economics(plan, summaries))


def from_capture(plan: EvalPlan, folder: Path) -> Report:
    """Captured examples (``structured.capture``): ``<adapter>/<schema>.jsonl``.

    Only valid answers are captured; exhausted requests are not, so the rates here are a
    floor. A record whose first attempt deviated lists that deviation first.
    """
    counts: dict[tuple[str, str], tuple[int, Counter[str]]] = {}
    for path in sorted(folder.glob("*/*.jsonl")):
        checked, kinds = 0, Counter[str]()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                record = json.loads(line)
                deviations = record["deviations"]
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a captured example ({exc})") from exc
            checked += 1
            if deviations:
                kinds[str(deviations[0])] += 1
        counts[(path.parent.name, path.stem)] = (checked, kinds)
    return from_counts(plan, f"captured examples in {folder}", counts, "captured traffic")


def from_prometheus(plan: EvalPlan, url: str, window: str = "1h") -> Report:
    """Live answers over ``window``: every checked attempt and its deviation kind."""
    checks = _query(url, _grown("gateway_structured_checks_total", "adapter, schema", window))
    kinds = _query(url, _grown("gateway_structured_deviations_total", "adapter, schema, kind",
                               window))
    counts: dict[tuple[str, str], tuple[int, Counter[str]]] = {}
    for labels, value in checks:
        counts[(labels["adapter"], labels["schema"])] = (round(value), Counter())
    for labels, value in kinds:
        pair = (labels["adapter"], labels["schema"])
        if pair in counts and round(value):
            counts[pair][1][labels["kind"]] += round(value)
    live = {pair: found for pair, found in counts.items() if found[0] > 0}
    return from_counts(plan, f"Prometheus at {url}, last {window}", live, "live traffic")


def _grown(counter: str, by: str, window: str) -> str:
    """How much ``counter`` grew over ``window``, counted exactly: now minus then (0 for a
    series born within the window). ``increase()`` would extrapolate to the window's edges;
    where the counter was reset (a gateway restart), that is used instead."""
    now = f"sum by ({by}) ({counter})"
    then = f"sum by ({by}) ({counter} offset {window})"
    exact = f"({now} - ({then} or {now} * 0))"
    return f"({exact} >= 0) or sum by ({by}) (increase({counter}[{window}]))"


def _query(url: str, promql: str) -> list[tuple[dict[str, str], float]]:
    try:
        response = httpx.get(f"{url.rstrip('/')}/api/v1/query", params={"query": promql},
                             timeout=30)
        payload = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ValueError(f"Prometheus at {url} did not answer the query: {exc}") from exc
    if payload.get("status") != "success":
        raise ValueError(f"Prometheus refused the query: {payload.get('error', payload)}")
    return [(item["metric"], float(item["value"][1])) for item in payload["data"]["result"]]


def default_plan() -> EvalPlan:
    """Thresholds and prices when no variants file is given (sources need no variants)."""
    return EvalPlan(variants=[Variant(name="traffic", model="any", schema="any")])
