from __future__ import annotations

from gateway.errors import InvalidRequest
from gateway.structured.errors import (
    InvalidResponseFormat,
    InvalidRetryOverride,
    SchemaRejected,
    UnknownSchema,
)


def test_every_error_is_a_client_error_with_its_own_code() -> None:
    errors = [
        SchemaRejected("bad", param="response_format.json_schema.schema"),
        UnknownSchema("unknown", param="response_format.json_schema.name"),
        InvalidResponseFormat("bad type", param="response_format.type"),
        InvalidRetryOverride("too many", param="retry.max_attempts"),
    ]
    assert all(isinstance(e, InvalidRequest) and e.status_code == 400 for e in errors)
    assert [e.code for e in errors] == [
        "invalid_schema", "unknown_schema", "invalid_response_format", "invalid_retry",
    ]
    envelope = errors[0].envelope()["error"]
    assert envelope["param"] == "response_format.json_schema.schema"
    assert envelope["type"] == "invalid_request_error"
