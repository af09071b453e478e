"""An unexpected failure is a 500 in the envelope, with the request id, and no traceback."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import start

pytestmark = pytest.mark.anyio


async def test_unexpected_error_is_an_enveloped_500(app: FastAPI) -> None:
    async def boom() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", boom)
    async for _ in start(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            response = await client.get("/boom", headers={"x-request-id": "req-500"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-500"
    error = response.json()["error"]
    assert error["code"] == "internal_error" and "req-500" in error["message"]
    assert "secret internals" not in response.text and "Traceback" not in response.text
