"""Rollouts through the HTTP API, against a fake engine that answers per adapter version."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.app import create_app
from gateway.config import Settings
from tests.adapter_factory import write_adapter
from tests.conftest import SettingsFactory, start
from tests.fakes.engine import FakeEngine
from tests.metrics_reader import parse, value

pytestmark = pytest.mark.anyio

TICKET = '{"category": "billing", "priority": "high", "escalate": true}'
PROSE = "This ticket is about billing, I think."
SERVING = {"response_schema": "ticket", "validate_by_default": True}
FAST_GATE = {"min_checks": 10, "deviation_margin": 0.3, "latency_margin": 100.0}
POLICY = {"stages": [{"mode": "shadow", "share": 1.0}, {"mode": "canary", "share": 0.5}],
          "gate": FAST_GATE}


def _ask(user: str = "u") -> dict[str, Any]:
    return {"model": "router", "messages": [{"role": "user", "content": "Charged twice."}],
            "max_tokens": 64, "user": user}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    write_adapter(tmp_path / "adapters" / "router", name="router", version="1",
                  num_layers=2, serving=SERVING)
    # Candidates one level down: inside a root (loads must be), outside the store scan.
    write_adapter(tmp_path / "new" / "router" / "good", name="router", version="2", seed=1,
                  num_layers=2, serving=SERVING)
    write_adapter(tmp_path / "new" / "router" / "bad", name="router", version="3", seed=2,
                  num_layers=2, serving=SERVING)
    return tmp_path


@pytest.fixture
def app(make_settings: SettingsFactory, store: Path) -> FastAPI:
    roots = [str(store / "adapters"), str(store / "new")]
    return create_app(make_settings(adapters={"roots": roots,
                                              "staging_dir": str(store / "staging"),
                                              "rollout_sticky_header": "x-user"}))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async for c in start(app):
        yield c


def _engine_ids(app: FastAPI) -> dict[str, str]:
    snapshot = app.state.adapters.registry.get("router")
    return {v.version: v.engine_id for v in snapshot.versions}


async def _start(client: httpx.AsyncClient, folder: str, policy: dict[str, Any] = POLICY
                 ) -> dict[str, Any]:
    response = await client.post("/v1/adapters/router/rollout",
                                 json={"path": folder, "policy": policy})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _traffic(client: httpx.AsyncClient, app: FastAPI, count: int,
                   users: int = 1) -> list[httpx.Response]:
    answers = []
    for index in range(count):
        answers.append(await client.post("/v1/chat/completions", json=_ask(),
                                         headers={"x-user": f"user-{index % users}"}))
        await app.state.inference.shadows_settled()
    return answers


async def test_a_candidate_that_deviates_is_rolled_back_and_no_client_sees_it(
    app: FastAPI, client: httpx.AsyncClient, fake_engine: FakeEngine, store: Path
) -> None:
    rollout = await _start(client, str(store / "new" / "router" / "bad"))
    assert rollout["state"] == "active" and rollout["current"] == {"mode": "shadow",
                                                                    "share": 1.0}
    ids = _engine_ids(app)
    fake_engine.contents = {ids["1"]: TICKET, ids["3"]: PROSE}
    answers = await _traffic(client, app, 12)
    assert all(a.status_code == 200 for a in answers)
    assert {a.headers["x-adapter-version"] for a in answers} == {"1"}
    assert all(a.json()["choices"][0]["message"]["content"] == TICKET for a in answers)
    rollout = (await client.get("/v1/adapters/router/rollout")).json()
    assert rollout["state"] == "rolled_back"
    last = rollout["last_decision"]
    assert last["action"] == "rollback" and "deviates more than stable" in last["reason"]
    assert last["numbers"]["candidate"]["deviations"] == 10
    assert last["numbers"]["deviation_difference_interval"][0] > 0
    # The candidate left service; the stable version serves on.
    snapshot = (await client.get("/v1/adapters/router")).json()
    assert snapshot["public_version"] == "1"
    assert not any(v["candidate"] for v in snapshot["versions"])
    samples = parse((await client.get("/metrics")).text)
    assert value(samples, "gateway_rollout_decisions_total", adapter="router",
                 action="rollback") == 1
    assert value(samples, "gateway_rollout_deviations_total", adapter="router",
                 role="candidate") == 10


async def test_an_equal_candidate_is_promoted_through_every_stage(
    app: FastAPI, client: httpx.AsyncClient, fake_engine: FakeEngine, store: Path
) -> None:
    await _start(client, str(store / "new" / "router" / "good"))
    ids = _engine_ids(app)
    fake_engine.contents = {ids["1"]: TICKET, ids["2"]: TICKET}
    await _traffic(client, app, 10)  # shadow: every request copied to the candidate
    rollout = (await client.get("/v1/adapters/router/rollout")).json()
    assert rollout["stage"] == 1 and rollout["current"]["mode"] == "canary"
    answers = await _traffic(client, app, 60, users=30)
    assert {a.headers["x-adapter-version"] for a in answers} == {"1", "2"}
    rollout = (await client.get("/v1/adapters/router/rollout")).json()
    assert rollout["state"] == "promoted", rollout["stats"]
    assert [d["action"] for d in rollout["decisions"]] == ["start", "advance", "promote"]
    later = await _traffic(client, app, 3, users=3)
    assert {a.headers["x-adapter-version"] for a in later} == {"2"}


async def test_a_canary_caller_stays_on_one_version(
    app: FastAPI, client: httpx.AsyncClient, fake_engine: FakeEngine, store: Path
) -> None:
    await _start(client, str(store / "new" / "router" / "good"),
                 {"stages": [{"mode": "canary", "share": 0.5}], "gate": {"min_checks": 1000}})
    for user in range(20):  # enough distinct callers for the canary to split by caller
        await client.post("/v1/chat/completions", json=_ask(), headers={"x-user": f"u{user}"})
    seen: dict[str, set[str]] = {}
    for _ in range(3):
        for user in range(20):
            answer = await client.post("/v1/chat/completions", json=_ask(),
                                       headers={"x-user": f"user-{user}"})
            seen.setdefault(f"user-{user}", set()).add(answer.headers["x-adapter-version"])
    assert all(len(versions) == 1 for versions in seen.values())
    assert set().union(*seen.values()) == {"1", "2"}


async def test_a_canary_behind_one_application_key_splits_by_request_and_decides(
    app: FastAPI, client: httpx.AsyncClient, fake_engine: FakeEngine, store: Path
) -> None:
    await _start(client, str(store / "new" / "router" / "good"),
                 {"stages": [{"mode": "canary", "share": 0.5}], "gate": FAST_GATE})
    ids = _engine_ids(app)
    fake_engine.contents = {ids["1"]: TICKET, ids["2"]: TICKET}
    status = (await client.get("/v1/adapters/router/rollout")).json()
    assert status["split"] == "request"
    answers = await _traffic(client, app, 80, users=1)  # every request: the same key
    assert {a.headers["x-adapter-version"] for a in answers[:40]} == {"1", "2"}
    rollout = (await client.get("/v1/adapters/router/rollout")).json()
    assert rollout["state"] == "promoted", rollout["stats"]


async def test_pins_reach_only_what_is_public_for_the_caller(
    app: FastAPI, client: httpx.AsyncClient, fake_engine: FakeEngine, store: Path
) -> None:
    await _start(client, str(store / "new" / "router" / "good"),
                 {**POLICY, "gate": {**FAST_GATE, "min_checks": 1000}})
    fake_engine.default_content = TICKET
    # In its shadow stage the candidate answers nobody, pinned or not, and is not listed.
    pinned = await client.post("/v1/chat/completions", json={**_ask(), "model": "router@2"})
    assert pinned.status_code == 404
    assert "versions: ['1']" in pinned.json()["error"]["message"]
    stable = await client.post("/v1/chat/completions", json={**_ask(), "model": "router@1"})
    assert stable.status_code == 200 and stable.headers["x-adapter-version"] == "1"
    # In its canary it answers a pin only for the callers the canary gives it.
    await client.post("/v1/adapters/router/rollout/advance", json={"reason": "test"})
    versions = set()
    for user in range(40):
        answer = await client.post("/v1/chat/completions", json={**_ask(), "model": "router@2"},
                                   headers={"x-user": f"user-{user}"})
        assert answer.status_code in (200, 404)
        versions.add(answer.headers.get("x-adapter-version"))
    assert versions == {"2", None}


async def test_shadow_copies_stay_within_their_budget_and_never_delay_the_client(
    app: FastAPI, client: httpx.AsyncClient, fake_engine: FakeEngine, store: Path
) -> None:
    import asyncio

    policy = {"stages": [{"mode": "shadow", "share": 1.0}], "gate": {"min_checks": 1000},
              "shadow_max_in_flight": 1}
    await _start(client, str(store / "new" / "router" / "good"), policy)
    ids = _engine_ids(app)
    held = asyncio.Event()
    fake_engine.contents = {ids["1"]: TICKET}
    # The first shadow copy is held by the engine until the end of the test.
    fake_engine.enqueue(TICKET)  # the client's answer
    fake_engine.enqueue(TICKET, gate=held)  # its shadow copy
    first = await client.post("/v1/chat/completions", json=_ask())
    assert first.status_code == 200 and first.headers["x-adapter-version"] == "1"
    second = await client.post("/v1/chat/completions", json=_ask())  # its copy: skipped
    assert second.status_code == 200
    samples = parse((await client.get("/metrics")).text)
    assert value(samples, "gateway_rollout_shadow_skipped_total", adapter="router") == 1
    held.set()
    await app.state.inference.shadows_settled()
    rollout = (await client.get("/v1/adapters/router/rollout")).json()
    assert rollout["stats"]["candidate"]["requests"] == 1


async def test_a_restart_keeps_the_rollout_where_it_was(
    make_settings: SettingsFactory, fake_engine: FakeEngine, store: Path
) -> None:
    roots = [str(store / "adapters"), str(store / "new")]
    settings = make_settings(adapters={"roots": roots, "staging_dir": str(store / "staging")})
    app = create_app(settings)
    async for client in start(app):
        await _start(client, str(store / "new" / "router" / "good"),
                     {**POLICY, "gate": {**FAST_GATE, "min_checks": 1000}})
        ids = _engine_ids(app)
        fake_engine.contents = {ids["1"]: TICKET, ids["2"]: PROSE}
        await client.post("/v1/adapters/router/rollout/advance", json={"reason": "test"})
        await _traffic(client, app, 8, users=8)
        before = (await client.get("/v1/adapters/router/rollout")).json()
    again = create_app(settings)
    async for client in start(again):
        after = (await client.get("/v1/adapters/router/rollout")).json()
        assert after["state"] == "active" and after["stage"] == 1
        assert after["stats"]["stable"]["checks"] == before["stats"]["stable"]["checks"] > 0
        assert after["decisions"] == before["decisions"]
        snapshot = (await client.get("/v1/adapters/router")).json()
        assert snapshot["public_version"] == "1"
        assert [v["version"] for v in snapshot["versions"] if v["candidate"]] == ["2"]


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("post", "/v1/adapters/router/rollout",
     {"path": "new/router/good", "policy": {"stages": [{"mode": "canary", "share": 1.5}]}}, 400),
    ("post", "/v1/adapters/router/rollout", {"path": "../etc"}, 400),
    ("post", "/v1/adapters/router/rollout", {"path": "new/router/missing"}, 400),
    ("post", "/v1/adapters/nobody/rollout", {"path": "new/router/good"}, 404),
    ("post", "/v1/adapters/router/rollout", {"path": "router"}, 409),
    ("get", "/v1/adapters/router/rollout", None, 404),
    ("post", "/v1/adapters/router/rollout/promote", {}, 404),
    ("post", "/v1/adapters/router/rollout/jump", {}, 400),
])
async def test_bad_rollout_requests_get_clear_errors(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None,
    status: int,
) -> None:
    response = await client.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]


async def test_a_candidate_that_fails_validation_never_enters_a_rollout(
    client: httpx.AsyncClient, store: Path
) -> None:
    write_adapter(store / "new" / "router" / "wide", name="router", version="9", rank=64,
                  num_layers=2, serving=SERVING)  # above the engine's max_lora_rank
    response = await client.post("/v1/adapters/router/rollout",
                                 json={"path": str(store / "new" / "router" / "wide")})
    assert response.status_code == 400 and "rank" in response.json()["error"]["message"]
    assert (await client.get("/v1/adapters/router/rollout")).status_code == 404
    assert (await client.get("/v1/adapters/router")).json()["public_version"] == "1"


async def test_a_canary_whose_answers_are_exhausted_still_counts_its_deviations(
    app: FastAPI, client: httpx.AsyncClient, fake_engine: FakeEngine, store: Path
) -> None:
    await _start(client, str(store / "new" / "router" / "bad"),
                 {"stages": [{"mode": "canary", "share": 0.5}], "gate": FAST_GATE})
    ids = _engine_ids(app)
    fake_engine.contents = {ids["1"]: TICKET, ids["3"]: PROSE}  # retries included
    answers = await _traffic(client, app, 60, users=30)
    rollout = (await client.get("/v1/adapters/router/rollout")).json()
    assert rollout["state"] == "rolled_back", rollout["stats"]
    # The candidate's callers got the gateway's 422 (no valid answer), nobody else failed.
    failed = {(a.status_code, a.headers["x-adapter-version"]) for a in answers
              if a.status_code != 200}
    assert failed == {(422, "3")}


async def test_the_configured_policy_rolls_out_and_a_manifest_can_say_hot_swap(
    make_settings: SettingsFactory, fake_engine: FakeEngine, store: Path
) -> None:
    roots = [str(store / "adapters"), str(store / "new")]
    write_adapter(store / "new" / "router" / "swap", name="router", version="5", seed=5,
                  num_layers=2, serving=SERVING, manifest_overrides={"rollout": False})
    app = create_app(make_settings(adapters={"roots": roots, "rollout": POLICY,
                                             "staging_dir": str(store / "staging")}))
    async for client in start(app):
        # A plain replace is a rollout under the configured policy...
        loaded = await client.post("/v1/adapters", json={
            "path": str(store / "new" / "router" / "good"), "replace": True})
        assert loaded.status_code == 201 and loaded.json()["public_version"] == "1"
        assert (await client.get("/v1/adapters/router/rollout")).json()["stages"] == \
            POLICY["stages"]
        await client.post("/v1/adapters/router/rollout/abort", json={"reason": "next test"})
        # ...unless the new version's manifest asks for a hot swap.
        swapped = await client.post("/v1/adapters", json={
            "path": str(store / "new" / "router" / "swap"), "replace": True})
        assert swapped.status_code == 201 and swapped.json()["public_version"] == "5"
        rollout = (await client.get("/v1/adapters/router/rollout")).json()
        assert rollout["state"] == "aborted" and rollout["candidate"]["version"] == "2"


def _store_only(make_settings: SettingsFactory, store: Path) -> Settings:
    return make_settings(adapters={"roots": [str(store / "adapters")], "rollout": POLICY,
                                   "staging_dir": str(store / "staging")})


async def _roll_out_over_the_folder(client: httpx.AsyncClient, store: Path, which: str) -> None:
    """Starts a rollout by writing a new version over the adapter's store folder."""
    folder = store / "adapters" / "router"
    for name in ("adapter.yaml", "adapter_config.json", "adapter_model.safetensors"):
        (folder / name).write_bytes((store / "new" / "router" / which / name).read_bytes())
    loaded = await client.post("/v1/adapters", json={"path": "router", "replace": True})
    assert loaded.status_code == 201, loaded.text


async def test_a_restart_finds_the_stable_version_in_staging_when_its_folder_changed(
    make_settings: SettingsFactory, fake_engine: FakeEngine, store: Path
) -> None:
    """The store folder now holds the candidate: the stable one comes back from its staged
    copy (content-addressed), with its version label and serving defaults."""
    settings = _store_only(make_settings, store)
    app = create_app(settings)
    async for client in start(app):
        await _roll_out_over_the_folder(client, store, "good")
        before = (await client.get("/v1/adapters/router/rollout")).json()
        assert before["state"] == "active"
    again = create_app(settings)
    async for client in start(again):
        after = (await client.get("/v1/adapters/router/rollout")).json()
        assert after["state"] == "active" and after["decisions"] == before["decisions"]
        snapshot = (await client.get("/v1/adapters/router")).json()
        assert snapshot["public_version"] == "1"
        assert snapshot["serving"]["response_schema"] == "ticket"
        assert [v["version"] for v in snapshot["versions"] if v["candidate"]] == ["2"]
        fake_engine.default_content = TICKET
        answer = await client.post("/v1/chat/completions", json=_ask())
        assert answer.status_code == 200 and answer.headers["x-adapter-version"] == "1"


async def test_a_rollout_gates_on_tool_call_deviation(
    app: FastAPI, client: httpx.AsyncClient, fake_engine: FakeEngine, store: Path
) -> None:
    """Tool requests are structured requests like any other: the candidate's broken calls
    (shadow copies, checked and never returned) roll it back."""
    rollout = await _start(client, str(store / "new" / "router" / "bad"))
    ids = _engine_ids(app)
    broken = '<tool_call>{"name": "route_ticket", "arguments": {"category": "x"}}</tool_call>'
    fake_engine.contents = {ids["1"]: PROSE, ids["3"]: broken}
    route = {"type": "function", "function": {"name": "route_ticket", "parameters": {
        "type": "object", "properties": {"category": {"enum": ["billing", "other"]}}}}}
    for _ in range(12):
        answer = await client.post("/v1/chat/completions",
                                   json={**_ask(), "tools": [route], "tool_choice": "auto"})
        await app.state.inference.shadows_settled()
        assert answer.status_code == 200 and answer.json()["structured"]["valid"]
    rollout = (await client.get("/v1/adapters/router/rollout")).json()
    assert rollout["state"] == "rolled_back"
    assert rollout["last_decision"]["numbers"]["candidate"]["deviations"] == 10


async def test_a_restart_after_a_rollback_serves_the_stable_version_not_the_candidate(
    make_settings: SettingsFactory, fake_engine: FakeEngine, store: Path
) -> None:
    """The rollout began by replacing the store folder, so the folder holds the candidate;
    once it was rolled back (or aborted), a restart must not publish it as the only version."""
    settings = _store_only(make_settings, store)
    app = create_app(settings)
    async for client in start(app):
        await _roll_out_over_the_folder(client, store, "bad")
        aborted = await client.post("/v1/adapters/router/rollout/abort",
                                    json={"reason": "it deviates"})
        assert aborted.json()["state"] == "aborted"
    again = create_app(settings)
    async for client in start(again):
        snapshot = (await client.get("/v1/adapters/router")).json()
        assert snapshot["public_version"] == "1", snapshot
        assert [v["version"] for v in snapshot["versions"]] == ["1"]
        fake_engine.default_content = TICKET
        answer = await client.post("/v1/chat/completions", json=_ask())
        assert answer.status_code == 200 and answer.headers["x-adapter-version"] == "1"
        rollout = (await client.get("/v1/adapters/router/rollout")).json()
        assert rollout["state"] == "aborted"


async def test_responses_traffic_feeds_a_rollout(
    app: FastAPI, client: httpx.AsyncClient, fake_engine: FakeEngine, store: Path
) -> None:
    """/v1/responses goes through the same core: shadows copy it, the gate counts it."""
    await _start(client, str(store / "new" / "router" / "bad"))
    ids = _engine_ids(app)
    fake_engine.contents = {ids["1"]: TICKET, ids["3"]: PROSE}
    for _ in range(12):
        answer = await client.post("/v1/responses", json={
            "model": "router", "input": "Charged twice.", "max_output_tokens": 64})
        assert answer.status_code == 200 and answer.headers["x-adapter-version"] == "1"
        assert answer.json()["output"][0]["content"][0]["text"] == TICKET
        await app.state.inference.shadows_settled()
    rollout = (await client.get("/v1/adapters/router/rollout")).json()
    assert rollout["state"] == "rolled_back"
    assert rollout["last_decision"]["numbers"]["candidate"]["deviations"] == 10


def _replica(make_settings: SettingsFactory, store: Path, name: str) -> Settings:
    """One of several replicas sharing the store and the notices, each with its own book
    and staging (a pod's own volume)."""
    return make_settings(adapters={
        "roots": [str(store / "adapters")], "rollout": POLICY,
        "staging_dir": str(store / name / "staging"),
        "rollouts_file": str(store / name / "rollouts.json"),
        "rollout_notices_dir": str(store / "notices")})


async def test_a_replica_that_starts_during_a_rollout_serves_the_stable_version(
    make_settings: SettingsFactory, fake_engine: FakeEngine, store: Path
) -> None:
    """The store folder holds the candidate; a replica started now (a rescheduled pod, a
    scale-up) serves the stable version to its traffic and rolls the candidate out itself."""
    fake_engine.default_content = TICKET
    first_app = create_app(_replica(make_settings, store, "a"))
    async for first in start(first_app):
        await _roll_out_over_the_folder(first, store, "good")
        await first_app.state.adapters.conductor.notices_posted()
        async for late in start(create_app(_replica(make_settings, store, "b"))):
            snapshot = (await late.get("/v1/adapters/router")).json()
            assert snapshot["public_version"] == "1", snapshot
            for user in range(8):  # within the shadow stage (the gate needs 10 checks)
                answer = await late.post("/v1/chat/completions", json=_ask(),
                                         headers={"x-user": f"user-{user}"})
                assert answer.headers["x-adapter-version"] == "1"
            own = (await late.get("/v1/adapters/router/rollout")).json()
            assert own["state"] == "active" and own["candidate"]["version"] == "2"
            assert [d["action"] for d in own["decisions"]] == ["start"]


@pytest.mark.parametrize("verdict", ["abort", "promote"])
async def test_a_replica_that_starts_after_a_verdict_follows_it(
    make_settings: SettingsFactory, fake_engine: FakeEngine, store: Path, verdict: str
) -> None:
    fake_engine.default_content = TICKET
    first_app = create_app(_replica(make_settings, store, "a"))
    async for first in start(first_app):
        await _roll_out_over_the_folder(first, store, "bad")
        decided = await first.post(f"/v1/adapters/router/rollout/{verdict}",
                                   json={"reason": "checked by hand"})
        assert decided.status_code == 200, decided.text
        await first_app.state.adapters.conductor.notices_posted()
    async for late in start(create_app(_replica(make_settings, store, "c"))):
        snapshot = (await late.get("/v1/adapters/router")).json()
        expected = "1" if verdict == "abort" else "3"
        assert snapshot["public_version"] == expected
        assert [v["version"] for v in snapshot["versions"]] == [expected]
        answer = await late.post("/v1/chat/completions", json=_ask())
        assert answer.headers["x-adapter-version"] == expected
