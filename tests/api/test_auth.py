from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.app import create_app
from tests.conftest import BASE_MODEL, SettingsFactory, start
from tests.fakes.engine import FakeEngine

pytestmark = pytest.mark.anyio

KEYS = [{"name": "app", "scope": "user", "key": "user-secret"},
        {"name": "ops", "scope": "admin", "key_env": "TEST_GATEWAY_ADMIN_KEY"}]
BODY = {"model": BASE_MODEL, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def secured(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("TEST_GATEWAY_ADMIN_KEY", "admin-secret")
    settings = make_settings(auth={"keys": KEYS})
    app = create_app(settings)
    async for client in start(app):
        yield client


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_missing_key_is_401(secured: httpx.AsyncClient) -> None:
    response = await secured.post("/v1/chat/completions", json=BODY)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


async def test_wrong_key_is_401(secured: httpx.AsyncClient) -> None:
    response = await secured.post("/v1/chat/completions", json=BODY,
                                  headers=_bearer("user-secreT"))
    assert response.status_code == 401


@pytest.mark.parametrize("key", ["user-secret", "admin-secret"])
async def test_user_and_admin_keys_reach_inference(secured: httpx.AsyncClient, key: str) -> None:
    response = await secured.post("/v1/chat/completions", json=BODY, headers=_bearer(key))
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/health", "/ready"])
async def test_open_paths_need_no_key(secured: httpx.AsyncClient, path: str) -> None:
    response = await secured.get(path)
    assert response.status_code == 200


async def test_models_need_a_key(secured: httpx.AsyncClient) -> None:
    assert (await secured.get("/v1/models")).status_code == 401
    assert (await secured.get("/v1/models", headers=_bearer("user-secret"))).status_code == 200


async def test_key_from_an_unset_variable_is_refused(make_settings: SettingsFactory,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_GATEWAY_ADMIN_KEY", raising=False)
    with pytest.raises(ValueError, match="TEST_GATEWAY_ADMIN_KEY"):
        create_app(make_settings(auth={"keys": KEYS}))


async def test_engine_internals_reach_admin_keys_only(secured: httpx.AsyncClient,
                                                      fake_engine: FakeEngine) -> None:
    """A user key reads the kind of failure and the request id; an admin key, and the log,
    get the engine's own words (which name its address)."""
    for _ in range(2):
        fake_engine.enqueue("worker at http://10.1.2.3:8000 crashed (CUDA error)", status=500)
    user = await secured.post("/v1/chat/completions", json=BODY, headers={
        **_bearer("user-secret"), "x-request-id": "req-42"})
    assert user.status_code == 502
    message = user.json()["error"]["message"]
    assert "10.1.2.3" not in message and "CUDA" not in message
    assert "'req-42'" in message and user.json()["error"]["code"] == "engine_error"
    admin = await secured.post("/v1/chat/completions", json=BODY,
                               headers=_bearer("admin-secret"))
    assert admin.status_code == 502 and "10.1.2.3" in admin.json()["error"]["message"]


@pytest.fixture
async def with_scraper(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("TEST_GATEWAY_ADMIN_KEY", "admin-secret")
    keys = [*KEYS, {"name": "prometheus", "scope": "metrics", "key": "scrape-secret"}]
    async for client in start(create_app(make_settings(auth={"keys": keys}))):
        yield client


@pytest.mark.parametrize("path", ["/metrics", "/metrics/engine"])
async def test_metrics_need_a_metrics_or_admin_key_once_keys_exist(
        with_scraper: httpx.AsyncClient, path: str) -> None:
    """The metrics name every adapter and the engine's ids: not for anyone who asks."""
    assert (await with_scraper.get(path)).status_code == 401
    assert (await with_scraper.get(path, headers=_bearer("user-secret"))).status_code == 403
    for key in ("scrape-secret", "admin-secret"):
        assert (await with_scraper.get(path, headers=_bearer(key))).status_code == 200
    assert (await with_scraper.get("/health")).status_code == 200  # probes need no key


async def test_a_metrics_key_reads_metrics_only(with_scraper: httpx.AsyncClient) -> None:
    scraper = _bearer("scrape-secret")
    assert (await with_scraper.post("/v1/chat/completions", json=BODY,
                                    headers=scraper)).status_code == 403
    assert (await with_scraper.get("/v1/adapters", headers=scraper)).status_code == 403


@pytest.mark.parametrize(("key", "sees"), [("user-secret", False), ("admin-secret", True)])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses"])
async def test_a_stream_that_breaks_tells_user_keys_the_kind_not_the_engines_words(
        secured: httpx.AsyncClient, fake_engine: FakeEngine, key: str, sees: bool,
        path: str) -> None:
    """As on a plain error: the engine's own words go to admin keys and the log."""
    fake_engine.enqueue("partial answer", stream_end="error")
    body = ({**BODY, "stream": True} if path.endswith("completions")
            else {"model": BASE_MODEL, "input": "hi", "stream": True})
    async with secured.stream("POST", path, json=body, headers=_bearer(key)) as answer:
        text = (await answer.aread()).decode()
    assert answer.status_code == 200 and '"error"' in text
    assert ("KV cache exhausted" in text) is sees
    assert sees or "request id" in text
