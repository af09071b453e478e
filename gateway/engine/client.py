"""The pooled HTTP client to one or more vLLM OpenAI servers.

aiohttp rather than httpx: on this path the client's own cost is most of the
gateway's overhead, and aiohttp's is about a third of httpx's (0.2 ms against
0.7 ms per request measured against the same local server).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from gateway.errors import (
    EngineTimeout,
    EngineUnavailable,
    GatewayError,
    RateLimited,
    UpstreamClientError,
    UpstreamError,
)

log = logging.getLogger(__name__)

# Seconds a client is told to wait when the engine is busy and did not say.
DEFAULT_RETRY_AFTER = "5"


@dataclass(frozen=True)
class RawResponse:
    status: int
    body: bytes

    def text(self) -> str:
        return self.body.decode(errors="replace")


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
        api_key: str | None = None,
    ) -> None:
        if not urls:
            raise ValueError("EngineClient needs at least one engine URL")
        self.urls = [u.rstrip("/") for u in urls]
        self._next = itertools.cycle(range(len(self.urls)))
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=read_timeout
        )
        self._max_connections = max_connections
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._session: aiohttp.ClientSession | None = None

    @property
    def _http(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running event loop that owns it.
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout,
                                                  headers=self._headers)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, path: str, body: dict[str, Any], request_id: str = "") -> dict[str, Any]:
        """POSTs a JSON body to one server and returns the JSON answer."""
        async with self._send(path, body, request_id) as response:
            await _raise_for_status(response)
            return _json_object(await _read(response))

    @asynccontextmanager
    async def stream(
        self, path: str, body: dict[str, Any], request_id: str = ""
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """POSTs a JSON body and yields the answer's lines; leaving early aborts upstream."""
        async with self._send(path, body, request_id) as response:
            await _raise_for_status(response)
            yield _lines(response)

    async def get_raw(self, url: str) -> RawResponse:
        """GETs one server's URL (health, metrics)."""
        try:
            async with self._http.get(url) as response:
                return RawResponse(response.status, await response.read())
        except TimeoutError as exc:
            raise EngineTimeout(f"the engine did not answer {url} in time") from exc
        except aiohttp.ClientError as exc:
            raise EngineUnavailable(f"the engine is unreachable at {url}: {exc!r}") from exc

    async def healthy(self) -> bool:
        """True when at least one engine server answers its health check."""
        for url in self.urls:
            try:
                async with asyncio.timeout(2.0), self._http.get(f"{url}/health") as response:
                    if response.status == 200:
                        return True
            except (TimeoutError, aiohttp.ClientError):
                continue
        return False

    async def broadcast(self, path: str, body: dict[str, Any]) -> list[RawResponse]:
        """POSTs the same body to every engine server (runtime LoRA load and unload)."""
        answers = []
        for url in self.urls:
            try:
                async with self._http.post(f"{url}{path}", json=body) as response:
                    answers.append(RawResponse(response.status, await response.read()))
            except TimeoutError as exc:
                raise EngineTimeout(f"the engine at {url} did not answer {path} in time") from exc
            except aiohttp.ClientError as exc:
                raise EngineUnavailable(f"the engine is unreachable at {url}: {exc!r}") from exc
        return answers

    @asynccontextmanager
    async def _send(
        self, path: str, body: dict[str, Any], request_id: str
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        headers = {"x-request-id": request_id} if request_id else None
        last: Exception | None = None
        for _ in self.urls:
            url = self.urls[next(self._next)] + path
            try:
                response = await self._http.post(url, json=body, headers=headers)
            except aiohttp.ClientConnectorError as exc:
                log.warning("engine at %s refused the connection: %r", url, exc)
                last = exc
                continue
            except TimeoutError as exc:
                raise _timeout() from exc
            except aiohttp.ClientError as exc:
                raise EngineUnavailable(f"the engine connection failed: {exc!r}") from exc
            try:
                yield response
            finally:
                response.close()
            return
        raise EngineUnavailable(
            f"no engine server is reachable ({last!r}); check that vLLM is running"
        )


def _timeout() -> EngineTimeout:
    return EngineTimeout(
        "the engine did not answer within the configured timeout; "
        "retry later or raise engine.read_timeout_s"
    )


async def _read(response: aiohttp.ClientResponse) -> bytes:
    try:
        return await response.read()
    except TimeoutError as exc:
        raise _timeout() from exc
    except aiohttp.ClientError as exc:
        raise _cut_off(exc) from exc


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for line in response.content:
            yield line
    except TimeoutError as exc:
        raise _timeout() from exc
    except aiohttp.ClientError as exc:
        raise _cut_off(exc) from exc


def _cut_off(exc: aiohttp.ClientError) -> UpstreamError:
    # The engine had answered and its answer broke off (a short body, a reset mid-stream):
    # the same 502 wherever it happens.
    return UpstreamError(f"the engine's answer was cut off: {exc!r}", code="engine_cut_off")


async def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    if response.status < 400:
        return
    retry_after = response.headers.get("retry-after") or DEFAULT_RETRY_AFTER
    raise error_from(response.status, await _read(response), retry_after)


def error_from(status: int, content: bytes, retry_after: str = DEFAULT_RETRY_AFTER
               ) -> GatewayError:
    """The gateway's error for an engine's error answer (status and body)."""
    message, param, code = _parse_error(content)
    wait = {"retry-after": retry_after}
    if status == 503:
        return EngineUnavailable(f"the engine is overloaded or not ready: {message}",
                                 headers=wait)
    if status == 429:
        return RateLimited(f"the engine is rate limiting: {message}", headers=wait)
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


def _json_object(content: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(content)
    except ValueError as exc:
        raise UpstreamError("the engine answered with invalid JSON") from exc
    if not isinstance(payload, dict):
        raise UpstreamError("the engine answered with JSON that is not an object")
    return payload
