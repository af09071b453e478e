from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from gateway.structured.errors import SchemaRejected
from gateway.structured.validation import MAX_MESSAGE_CHARS, Problem, ValidatorCache

TICKET: dict[str, Any] = {
    "type": "object",
    "properties": {"category": {"enum": ["billing", "technical"]}, "escalate": {"type": "boolean"}},
    "required": ["category", "escalate"],
    "additionalProperties": False,
}


def test_compile_once_per_digest(cache: ValidatorCache) -> None:
    first = cache.compile(TICKET)
    reordered = dict(reversed(list(TICKET.items())))
    assert cache.compile(reordered) is first
    assert len(cache) == 1 and first.digest in cache


def test_the_cache_is_a_bounded_lru() -> None:
    cache = ValidatorCache(max_entries=2)
    a = cache.compile({"type": "string"})
    cache.compile({"type": "integer"})
    assert cache.compile({"type": "string"}) is a  # refreshes a
    cache.compile({"type": "boolean"})  # evicts integer, the least recently used
    assert len(cache) == 2
    assert a.digest in cache
    assert cache.compile({"type": "integer"}) is not None
    assert a.digest not in cache


def test_rejected_schemas_are_not_cached(cache: ValidatorCache) -> None:
    with pytest.raises(SchemaRejected):
        cache.compile({"type": "stsring"})
    assert len(cache) == 0


def test_the_compiled_schema_is_a_private_copy(cache: ValidatorCache) -> None:
    schema: dict[str, Any] = {"type": "object", "required": ["a"]}
    compiled = cache.compile(schema)
    schema["required"].append("b")
    assert compiled.problems({"a": 1}) == []


def test_problems_are_located_and_most_relevant_first(cache: ValidatorCache) -> None:
    problems = cache.compile(TICKET).problems({"category": "refund", "escalate": "no"})
    assert {str(p) for p in problems} == {
        '$.category: "refund" is not one of "billing" or "technical"',
        '$.escalate: "no" is not of type "boolean"',
    }
    assert all(isinstance(p, Problem) for p in problems)


def test_problems_are_capped_in_number_and_length(cache: ValidatorCache) -> None:
    schema = {"type": "array", "items": {"type": "integer"}}
    problems = cache.compile(schema).problems(["x" * 1000] * 50)
    assert len(problems) == 10
    assert all(len(p.message) <= MAX_MESSAGE_CHARS for p in problems)


def test_nested_paths(cache: ValidatorCache) -> None:
    schema = {"properties": {"items": {"type": "array", "items": {"required": ["sku"]}}}}
    (problem,) = cache.compile(schema).problems({"items": [{"sku": 1}, {}]})
    assert problem.path == "$.items[1]" and problem.keyword == "required"


def test_format_is_checked(cache: ValidatorCache) -> None:
    schema = {"type": "string", "format": "email"}
    assert cache.compile(schema).problems("someone@example.com") == []
    (problem,) = cache.compile(schema).problems("not an email")
    assert problem.keyword == "format"
    assert cache.compile({"format": "date"}).problems("2026-13-45")[0].keyword == "format"


def test_schema_keyword_draft_is_honoured(cache: ValidatorCache) -> None:
    # Draft 4 reads exclusiveMaximum as a boolean modifier of maximum.
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "maximum": 5,
              "exclusiveMaximum": True}
    assert cache.compile(draft4).problems(4) == []
    assert cache.compile(draft4).problems(5)[0].keyword in {"maximum", "exclusiveMaximum"}
    assert cache.compile({"maximum": 5, "exclusiveMaximum": 5}).problems(5) != []


@pytest.mark.timeout(30)  # a hang guard: backtracking on these subjects would take years
@pytest.mark.parametrize("pattern", ["^((a+){1})+$", "^(a+)+$", "^(a|aa)+$"])
def test_catastrophic_patterns_are_admitted_and_matched_in_linear_time(
    cache: ValidatorCache, pattern: str
) -> None:
    # Python's re needs seconds for 28 characters of these.
    compiled = cache.compile({"type": "string", "pattern": pattern})
    (problem,) = compiled.problems("a" * 50_000 + "!")
    assert problem.keyword == "pattern"
    assert compiled.problems("a" * 50_000) == []


def test_look_arounds_cannot_run_in_linear_time_and_are_refused(cache: ValidatorCache) -> None:
    with pytest.raises(SchemaRejected, match="look-arounds"):
        cache.compile({"type": "string", "pattern": "(?<=a)b"})


@pytest.mark.timeout(30)  # a hang guard: a backtracking pattern would not finish
@pytest.mark.parametrize("pattern", ["\\d+x", ".*a", "^[a-z][a-z0-9]*$", "(\\d+-)+x"])
def test_allowed_patterns_finish_on_hostile_strings(cache: ValidatorCache, pattern: str) -> None:
    compiled = cache.compile({"type": "string", "pattern": pattern})
    longest = 50_000
    for subject in ("1" * longest, "a" * longest + "!", "1-" * (longest // 2)):
        compiled.problems(subject)


def test_cached_validator_agrees_with_jsonschema(cache: ValidatorCache) -> None:
    compiled = cache.compile(TICKET)
    documents: list[Any] = [{"category": "billing", "escalate": True}, {"category": "x"}, [], None]
    for document in documents:
        expected = jsonschema.Draft202012Validator(TICKET).is_valid(document)
        assert (compiled.problems(document) == []) is expected


def test_max_entries_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        ValidatorCache(max_entries=0)


@pytest.mark.parametrize(
    "ref",
    [
        "https://example.com/schemas/address.json",
        "http://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
        "address.json",
        "urn:uuid:0a4e2b6e-8c1f-4c1e-9b7e-4a3f2f6f1d2c",
        "#/$defs/missing",
    ],
)
def test_references_outside_the_schema_are_refused(cache: ValidatorCache, ref: str) -> None:
    with pytest.raises(SchemaRejected) as info:
        cache.compile({"properties": {"a": {"$ref": ref}}})
    assert "references must point inside the schema" in info.value.message


def test_a_recursive_tree_is_admitted_and_validated(cache: ValidatorCache) -> None:
    tree = {
        "$defs": {"node": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
        }}},
        "$ref": "#/$defs/node",
    }
    compiled = cache.compile(tree)
    leaf = {"name": "leaf"}
    assert compiled.problems({"name": "root", "children": [{"name": "a", "children": [leaf]}]}) \
        == []
    [problem] = compiled.problems({"name": "root", "children": [{"children": []}]})
    assert problem.keyword == "required" and problem.path == "$.children[0]"


def test_embedded_resources_resolve_inside_the_schema(cache: ValidatorCache) -> None:
    schema = {"properties": {"a": {"$ref": "https://example.com/item"}},
              "$defs": {"item": {"$id": "https://example.com/item", "type": "integer"}}}
    compiled = cache.compile(schema)
    assert compiled.problems({"a": 1}) == []
    assert [p.keyword for p in compiled.problems({"a": "x"})] == ["type"]


@pytest.mark.parametrize("pattern", ["^(https?)://[^\\s/$.?#].[^\\s]*$",
                                     "^(\\d+\\.\\d+\\.\\d+.*)$"])
def test_url_and_version_patterns_are_admitted_and_checked(cache: ValidatorCache,
                                                           pattern: str) -> None:
    compiled = cache.compile({"type": "string", "pattern": pattern})
    assert [p.keyword for p in compiled.problems("not it " * 10_000)] == ["pattern"]
