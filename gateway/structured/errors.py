"""Exceptions raised by the structured-output building blocks.

Every one of them is a client error (HTTP 400): the request asked for
something the gateway refuses (a hostile or broken schema, an unknown schema
name, a malformed ``response_format`` or ``retry`` field). ``param`` names the
request field at fault, in OpenAI's dotted form
(``response_format.json_schema.schema``).
"""

from __future__ import annotations

from gateway.errors import InvalidRequest, SchemaRejected

__all__ = [
    "InvalidResponseFormat", "InvalidRetryOverride", "InvalidToolSpec", "SchemaRejected",
    "UnknownSchema",
]


class UnknownSchema(InvalidRequest):
    """A schema referenced by name that is not registered."""

    default_code = "unknown_schema"


class InvalidResponseFormat(InvalidRequest):
    """A ``response_format`` value that is not one the gateway understands."""

    default_code = "invalid_response_format"


class InvalidRetryOverride(InvalidRequest):
    """A per-request ``retry`` field that is malformed or above the ceiling."""

    default_code = "invalid_retry"


class InvalidToolSpec(InvalidRequest):
    """A ``tools``, ``tool_choice`` or ``parallel_tool_calls`` value the gateway refuses."""

    default_code = "invalid_tools"
