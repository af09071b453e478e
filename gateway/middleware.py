"""Pure ASGI middleware: request ids, body size limit, request metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.errors import envelope_response
from gateway.errors import PayloadTooLarge
from gateway.metrics import Recorder
from gateway.observation import attach

log = logging.getLogger(__name__)
# One line per request; silence with logging.getLogger("gateway.access").setLevel(WARNING).
access_log = logging.getLogger("gateway.access")

REQUEST_ID_HEADER = "x-request-id"
# Requests refused before a route runs (malformed bodies) are still counted by endpoint.
ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/completions": "completions",
             "/v1/responses": "responses"}
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _VALID_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Gives each request an id, returns it, and records its metrics once it ends."""

    def __init__(self, app: ASGIApp, recorder: Recorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        observation = attach(scope)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            status = observation.failed_status or status
            access_log.info("%s %s %d %.1f ms adapter=%s", scope["method"], scope["path"],
                            status, elapsed * 1000, observation.adapter)
            request_id_var.reset(token)
            endpoint = observation.endpoint or ENDPOINTS.get(scope["path"])
            if endpoint is not None:
                self.recorder.request_finished(endpoint, observation.adapter, status, elapsed,
                                               observation.upstream_seconds)


class BodyLimitMiddleware:
    """Refuses request bodies above ``max_bytes`` with 413, before they are parsed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _send_too_large(send, self.max_bytes, scope)
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException passes FastAPI's body reading unchanged (anything else
                    # becomes a 400); the error handlers turn it into the 413 envelope.
                    raise HTTPException(413, _too_large(self.max_bytes).message)
            return message

        await self.app(scope, counted, send)


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than this gateway's limit of {max_bytes} bytes; "
        "send a smaller request or raise server.max_body_bytes."
    )


async def _send_too_large(send: Send, max_bytes: int, scope: Scope) -> None:
    response = envelope_response(_too_large(max_bytes))
    await response(scope, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}
