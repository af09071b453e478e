"""Stored responses: conversations through previous_response_id, privacy by key,
retention, restarts, and a database that cannot be used."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.app import create_app
from gateway.config import Settings
from tests.conftest import BASE_MODEL, SettingsFactory, start
from tests.fakes.engine import FakeEngine

pytestmark = pytest.mark.anyio

KEYS = [{"name": "alice", "scope": "user", "key": "alice-secret"},
        {"name": "bob", "scope": "user", "key": "bob-secret"},
        {"name": "ops", "scope": "admin", "key": "ops-secret"}]


def _as(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}-secret"}


@pytest.fixture
def keyed(make_settings: SettingsFactory) -> Settings:
    return make_settings(auth={"keys": KEYS})


@pytest.fixture
async def gateway(keyed: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for client in start(create_app(keyed)):
        yield client


async def _create(client: httpx.AsyncClient, who: str = "alice", **body: Any) -> dict[str, Any]:
    answer = await client.post("/v1/responses", headers=_as(who),
                               json={"model": BASE_MODEL, **body})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def test_a_conversation_goes_on_through_previous_response_id(
        gateway: httpx.AsyncClient, fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("Nice to meet you, Ada.")
    first = await _create(gateway, input="My name is Ada.", instructions="Be warm.")
    fake_engine.enqueue("Your name is Ada.")
    second = await _create(gateway, input="What is my name?",
                           previous_response_id=first["id"])
    fake_engine.enqueue("You asked for your name.")
    await _create(gateway, input="What did I ask?", previous_response_id=second["id"])
    # Earlier instructions do not carry over; earlier inputs and outputs do.
    assert fake_engine.requests[-1]["messages"] == [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
        {"role": "user", "content": "What is my name?"},
        {"role": "assistant", "content": "Your name is Ada."},
        {"role": "user", "content": "What did I ask?"}]
    assert second["previous_response_id"] == first["id"]


async def test_a_key_sees_only_its_own_responses(gateway: httpx.AsyncClient,
                                                 fake_engine: FakeEngine) -> None:
    mine = await _create(gateway, input="secret plans")
    path = f"/v1/responses/{mine['id']}"
    assert (await gateway.get(path, headers=_as("alice"))).json()["id"] == mine["id"]
    for other in ("bob", "ops"):  # an admin key is no exception
        assert (await gateway.get(path, headers=_as(other))).status_code == 404
        assert (await gateway.get(f"{path}/input_items",
                                  headers=_as(other))).status_code == 404
        assert (await gateway.delete(path, headers=_as(other))).status_code == 404
        chained = await gateway.post("/v1/responses", headers=_as(other), json={
            "model": BASE_MODEL, "input": "go on", "previous_response_id": mine["id"]})
        assert chained.status_code == 400
        assert chained.json()["error"]["param"] == "previous_response_id"
    assert len(fake_engine.requests) == 1
    assert (await gateway.get(path, headers=_as("alice"))).status_code == 200


async def test_input_items_and_delete(gateway: httpx.AsyncClient) -> None:
    made = await _create(gateway, input=[{"role": "user", "content": f"part {i}"}
                                         for i in range(3)])
    path = f"/v1/responses/{made['id']}"
    page = (await gateway.get(f"{path}/input_items?limit=2&order=asc",
                              headers=_as("alice"))).json()
    assert [i["content"] for i in page["data"]] == ["part 0", "part 1"]
    assert page["has_more"] and all(i["id"].startswith("msg_") for i in page["data"])
    rest = (await gateway.get(f"{path}/input_items?order=asc&after={page['last_id']}",
                              headers=_as("alice"))).json()
    assert [i["content"] for i in rest["data"]] == ["part 2"] and not rest["has_more"]
    deleted = await gateway.delete(path, headers=_as("alice"))
    assert deleted.json() == {"id": made["id"], "object": "response", "deleted": True}
    assert (await gateway.get(path, headers=_as("alice"))).status_code == 404


async def test_store_false_keeps_nothing(gateway: httpx.AsyncClient, keyed: Settings) -> None:
    made = await _create(gateway, input="forget me", store=False)
    assert made["store"] is False
    assert not keyed.responses.store_file.exists()
    got = await gateway.get(f"/v1/responses/{made['id']}", headers=_as("alice"))
    assert got.status_code == 404


async def test_stored_responses_survive_a_restart(keyed: Settings) -> None:
    async for client in start(create_app(keyed)):
        made = await _create(client, input="remember me")
    async for client in start(create_app(keyed)):
        got = await client.get(f"/v1/responses/{made['id']}", headers=_as("alice"))
        assert got.json() == made


async def test_retention_drops_the_oldest_beyond_the_count(
        make_settings: SettingsFactory) -> None:
    settings = make_settings(responses={"max_count": 2})
    async for client in start(create_app(settings)):
        ids = [(await _create_open(client, f"turn {i}"))["id"] for i in range(3)]
        found = [(await client.get(f"/v1/responses/{i}")).status_code for i in ids]
    assert found == [404, 200, 200]


async def test_retention_drops_what_is_past_its_age(make_settings: SettingsFactory) -> None:
    settings = make_settings(responses={"max_age_s": 3600})
    async for client in start(create_app(settings)):
        made = await _create_open(client, "old news")
        with sqlite3.connect(settings.responses.store_file) as db:
            db.execute("UPDATE responses SET created_at = created_at - 7200")
        assert (await client.get(f"/v1/responses/{made['id']}")).status_code == 404


async def _create_open(client: httpx.AsyncClient, text: str) -> dict[str, Any]:
    answer = await client.post("/v1/responses", json={"model": BASE_MODEL, "input": text})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


@pytest.mark.parametrize("damage", ["corrupt", "a folder"])
async def test_an_unusable_database_is_a_clear_503_and_store_false_still_works(
        app: FastAPI, client: httpx.AsyncClient, settings: Settings, fake_engine: FakeEngine,
        damage: str) -> None:
    path: Path = settings.responses.store_file
    if damage == "corrupt":
        path.write_bytes(b"this is not a database" * 100)
    else:
        path.mkdir(parents=True)
    stored = await client.post("/v1/responses", json={"model": BASE_MODEL, "input": "hi"})
    assert stored.status_code == 503, stored.text
    assert stored.json()["error"]["code"] == "response_store_unavailable"
    assert fake_engine.requests == []  # refused before the engine spent anything
    unstored = await client.post("/v1/responses",
                                 json={"model": BASE_MODEL, "input": "hi", "store": False})
    assert unstored.status_code == 200, unstored.text
    assert (await client.get("/health")).status_code == 200


async def test_what_is_stored_is_redacted_and_the_client_gets_it_whole(
        client: httpx.AsyncClient, settings: Settings, fake_engine: FakeEngine) -> None:
    fake_engine.enqueue("I will write to bob@x.com.")
    made = await _create_open(client, "My address is bob@x.com")
    assert made["output"][0]["content"][0]["text"] == "I will write to bob@x.com."
    stored = (await client.get(f"/v1/responses/{made['id']}")).json()
    items = (await client.get(f"/v1/responses/{made['id']}/input_items")).json()
    assert "bob@x.com" not in str(stored) + str(items)
    assert "@example.invalid" in stored["output"][0]["content"][0]["text"]
    with sqlite3.connect(settings.responses.store_file) as db:
        assert "bob@x.com" not in str(db.execute("SELECT * FROM responses").fetchall())
