"""Turns an OpenAI ``response_format`` into the schema to validate against.

Accepted forms:

``{"type": "text"}`` or absent
    no structured output: ``None``.
``{"type": "json_object"}``
    any JSON object (schema ``{"type": "object"}``), named ``json_object``.
``{"type": "json_schema", "json_schema": {"name": "ticket", "schema": {...}, "strict": true}}``
    the inline schema, checked against the bounds. When the name and the
    schema both match a registered schema, it counts as that registered one.
``{"type": "json_schema", "json_schema": {"name": "ticket"}}``
    no ``schema``: the schema registered as ``ticket``.

``strict`` is accepted and not needed: the gateway validates every answer.
Every error is an :class:`InvalidResponseFormat`, :class:`SchemaRejected` or
:class:`UnknownSchema` whose ``param`` names the field at fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gateway.structured.errors import InvalidResponseFormat, SchemaRejected
from gateway.structured.schemas import NAME_PATTERN, SchemaRegistry
from gateway.structured.validation import CompiledSchema, ValidatorCache

JSON_OBJECT = "json_object"
JSON_OBJECT_SCHEMA: Mapping[str, Any] = {"type": "object"}

Source = Literal["registered", "inline", "json_object"]


@dataclass(frozen=True, slots=True)
class RequestedSchema:
    """The schema a request asked for."""

    name: str
    schema: CompiledSchema
    source: Source
    strict: bool | None = None

    @property
    def label(self) -> str:
        """A bounded metric label: the registered name, ``inline`` or ``json_object``."""
        return self.name if self.source == "registered" else self.source


def resolve_response_format(
    value: object, registry: SchemaRegistry, cache: ValidatorCache
) -> RequestedSchema | None:
    """The schema ``value`` asks for, or ``None`` for plain text."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidResponseFormat("response_format must be an object", param="response_format")
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == JSON_OBJECT:
        return RequestedSchema(JSON_OBJECT, cache.compile(JSON_OBJECT_SCHEMA), "json_object")
    if kind == "json_schema":
        return _json_schema(value.get("json_schema"), registry, cache)
    raise InvalidResponseFormat(
        f"response_format.type {str(kind)[:40]!r} is not supported; "
        "use 'text', 'json_object' or 'json_schema'",
        param="response_format.type",
    )


def _json_schema(spec: object, registry: SchemaRegistry, cache: ValidatorCache) -> RequestedSchema:
    param = "response_format.json_schema"
    if not isinstance(spec, Mapping):
        raise InvalidResponseFormat(
            "response_format.json_schema must be an object with a 'name' and a 'schema'",
            param=param,
        )
    name = spec.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidResponseFormat(
            "response_format.json_schema.name must be 1 to 64 letters, digits, '_' or '-'",
            param=f"{param}.name",
        )
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise InvalidResponseFormat(
            "response_format.json_schema.strict must be true or false", param=f"{param}.strict"
        )
    if spec.get("schema") is None:
        return RequestedSchema(name, registry.require(name, f"{param}.name"), "registered", strict)
    try:
        compiled = cache.compile(spec["schema"])
    except SchemaRejected as exc:
        raise SchemaRejected(exc.message, param=f"{param}.schema") from exc
    registered = registry.get(name)
    source: Source = (
        "registered" if registered is not None and registered.digest == compiled.digest
        else "inline"
    )
    return RequestedSchema(name, compiled, source, strict)
