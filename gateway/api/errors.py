"""The one place where exceptions become HTTP answers in OpenAI's error envelope."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from gateway.auth import Principal
from gateway.errors import GatewayError, InvalidRequest, NotFound, PayloadTooLarge, http_status

log = logging.getLogger(__name__)

_STATUS_TYPES = {401: "authentication_error", 403: "permission_error", 404: "invalid_request_error"}


def envelope_response(error: GatewayError) -> JSONResponse:
    return JSONResponse(error.envelope(), status_code=http_status(error), headers=error.headers)


async def _gateway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    if http_status(exc) >= 500 or exc.public is not None:
        log.warning("%s %s failed: %s", request.method, request.url.path, exc.message)
    request_id = str(request.scope.get("state", {}).get("request_id", ""))
    body = exc.envelope_for(internals=sees_internals(request), request_id=request_id)
    return JSONResponse(body, status_code=http_status(exc), headers=exc.headers)


def sees_internals(request: Request) -> bool:
    """Whether the caller may read the gateway's internals in an error: an admin key, or
    anyone on a gateway without keys (it then listens on loopback only)."""
    if not request.app.state.auth.enabled:
        return True
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal is not None and principal.scope == "admin"



async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return envelope_response(_describe(exc.errors()))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error: GatewayError = NotFound(f"No route {request.method} {request.url.path}.")
        return envelope_response(error)
    if exc.status_code == 413:
        return envelope_response(PayloadTooLarge(str(exc.detail)))
    body = {"error": {"message": str(exc.detail), "param": None, "code": None,
                      "type": _STATUS_TYPES.get(exc.status_code, "invalid_request_error")}}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    # Sent from outside the request-id middleware: the id is added here.
    request_id = str(request.scope.get("state", {}).get("request_id", ""))
    body = {"error": {"message": "The gateway hit an internal error; it has been logged "
                                 f"with request id {request_id!r}.",
                      "type": "api_error", "param": None, "code": "internal_error"}}
    return JSONResponse(body, status_code=500, headers={"x-request-id": request_id})


def _describe(errors: Any) -> InvalidRequest:
    first = errors[0] if errors else {}
    location = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(location) or None
    if first.get("type") == "json_invalid":
        return InvalidRequest(
            "The request body is not valid JSON: "
            f"{first.get('ctx', {}).get('error', 'parse error')}. Send a JSON object.",
            code="invalid_json",
        )
    message = first.get("msg", "invalid request")
    where = f" at '{param}'" if param else ""
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return InvalidRequest(f"Invalid request{where}: {message}{more}.", param=param,
                          code="invalid_value")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
