"""``adapter-gateway eval`` against the fake engine with scripted answers, over real HTTP.

Each scripted dataset reaches one branch of the recommendation; the numbers behind it
(deviation rate with its interval, kinds, content failures) are checked exactly.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.cli import main as cli
from gateway.evaluation.dataset import DatasetError, load_dataset
from gateway.evaluation.render import write_report
from gateway.evaluation.report import (
    ENOUGH,
    FINE_TUNE,
    KEEP,
    MORE_DATA,
    RETRIEVAL,
    STRONGER,
    build_report,
)
from gateway.evaluation.runner import RESULTS, load_results, run_eval
from gateway.evaluation.sources import default_plan, from_capture
from gateway.evaluation.stats import wilson
from gateway.evaluation.variants import EvalPlan, load_plan
from tests.conftest import BASE_MODEL, SettingsFactory, start
from tests.fakes.engine import FakeEngine
from tests.servers import serving

pytestmark = pytest.mark.anyio

RIGHT = {"category": "billing", "priority": "high", "escalate": True}
WRONG = {"category": "technical", "priority": "high", "escalate": True}
SCHEMA = {"type": "object", "required": ["category", "priority", "escalate"],
          "properties": {"category": {"enum": ["billing", "technical", "account", "other"]},
                         "priority": {"enum": ["low", "medium", "high"]},
                         "escalate": {"type": "boolean"}},
          "additionalProperties": False}
PROSE = "Sure! This ticket is about billing and it is urgent."


def plan(**variant: Any) -> EvalPlan:
    return EvalPlan.model_validate({"concurrency": 1, "variants": [
        {"name": "prompt-only", "model": BASE_MODEL, "schema": SCHEMA, **variant}]})


def dataset(tmp_path: Path, count: int, tags: dict[int, list[str]] | None = None) -> Path:
    path = tmp_path / "items.jsonl"
    lines = [json.dumps({"id": f"i{i:02d}", "input": f"ticket {i}", "expected": RIGHT,
                         "tags": (tags or {}).get(i, [])}) for i in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return path


def script(fake: FakeEngine, answers: list[str]) -> None:
    for answer in answers:
        fake.enqueue(answer)


@pytest.fixture
async def gateway(make_settings: SettingsFactory) -> AsyncIterator[str]:
    app = create_app(make_settings())
    async with serving(app) as url:
        async with asyncio.timeout(30):
            while not app.state.monitor.ready:
                await asyncio.sleep(0.01)
        yield url


async def evaluate(url: str, eval_plan: EvalPlan, path: Path, out: Path) -> Any:
    items = load_dataset(path)
    results = await run_eval(url, eval_plan, items, out, progress=False)
    return build_report(eval_plan, results, path.name, len(items))


async def test_the_framework_example(gateway: str, fake_engine: FakeEngine,
                                     tmp_path: Path) -> None:
    """3 of 20 first answers are prose, 2 valid answers have a wrong field."""
    script(fake_engine, [PROSE] * 3 + [json.dumps(WRONG)] * 2 + [json.dumps(RIGHT)] * 15)
    report = await evaluate(gateway, plan(), dataset(tmp_path, 20), tmp_path / "out")
    (summary,) = report.variants
    assert (summary.first_deviation.hits, summary.first_deviation.n) == (3, 20)
    assert summary.first_deviation.rate == 0.15
    assert summary.first_deviation.interval == wilson(3, 20)
    assert summary.by_kind == {"not_json": 3}
    assert (summary.correct, summary.content_failures, summary.format_failures) == (15, 2, 3)
    assert summary.content_failures / summary.requests == 0.10
    assert summary.fields["category"].hits == 15 and summary.fields["priority"].hits == 17
    assert report.decision.recommendation == FINE_TUNE
    assert "15.0%" in report.decision.reasons[0]
    # Retries off: one attempt per request, sent without a format constraint.
    assert len(fake_engine.requests) == 20
    assert not any("response_format" in r for r in fake_engine.requests)


@pytest.mark.parametrize(("count", "answers", "tags", "recommendation"), [
    (50, [PROSE] * 4 + [json.dumps(RIGHT)] * 46, {}, KEEP),
    (30, [json.dumps(WRONG)] * 6 + [json.dumps(RIGHT)] * 24, {}, RETRIEVAL),
    (30, [json.dumps(WRONG)] * 6 + [json.dumps(RIGHT)] * 24,
     {i: ["reasoning"] for i in range(6)}, STRONGER),
    (30, [json.dumps(RIGHT)] * 30, {}, ENOUGH),
    (10, [json.dumps(RIGHT)] * 10, {}, MORE_DATA),
])
async def test_each_recommendation_follows_from_its_numbers(
    gateway: str, fake_engine: FakeEngine, tmp_path: Path, count: int, answers: list[str],
    tags: dict[int, list[str]], recommendation: str,
) -> None:
    script(fake_engine, answers)
    report = await evaluate(gateway, plan(), dataset(tmp_path, count, tags), tmp_path / "out")
    assert report.decision.recommendation == recommendation, report.decision.reasons
    if recommendation == MORE_DATA:
        assert report.decision.items_needed is not None and report.decision.items_needed > 10


async def test_an_interrupted_run_resumes(gateway: str, fake_engine: FakeEngine,
                                          tmp_path: Path) -> None:
    out = tmp_path / "out"
    script(fake_engine, [json.dumps(RIGHT)] * 20)
    await evaluate(gateway, plan(), dataset(tmp_path, 20), out)
    lines = (out / RESULTS).read_text().splitlines()
    (out / RESULTS).write_text("\n".join(lines[:7]) + "\n" + lines[7][:25])  # cut mid-line
    before = len(fake_engine.requests)
    script(fake_engine, [json.dumps(RIGHT)] * 13)
    report = await evaluate(gateway, plan(), dataset(tmp_path, 20), out)
    assert len(fake_engine.requests) - before == 13  # only what was missing was asked
    assert report.variants[0].requests == 20 and len(load_results(out)) == 20


async def test_retries_and_constrained_variants_ask_as_applications_would(
    gateway: str, fake_engine: FakeEngine, tmp_path: Path
) -> None:
    both = EvalPlan.model_validate({"concurrency": 1, "variants": [
        {"name": "retries", "model": BASE_MODEL, "schema": SCHEMA, "retries": True},
        {"name": "constrained", "model": BASE_MODEL, "schema": SCHEMA, "constrained": True}]})
    script(fake_engine, [PROSE, json.dumps(RIGHT), json.dumps(RIGHT), PROSE, json.dumps(RIGHT)])
    report = await evaluate(gateway, both, dataset(tmp_path, 2), tmp_path / "out")
    retries, constrained = report.variants
    assert retries.first_deviation.hits == 1 and retries.final_deviation.hits == 0
    assert retries.attempts_per_request == 1.5
    # The engine was asked to constrain; the answer is checked here like the gateway would.
    assert constrained.first_deviation.hits == 1 and constrained.by_kind == {"not_json": 1}
    assert fake_engine.requests[-1]["structured_outputs"] == {"json": SCHEMA}


async def test_a_tool_variant_asks_for_a_call_and_scores_its_arguments(
    gateway: str, fake_engine: FakeEngine, tmp_path: Path
) -> None:
    """As Instructor asks: one function, named; the call's arguments are scored."""
    tool = plan(tool="route_ticket", retries=True)
    fake_engine.enqueue(PROSE)
    fake_engine.enqueue(json.dumps({"name": "route_ticket", "arguments": RIGHT}))
    fake_engine.enqueue("", tool_calls=[("route_ticket", json.dumps(WRONG))],
                        finish_reason="tool_calls")
    fake_engine.enqueue("", tool_calls=[("lookup", json.dumps(RIGHT))],
                        finish_reason="tool_calls")
    fake_engine.enqueue(json.dumps({"name": "route_ticket", "arguments": RIGHT}))
    report = await evaluate(gateway, tool, dataset(tmp_path, 3), tmp_path / "out")
    (summary,) = report.variants
    assert summary.mode == "gateway retries, tool call"
    assert summary.by_kind == {"tool_call_missing": 1, "tool_unknown": 1}
    assert (summary.correct, summary.content_failures) == (2, 1)
    first = fake_engine.requests[0]
    assert first["tools"][0]["function"] == {"name": "route_ticket", "parameters": SCHEMA}
    assert first["tool_choice"] == "auto"  # the gateway's first attempt measures the model


def test_a_tool_variant_cannot_be_constrained() -> None:
    with pytest.raises(ValueError, match="a tool variant is checked by the gateway"):
        plan(tool="route_ticket", constrained=True)


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "items.jsonl:2: not JSON"),
    ('{"input": ""}', "items.jsonl:2: 'input' must be a non-empty string"),
    ('{"messages": [{"role": "robot", "content": "x"}]}', "items.jsonl:2: messages[0]"),
    ('{"input": "x", "expected": [1]}', "items.jsonl:2: 'expected' must be"),
    ('{"input": "x", "answer": 1}', "items.jsonl:2: unknown fields ['answer']"),
    ('{"id": "a", "input": "again"}', "items.jsonl:2: the id 'a' is used twice"),
    ('{"input": "x", "tools": [{"name": "f"}]}', "items.jsonl:2: 'tools' must be"),
    ('{"input": "x", "expected_call": {"name": "f"}}', "items.jsonl:2: 'expected_call' must"),
])
def test_a_bad_dataset_line_is_an_error_with_its_number(tmp_path: Path, line: str,
                                                        message: str) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": "a", "input": "fine"}\n' + line + "\n")
    with pytest.raises(DatasetError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_dataset(path)


def test_the_command_reports_bad_input_clearly(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "items.jsonl").write_text("{oops\n")
    variants = tmp_path / "variants.yaml"
    variants.write_text("variants:\n  - {name: v, model: m, schema: nonexistent}\n")
    code = cli(["eval", "--dataset", str(tmp_path / "items.jsonl"), "--variants",
                str(variants), "--url", "http://127.0.0.1:9", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "nonexistent" in capsys.readouterr().err


def test_the_shipped_plan_and_dataset_load() -> None:
    root = Path(__file__).resolve().parents[2]
    shipped = load_plan(root / "config" / "eval" / "tickets.yaml")
    assert [v.name for v in shipped.variants] == [
        "prompt-only", "prompt-retries", "prompt-constrained", "ticket-router"]
    items = load_dataset(root / "data" / "tickets" / "eval.jsonl")
    assert len(items) >= 40 and all(i.expected for i in items)
    tools = load_plan(root / "config" / "eval" / "tool-calls.yaml")
    assert {v.tool for v in tools.variants} == {"route_ticket"}


async def test_the_command_writes_every_format_and_the_page_draws_its_charts(
    gateway: str, fake_engine: FakeEngine, tmp_path: Path
) -> None:
    variants = tmp_path / "variants.yaml"
    variants.write_text(json.dumps({"concurrency": 2, "variants": [
        {"name": "prompt-only", "model": BASE_MODEL, "schema": SCHEMA},
        {"name": "retries", "model": BASE_MODEL, "schema": SCHEMA, "retries": True}]}))
    script(fake_engine, [PROSE, json.dumps(RIGHT)] * 10)
    out = tmp_path / "report"
    args = ["eval", "--dataset", str(dataset(tmp_path, 6)), "--variants", str(variants),
            "--url", gateway, "--out", str(out), "--quiet"]
    assert await asyncio.to_thread(cli, args) == 0
    for name in ("report.md", "report.json", "report.html", "deviation-by-kind.png",
                 "accuracy-split.png", "latency.png", "tokens.png"):
        assert (out / name).stat().st_size > 0, name
    data = json.loads((out / "report.json").read_text())
    assert [v["name"] for v in data["variants"]] == ["prompt-only", "retries"]
    assert "Recommendation" in (out / "report.md").read_text()
    assert charts_drawn(out / "report.html") == 4


def charts_drawn(page: Path) -> int:
    """How many charts a real headless browser drew on the page."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is missing: scripts/setup.sh --with-browser installs it"
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
         "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    marker = 'data-charts-drawn="'
    assert marker in dom, dom[:500]
    return int(dom.split(marker, 1)[1].split('"', 1)[0])


async def test_captured_traffic_is_evaluated(make_settings: SettingsFactory,
                                             fake_engine: FakeEngine, tmp_path: Path) -> None:
    capture = tmp_path / "examples"
    app = create_app(make_settings(structured={"capture": {"enabled": True,
                                                           "dir": str(capture)}}))
    body = {"model": BASE_MODEL, "messages": [{"role": "user", "content": "route"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "ticket"}}}
    for index in range(10):
        if index in (1, 4, 7):
            fake_engine.enqueue(PROSE)
        fake_engine.enqueue(json.dumps(RIGHT))
    async for client in start(app):
        for _ in range(10):
            assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
    report = from_capture(default_plan(), capture)
    (pair,) = report.variants
    assert (pair.name, pair.requests, pair.by_kind) == ("base/ticket", 10, {"not_json": 3})
    assert report.decision.recommendation == FINE_TUNE


def test_an_empty_capture_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="holds no structured answers"):
        from_capture(default_plan(), tmp_path)


async def test_a_report_without_any_deviation_draws_its_charts(
    gateway: str, fake_engine: FakeEngine, tmp_path: Path
) -> None:
    """Warnings are errors here: an empty legend or chart would fail this."""
    script(fake_engine, [json.dumps(RIGHT)] * 4)
    report = await evaluate(gateway, plan(), dataset(tmp_path, 4), tmp_path / "out")
    paths = write_report(report, tmp_path / "out")
    assert report.variants[0].by_kind == {}
    assert charts_drawn(paths["html"]) == 4
