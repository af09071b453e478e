"""The grammars an engine request makes vLLM compile, and the verdicts on them.

vLLM compiles a grammar (with xgrammar) for every request that asks for a format: a
``response_format`` (``json_schema``, ``json_object``, ``structural_tag``), the side-door
``structured_outputs`` and ``guided_*`` fields, and ``tool_choice`` ``required`` or a named
function, for which it builds a JSON schema from the tools. Compiling is the one step whose
cost a schema decides and nothing bounds: some real schemas take the engine's API process
past 11 GB or over a minute. :func:`grammar_specs` lists those grammars for a request body,
as the engine would hand them to its compiler; the compile check (``gateway.grammar``)
compiles each once, in a worker process under a time and memory limit, and this library
only reads its :class:`GrammarVerdict`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The kinds of grammar, named after vLLM's StructuredOutputOptions.
JSON = "json"
JSON_OBJECT = "json_object"
STRUCTURAL_TAG = "structural_tag"
REGEX = "regex"
CHOICE = "choice"
KINDS = (JSON, JSON_OBJECT, STRUCTURAL_TAG, REGEX, CHOICE)
OBJECT_SCHEMA = '{"type": "object"}'


@dataclass(frozen=True, slots=True)
class GrammarSpec:
    """One grammar as the engine's compiler gets it: its kind and its text."""

    kind: str
    text: str
    param: str  # the request field it comes from, for errors

    @property
    def key(self) -> str:
        """The verdict cache key: sha256 of the kind and the text."""
        return hashlib.sha256(f"{self.kind}\0{self.text}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class GrammarVerdict:
    """Whether the engine's compiler takes a grammar within the limits, and how fast."""

    compilable: bool
    ms: float
    reason: str | None = None  # why not, when not
    # The check could not be made (no worker, no room in its queue): not the grammar's
    # fault, never cached.
    transient: bool = False

    def describe(self) -> str:
        if self.compilable:
            return f"compilable in {self.ms:.0f} ms"
        return f"unavailable: {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        return {"compilable": self.compilable, "ms": round(self.ms, 1), "reason": self.reason}


def grammar_specs(body: Mapping[str, Any], chat: bool) -> list[GrammarSpec]:
    """Every grammar the engine would compile for ``body``, in a fixed order."""
    specs = _response_format(body.get("response_format"))
    specs += _structured_outputs(body)
    if chat:
        specs += _tool_choice(body)
    return specs


def _response_format(value: object) -> list[GrammarSpec]:
    if not isinstance(value, Mapping):
        return []
    kind = value.get("type")
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        return [GrammarSpec(JSON, _text(schema if schema is not None else {}),
                            "response_format.json_schema.schema")]
    if kind == "json_object":
        return [GrammarSpec(JSON_OBJECT, OBJECT_SCHEMA, "response_format")]
    if kind == "structural_tag":
        # vLLM compiles the whole response_format object, serialized (by_alias).
        return [GrammarSpec(STRUCTURAL_TAG, json.dumps(dict(value)), "response_format")]
    return []


# The side door, each key with the kind of grammar it asks for. (vLLM 0.32 ignores the older
# guided_* fields, with a warning in its log: they make it compile nothing.)
_OPTIONS = {"json": JSON, "regex": REGEX, "choice": CHOICE, "structural_tag": STRUCTURAL_TAG}


def _structured_outputs(body: Mapping[str, Any]) -> list[GrammarSpec]:
    found: list[tuple[str, str, Any]] = []
    options = body.get("structured_outputs")
    if isinstance(options, Mapping):
        found += [(f"structured_outputs.{key}", kind, options.get(key))
                  for key, kind in _OPTIONS.items()]
        if options.get("json_object") is True:
            found.append(("structured_outputs.json_object", JSON_OBJECT, OBJECT_SCHEMA))
    return [GrammarSpec(kind, _spec_text(kind, value), field)
            for field, kind, value in found if value is not None]


def _spec_text(kind: str, value: object) -> str:
    if kind == CHOICE and isinstance(value, Sequence) and not isinstance(value, str):
        return choice_grammar([str(v) for v in value])
    return value if isinstance(value, str) else _text(value)


def choice_grammar(choices: Sequence[str]) -> str:
    """The EBNF grammar vLLM compiles for a list of choices (``choice_as_grammar``)."""
    escapes = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}

    def escape(text: str) -> str:
        return "".join(escapes.get(ch) or (f"\\u{ord(ch):04x}" if ord(ch) < 0x20
                                           or ord(ch) == 0x7F else ch) for ch in text)

    return "root ::= " + " | ".join(f'"{escape(c)}"' for c in choices)


def _tool_choice(body: Mapping[str, Any]) -> list[GrammarSpec]:
    """The schema vLLM builds for ``tool_choice`` ``required`` or a named function."""
    choice, tools = body.get("tool_choice"), body.get("tools")
    if not isinstance(tools, list) or not tools:
        return []
    functions: list[Mapping[str, Any]] = [
        t["function"] for t in tools
        if isinstance(t, Mapping) and isinstance(t.get("function"), Mapping)]
    if choice == "required":
        return [GrammarSpec(JSON, _text(_required_schema(functions, body)), "tool_choice")]
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        name = choice["function"].get("name")
        for function in functions:
            if function.get("name") == name:
                return [GrammarSpec(JSON, _text(_parameters(function)), "tool_choice")]
    return []


def _parameters(function: Mapping[str, Any]) -> Any:
    params = function.get("parameters")
    return params if params else {"type": "object", "properties": {}}


def _required_schema(functions: list[Mapping[str, Any]], body: Mapping[str, Any]) -> Any:
    """vLLM 0.32's ``_get_json_schema_from_tools``: an array of {name, parameters}."""
    defs: dict[str, Any] = {}
    variants = []
    for function in functions:
        params = _parameters(function)
        params = dict(params) if isinstance(params, Mapping) else params
        if isinstance(params, dict) and isinstance(params.get("$defs"), Mapping):
            defs.update(params.pop("$defs"))
        variants.append({"properties": {"name": {"type": "string",
                                                 "enum": [function.get("name")]},
                                        "parameters": params},
                         "required": ["name", "parameters"]})
    schema: dict[str, Any] = {"type": "array", "minItems": 1,
                              "items": {"type": "object", "anyOf": variants}}
    if body.get("parallel_tool_calls") is False:
        schema["maxItems"] = 1
    if defs:
        schema["$defs"] = defs
    return schema


def _text(value: object) -> str:
    return json.dumps(value)
