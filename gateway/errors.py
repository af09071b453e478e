"""Domain exceptions and their one mapping to OpenAI's error envelope."""

from __future__ import annotations

from typing import Any, ClassVar


class GatewayError(Exception):
    """Base of every error the gateway turns into an HTTP answer."""

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = None
    # What a caller without the admin scope reads instead of ``message`` when the message
    # holds the gateway's internals (engine addresses, store paths); None: it holds none.
    default_public: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        public: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.extra = extra or {}
        self.headers = headers or {}
        self.public = public or self.default_public

    def envelope(self, *, internals: bool = True) -> dict[str, Any]:
        """The OpenAI error body; without ``internals``, the public message."""
        message = self.message if internals or self.public is None else self.public
        error: dict[str, Any] = {
            "message": message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
        }
        error.update(self.extra)
        return {"error": error}

    def envelope_for(self, *, internals: bool, request_id: str) -> dict[str, Any]:
        """The body a caller gets: everything for one who may read the gateway's internals
        (an admin key, or a gateway without keys), else the public message and where the
        details are."""
        if internals or self.public is None:
            return self.envelope()
        body = self.envelope(internals=False)
        body["error"]["message"] += (" The details are in the gateway's log (request id "
                                     f"{request_id!r}).")
        return body


class InvalidRequest(GatewayError):
    status_code = 400
    error_type = "invalid_request_error"


class SchemaRejected(InvalidRequest):
    default_code = "invalid_schema"


class Unauthenticated(GatewayError):
    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status_code = 403
    error_type = "permission_error"
    default_code = "insufficient_scope"


class NotFound(GatewayError):
    status_code = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFound(NotFound):
    default_code = "model_not_found"


class AdapterNotFound(NotFound):
    default_code = "adapter_not_found"


class Conflict(GatewayError):
    status_code = 409
    error_type = "invalid_request_error"
    default_code = "conflict"


class PayloadTooLarge(GatewayError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class UnprocessableAnswer(GatewayError):
    """Every attempt at a structured answer deviated from its schema."""

    status_code = 422
    error_type = "invalid_response_error"
    default_code = "structured_output_exhausted"


class RateLimited(GatewayError):
    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limited"


class ClientClosedRequest(GatewayError):
    """The client went away before its answer was ready; its engine work was cancelled."""

    status_code = 499
    error_type = "invalid_request_error"
    default_code = "client_closed_request"


class UpstreamError(GatewayError):
    """The engine answered with a server error."""

    status_code = 502
    error_type = "api_error"
    default_code = "engine_error"
    default_public = "The engine failed to answer this request; retry it."


class EngineUnavailable(GatewayError):
    status_code = 503
    error_type = "api_error"
    default_code = "engine_unavailable"
    default_public = "The engine is not available right now; retry later."


class EngineTimeout(GatewayError):
    status_code = 504
    error_type = "api_error"
    default_code = "engine_timeout"
    default_public = "The engine did not answer in time; retry later."


class UpstreamClientError(GatewayError):
    """A 4xx from the engine, passed on with the engine's status and message."""

    error_type = "invalid_request_error"

    def __init__(self, status_code: int, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status = status_code

    @property
    def http_status(self) -> int:
        return self.status


def http_status(error: GatewayError) -> int:
    return error.http_status if isinstance(error, UpstreamClientError) else error.status_code
