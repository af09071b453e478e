"""Fail fast against generated schemas: no answer the final validator accepts is ever
stopped, whatever the draft and the keywords (tuples, dependentSchemas, if/then/else,
unevaluatedProperties, combinators, patterns).

hypothesis-jsonschema generates documents for drafts 4 to 7 only, so documents are
generated from the schema's own names and values and from random JSON, and only those
jsonschema-rs accepts are kept: each valid one must be read to its end without a stop.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.structured.deviations import classify
from gateway.structured.early import PrefixCheck
from gateway.structured.validation import CompiledSchema, ValidatorCache

NAMES = ["a", "b", "c", "kind", "pair"]
DRAFTS = [None, "https://json-schema.org/draft/2020-12/schema",
          "https://json-schema.org/draft/2019-09/schema",
          "http://json-schema.org/draft-07/schema#", "http://json-schema.org/draft-04/schema#"]
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5),
                     st.sampled_from([0.5, 1.0, -2.0]), st.sampled_from(["x", "y", "xy", ""]))
_types = st.sampled_from(["object", "array", "string", "integer", "number", "boolean", "null"])


def _schemas(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A few keywords at a time (a schema with all of them would hide each one)."""
    keywords = _keywords(children)
    # Keywords that change each other's meaning, drawn together more often than chance.
    pairs = [("prefixItems", "items"), ("items", "additionalItems"),
             ("properties", "unevaluatedProperties"), ("dependentSchemas", "properties"),
             ("if", "then", "else"), ("properties", "additionalProperties", "allOf")]
    chosen = st.one_of(
        st.lists(st.sampled_from(sorted(keywords)), min_size=1, max_size=4, unique=True),
        st.tuples(st.sampled_from(pairs), st.lists(st.sampled_from(["type", "required"]),
                                                   max_size=1))
        .map(lambda picked: [*picked[0], *picked[1]]))
    # Most schemas say a type: the prefix check reads types first.
    typed = st.tuples(chosen, st.booleans()).map(
        lambda c: [*c[0], "type"] if c[1] and "type" not in c[0] else c[0])
    return typed.flatmap(lambda keys: st.fixed_dictionaries({k: keywords[k] for k in keys}))


def _keywords(children: st.SearchStrategy[Any]) -> dict[str, st.SearchStrategy[Any]]:
    return {
        "type": st.one_of(_types, _types, st.lists(_types, min_size=1, max_size=3, unique=True)),
        "enum": st.lists(_scalars, min_size=1, max_size=4),
        "const": _scalars,
        "properties": st.dictionaries(st.sampled_from(NAMES), children, max_size=3),
        "patternProperties": st.dictionaries(st.sampled_from(["^k", "a$"]), children,
                                             max_size=1),
        "additionalProperties": st.one_of(st.booleans(), children),
        "unevaluatedProperties": st.booleans(),
        "required": st.lists(st.sampled_from(NAMES), max_size=2, unique=True),
        "dependentSchemas": st.dictionaries(st.sampled_from(NAMES), children, max_size=1),
        "dependentRequired": st.dictionaries(st.sampled_from(NAMES),
                                             st.lists(st.sampled_from(NAMES), max_size=1),
                                             max_size=1),
        "items": st.one_of(children, st.lists(children, max_size=2)),
        "prefixItems": st.lists(children, min_size=1, max_size=2),
        "additionalItems": st.one_of(st.booleans(), children),
        "unevaluatedItems": st.booleans(),
        "contains": children,
        "if": children, "then": children, "else": children,
        "allOf": st.lists(children, min_size=1, max_size=2),
        "anyOf": st.lists(children, min_size=1, max_size=2),
        "oneOf": st.lists(children, min_size=1, max_size=2),
        "not": children,
        "pattern": st.sampled_from(["^x", "y$", "^[a-z]*$"]),
        "minLength": st.integers(0, 2), "maxLength": st.integers(0, 3),
        "minimum": st.integers(-2, 2), "maxItems": st.integers(0, 3),
    }


_typed = st.builds(lambda kind: {"type": kind}, _types)
# Tuples in both drafts' forms, at the top and inside an object: the forms whose meaning
# depends on the draft, with typed positions so that a wrong reading shows.
_tuple = st.one_of(
    st.fixed_dictionaries({"type": st.just("array"),
                           "prefixItems": st.lists(_typed, min_size=1, max_size=2),
                           "items": _typed}),
    st.fixed_dictionaries({"type": st.just("array"),
                           "items": st.lists(_typed, min_size=1, max_size=2),
                           "additionalItems": _typed}))
_schema = st.one_of(
    st.recursive(st.one_of(st.booleans(), _schemas(st.just({}))), _schemas, max_leaves=8),
    _tuple,
    _tuple.map(lambda t: {"type": "object", "properties": {"pair": t}}))
_json = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from([*NAMES, "kx", "ka", "z"]), inner, max_size=4)),
    max_leaves=10)


_BY_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "string": st.sampled_from(["x", "y", "xy", ""]), "integer": st.integers(-3, 3),
    "number": st.sampled_from([0.5, 1.0, 2]), "boolean": st.booleans(), "null": st.none()}


def _guided(schema: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Documents shaped by ``schema`` (its names, values, tuples, branches), and random
    JSON beside them: most valid answers to a generated schema come from the first."""
    if not isinstance(schema, dict) or depth > 3:
        return _json
    options: list[st.SearchStrategy[Any]] = [_json]
    if "const" in schema:
        options.append(st.just(schema["const"]))
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        options.append(st.sampled_from(schema["enum"]))
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds if isinstance(kinds, list) else []
    options += [_BY_TYPE[k] for k in kinds if k in _BY_TYPE]
    properties = schema.get("properties")
    if "object" in kinds or isinstance(properties, dict):
        named = {k: _guided(v, depth + 1) for k, v in (properties or {}).items()}
        options.append(st.fixed_dictionaries({}, optional=named))
    items = schema.get("items")
    prefix = schema.get("prefixItems") or (items if isinstance(items, list) else [])
    rest = items if not isinstance(items, list) else schema.get("additionalItems", {})
    if "array" in kinds or prefix or "items" in schema:
        head = st.tuples(*(_guided(p, depth + 1) for p in prefix)).map(list)
        tail = st.lists(_guided(rest, depth + 1), max_size=2)
        options.append(st.tuples(head, tail).map(lambda parts: parts[0] + parts[1]))
    for key in ("allOf", "anyOf", "oneOf"):
        options += [_guided(sub, depth + 1) for sub in schema.get(key) or ()
                    if isinstance(schema.get(key), list)]
    options += [_guided(schema[key], depth + 1) for key in ("if", "then", "else")
                if key in schema]
    return st.one_of(options)


def _compiled(schema: Any, draft: str | None) -> CompiledSchema | None:
    if draft is not None and isinstance(schema, dict):
        schema = {"$schema": draft, **schema}
    try:
        return ValidatorCache().compile(schema)
    except Exception:  # a generated schema the validator refuses: nothing to check
        return None


def _feed(check: PrefixCheck, text: str, size: int) -> bool:
    """Whether the check stopped ``text`` before its end."""
    return any(check.feed(text[i:i + size]) is not None for i in range(0, len(text), size))


@settings(max_examples=1500, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(schema=_schema, draft=st.sampled_from(DRAFTS), data=st.data(),
       size=st.integers(1, 5), indent=st.sampled_from([None, 2]),
       read_prose=st.booleans())
def test_no_valid_answer_is_ever_stopped(schema: Any, draft: str | None,
                                         data: st.DataObject, size: int,
                                         indent: int | None, read_prose: bool) -> None:
    compiled = _compiled(schema, draft)
    if compiled is None:
        return
    for document in data.draw(st.lists(_guided(schema), min_size=1, max_size=6)):
        text = json.dumps(document, indent=indent)
        if not classify(text, "stop", compiled).valid:
            continue
        stopped = _feed(PrefixCheck(compiled, read_prose=read_prose), text, size)
        assert not stopped, (schema, draft, text)
