"""The pooled HTTP client to one or more vLLM OpenAI servers."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from gateway.errors import (
    EngineTimeout,
    EngineUnavailable,
    GatewayError,
    UpstreamClientError,
    UpstreamError,
)

log = logging.getLogger(__name__)


class EngineClient:
    """Sends OpenAI requests to the engine; maps transport failures to domain errors.

    Requests go round-robin over the configured servers. A server that refuses
    the connection is skipped for that request (nothing was sent to it yet).
    """

    def __init__(
        self,
        urls: list[str],
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        max_connections: int = 256,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not urls:
            raise ValueError("EngineClient needs at least one engine URL")
        self.urls = [u.rstrip("/") for u in urls]
        self._next = itertools.cycle(range(len(self.urls)))
        timeout = httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout)
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._http = httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def post(self, path: str, body: dict[str, Any], request_id: str = "") -> dict[str, Any]:
        """POSTs a JSON body and returns the JSON answer."""
        response = await self._send("POST", path, body, request_id, stream=False)
        await _raise_for_status(response)
        return _json_object(response)

    @asynccontextmanager
    async def stream(
        self, path: str, body: dict[str, Any], request_id: str = ""
    ) -> AsyncIterator[httpx.Response]:
        """POSTs a JSON body and yields the open streaming response; closing it aborts upstream."""
        response = await self._send("POST", path, body, request_id, stream=True)
        try:
            await _raise_for_status(response)
            yield response
        finally:
            await response.aclose()

    async def get_raw(self, url: str) -> httpx.Response:
        """GETs one server's URL and returns the whole response (health, metrics)."""
        try:
            return await self._http.get(url)
        except httpx.TimeoutException as exc:
            raise EngineTimeout(f"engine did not answer {url} in time: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"engine unreachable at {url}: {exc!r}") from exc

    async def healthy(self) -> bool:
        """True when at least one engine server answers its health check."""
        for url in self.urls:
            try:
                response = await self._http.get(f"{url}/health", timeout=2.0)
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                return True
        return False

    async def broadcast(self, path: str, body: dict[str, Any]) -> list[httpx.Response]:
        """POSTs the same body to every engine server (runtime LoRA load and unload)."""
        responses = []
        for url in self.urls:
            try:
                responses.append(await self._http.post(f"{url}{path}", json=body))
            except httpx.TimeoutException as exc:
                raise EngineTimeout(f"engine at {url} did not answer {path} in time") from exc
            except httpx.TransportError as exc:
                raise EngineUnavailable(f"engine unreachable at {url}: {exc!r}") from exc
        return responses

    async def _send(
        self, method: str, path: str, body: dict[str, Any], request_id: str, *, stream: bool
    ) -> httpx.Response:
        headers = {"x-request-id": request_id} if request_id else {}
        last: Exception | None = None
        for _ in self.urls:
            url = self.urls[next(self._next)] + path
            request = self._http.build_request(method, url, json=body, headers=headers)
            try:
                return await self._http.send(request, stream=stream)
            except httpx.ConnectError as exc:
                log.warning("engine at %s refused the connection: %r", url, exc)
                last = exc
            except httpx.TimeoutException as exc:
                raise EngineTimeout(
                    f"the engine did not answer within the configured timeout ({exc!r}); "
                    "retry later or raise engine.read_timeout_s"
                ) from exc
            except httpx.TransportError as exc:
                raise EngineUnavailable(f"the engine connection failed: {exc!r}") from exc
        raise EngineUnavailable(
            f"no engine server is reachable ({last!r}); check that vLLM is running"
        )


async def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    await response.aread()
    raise _error_from(response)


def _error_from(response: httpx.Response) -> GatewayError:
    message, param, code = _parse_error(response.content)
    status = response.status_code
    if status >= 500:
        return UpstreamError(f"the engine failed: {message}", code="engine_error")
    return UpstreamClientError(status, message, param=param, code=code)


def _parse_error(content: bytes) -> tuple[str, str | None, str | None]:
    try:
        payload = json.loads(content)
    except ValueError:
        return content.decode(errors="replace")[:2000] or "no message", None, None
    error = payload.get("error", payload) if isinstance(payload, dict) else {}
    if not isinstance(error, dict):
        return str(error)[:2000], None, None
    code = error.get("code")
    param = error.get("param")
    return (
        str(error.get("message") or payload)[:2000],
        param if isinstance(param, str) else None,
        code if isinstance(code, str) else None,
    )


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError as exc:
        raise UpstreamError("the engine answered with invalid JSON") from exc
    if not isinstance(payload, dict):
        raise UpstreamError("the engine answered with JSON that is not an object")
    return payload
