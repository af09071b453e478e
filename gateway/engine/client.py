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
import time
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


@dataclass
class Server:
    """One engine server's standing: admitted to traffic, or ejected until it recovers."""

    url: str
    admitted: bool = True
    # Errors in a row (refused connections, 5xx answers); reset by a success.
    failures: int = 0
    # Ejections in a row; the backoff doubles with each, reset once it stays healthy.
    ejections: int = 0
    ejections_total: int = 0
    ejected_until: float = 0.0
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"url": self.url, "state": "admitted" if self.admitted else "ejected",
                "failures": self.failures, "ejections": self.ejections,
                "reason": self.reason or None,
                "readmit_in_s": None if self.admitted
                else round(max(0.0, self.ejected_until - time.monotonic()), 1)}


class EngineClient:
    """Sends OpenAI requests to the engine; maps transport failures to domain errors.

    Requests go round-robin over the admitted servers. A server that refuses the
    connection is skipped for that request (nothing was sent to it yet) and ejected; one
    that answers ``eject_after`` errors (5xx) in a row is ejected too. An ejected server
    gets no traffic until its backoff (1 s, 2 s, 4 s, ... up to ``max_backoff_s``) has
    passed and it answers its health check (:meth:`healthy`, polled by the monitor).
    With every server ejected, requests try them all rather than refuse outright.
    """

    def __init__(
        self,
        urls: list[str],
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        max_connections: int = 256,
        api_key: str | None = None,
        eject_after: int = 3,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        if not urls:
            raise ValueError("EngineClient needs at least one engine URL")
        self.urls = [u.rstrip("/") for u in urls]
        self.servers = [Server(url) for url in self.urls]
        self.eject_after = eject_after
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        # Set when an ejected server is admitted again (runtime loads must reach it).
        self.readmitted = asyncio.Event()
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
        """Checks every server's health (ejecting or admitting it); True when one is admitted."""
        answers = await asyncio.gather(*(self._health(server) for server in self.servers))
        now = time.monotonic()
        for server, answered in zip(self.servers, answers, strict=True):
            if not answered:
                if server.admitted:
                    self._eject(server, "it does not answer its health check")
            elif not server.admitted and now >= server.ejected_until:
                self._admit(server)
            elif server.admitted and server.failures == 0:
                server.ejections = 0
        if not any(server.admitted for server in self.servers):
            # The backoff keeps a flapping server out while others serve; with none
            # admitted, any that answers is better than none.
            for server, answered in zip(self.servers, answers, strict=True):
                if answered:
                    self._admit(server)
        return any(server.admitted for server in self.servers)

    async def _health(self, server: Server) -> bool:
        try:
            async with asyncio.timeout(2.0), self._http.get(f"{server.url}/health") as response:
                return response.status == 200
        except (TimeoutError, aiohttp.ClientError):
            return False

    def _eject(self, server: Server, reason: str) -> None:
        server.admitted = False
        server.ejections += 1
        server.ejections_total += 1
        backoff = min(self.backoff_s * 2.0 ** (server.ejections - 1), self.max_backoff_s)
        server.ejected_until = time.monotonic() + backoff
        server.reason = reason
        log.warning("engine server %s ejected for at least %.0f s: %s", server.url, backoff,
                    reason)

    def _admit(self, server: Server) -> None:
        server.admitted, server.failures, server.reason = True, 0, ""
        log.info("engine server %s admitted again: it answers its health check", server.url)
        self.readmitted.set()

    def _failed(self, server: Server, reason: str, *, at_once: bool = False) -> None:
        server.failures += 1
        if server.admitted and (at_once or server.failures >= self.eject_after):
            self._eject(server, reason)

    def _rotation(self) -> list[Server]:
        """The servers to try for one request, in round-robin order: the admitted ones
        (all of them when none is)."""
        start = next(self._next)
        ordered = self.servers[start:] + self.servers[:start]
        admitted = [server for server in ordered if server.admitted]
        return admitted or ordered

    async def broadcast(self, path: str, body: dict[str, Any]) -> list[RawResponse]:
        """POSTs the same body to every admitted engine server (runtime LoRA load and unload).

        An ejected server is left out: when it is admitted again, :attr:`readmitted` is set
        and the adapter service loads every adapter into it again.
        """
        answers = []
        admitted = [server.url for server in self.servers if server.admitted]
        if not admitted:
            raise EngineUnavailable("no engine server is admitted (every one failed its "
                                    "health check); GET /ready lists them")
        for url in admitted:
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
        for server in self._rotation():
            url = server.url + path
            try:
                try:
                    response = await self._http.post(url, json=body, headers=headers)
                except aiohttp.ServerDisconnectedError:
                    # A pooled keep-alive connection the server had just closed: no answer
                    # was started, so the request goes once more on a fresh connection.
                    response = await self._http.post(url, json=body, headers=headers)
            except aiohttp.ClientConnectorError as exc:
                log.warning("engine at %s refused the connection: %r", url, exc)
                self._failed(server, "it refused the connection", at_once=True)
                last = exc
                continue
            except TimeoutError as exc:
                raise _timeout() from exc
            except aiohttp.ClientError as exc:
                self._failed(server, f"the connection failed: {exc!r}")
                raise EngineUnavailable(f"the engine connection failed: {exc!r}") from exc
            if response.status >= 500:
                self._failed(server, f"it answered {response.status} {self.eject_after} "
                                     "times in a row")
            else:
                server.failures = 0
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
