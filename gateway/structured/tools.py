"""The functions a chat request offers and the calls it allows (``tools``, ``tool_choice``).

OpenAI's forms, as the ``openai`` SDK, Instructor, pydantic-ai and LangChain send them::

    "tools": [{"type": "function",
               "function": {"name": "route_ticket", "description": "...",
                            "parameters": {...JSON Schema...}, "strict": true}}]
    "tool_choice": "none" | "auto" | "required"
                   | {"type": "function", "function": {"name": "route_ticket"}}
    "parallel_tool_calls": true | false

Every ``parameters`` schema passes the same bounds as a ``response_format`` schema and is
refused with a 400 whose ``param`` names it (``tools[2].function.parameters``). A function
without ``parameters`` takes an empty object, as OpenAI's do. ``tool_choice`` defaults to
``auto``; ``parallel_tool_calls`` to true.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gateway.structured.errors import InvalidToolSpec, SchemaRejected
from gateway.structured.schemas import NAME_PATTERN, SchemaRegistry
from gateway.structured.validation import CompiledSchema, ValidatorCache

# OpenAI's own limit on the functions one request may offer.
MAX_TOOLS = 128
INLINE = "inline"
EMPTY_PARAMETERS: Mapping[str, Any] = {"type": "object", "properties": {}}

Mode = Literal["none", "auto", "required", "named"]


@dataclass(frozen=True, slots=True)
class Tool:
    """One offered function: its name and its compiled ``parameters`` schema."""

    name: str
    parameters: CompiledSchema
    # A bounded metric label: the name when it is a registered schema with the same
    # content, else ``inline``.
    label: str


@dataclass(frozen=True, slots=True)
class ToolSet:
    """What a request offers and what it allows."""

    tools: Mapping[str, Tool]
    mode: Mode
    named: str | None = None
    parallel: bool = True

    @property
    def requires_call(self) -> bool:
        return self.mode in ("required", "named")

    @property
    def allowed(self) -> tuple[Tool, ...]:
        """The functions a call may name: the named one, or every offered one."""
        if self.named is not None:
            return (self.tools[self.named],)
        return tuple(self.tools.values())

    @property
    def label(self) -> str:
        """The metric label: the one function allowed, when it is registered; else inline."""
        allowed = self.allowed
        return allowed[0].label if len(allowed) == 1 else INLINE

    @property
    def name(self) -> str:
        """How the verdict names what was checked: the function, or the choice."""
        allowed = self.allowed
        return allowed[0].name if len(allowed) == 1 else f"tools ({self.mode})"


def has_tools(body: Mapping[str, Any]) -> bool:
    """Whether ``body`` offers functions (an empty list offers none)."""
    return bool(body.get("tools"))


def parse_tools(
    body: Mapping[str, Any], registry: SchemaRegistry, cache: ValidatorCache
) -> ToolSet | None:
    """The tools ``body`` offers, checked and compiled; None when it offers none."""
    tools = body.get("tools")
    if tools is None or tools == []:
        if body.get("tool_choice") not in (None, "none", "auto"):
            raise InvalidToolSpec("tool_choice asks for a call but the request offers no "
                                  "tools; add them to 'tools'", param="tool_choice")
        return None
    if not isinstance(tools, Sequence) or isinstance(tools, str | bytes):
        raise InvalidToolSpec("tools must be a list of function tools", param="tools")
    if len(tools) > MAX_TOOLS:
        raise InvalidToolSpec(f"{len(tools)} tools are offered; at most {MAX_TOOLS} are allowed",
                              param="tools")
    offered: dict[str, Tool] = {}
    for index, spec in enumerate(tools):
        tool = _tool(spec, index, registry, cache)
        if tool.name in offered:
            raise InvalidToolSpec(f"tools[{index}]: the function name {tool.name!r} is offered "
                                  "twice; function names must be unique",
                                  param=f"tools[{index}].function.name")
        offered[tool.name] = tool
    mode, named = _choice(body.get("tool_choice"), offered)
    parallel = body.get("parallel_tool_calls", True)
    if not isinstance(parallel, bool):
        raise InvalidToolSpec("parallel_tool_calls must be true or false",
                              param="parallel_tool_calls")
    return ToolSet(offered, mode, named, parallel)


def _tool(spec: object, index: int, registry: SchemaRegistry, cache: ValidatorCache) -> Tool:
    where = f"tools[{index}]"
    if not isinstance(spec, Mapping) or spec.get("type", "function") != "function":
        raise InvalidToolSpec(f"{where} must be a function tool: "
                              '{"type": "function", "function": {"name": ..., "parameters": ...}}',
                              param=f"{where}.type")
    function = spec.get("function")
    if not isinstance(function, Mapping):
        raise InvalidToolSpec(f"{where}.function must be an object with a 'name'",
                              param=f"{where}.function")
    name = function.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidToolSpec(f"{where}.function.name must be 1 to 64 letters, digits, '_' "
                              "or '-'", param=f"{where}.function.name")
    parameters = function.get("parameters")
    if parameters is None:
        parameters = EMPTY_PARAMETERS
    param = f"{where}.function.parameters"
    if not isinstance(parameters, Mapping):
        raise InvalidToolSpec(f"{param} must be a JSON Schema object", param=param)
    try:
        compiled = cache.compile(parameters)
    except SchemaRejected as exc:
        raise SchemaRejected(f"tool {name!r}: {exc.message}", param=param) from exc
    registered = registry.get(name)
    label = name if registered is not None and registered.digest == compiled.digest else INLINE
    return Tool(name, compiled, label)


def _choice(value: object, offered: Mapping[str, Tool]) -> tuple[Mode, str | None]:
    if value is None or value == "auto":
        return "auto", None
    if value == "none":
        return "none", None
    if value == "required":
        return "required", None
    function = value.get("function") if isinstance(value, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str):
        raise InvalidToolSpec('tool_choice must be "none", "auto", "required" or '
                              '{"type": "function", "function": {"name": ...}}',
                              param="tool_choice")
    if name not in offered:
        raise InvalidToolSpec(f"tool_choice names the function {name[:64]!r}, which is not "
                              f"among the tools offered ({', '.join(list(offered)[:10])})",
                              param="tool_choice.function.name")
    return "named", name
