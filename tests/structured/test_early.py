"""PrefixCheck: when a streaming answer can no longer be valid."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.structured.deviations import DeviationKind, classify
from gateway.structured.early import PrefixCheck
from gateway.structured.schemas import SchemaRegistry
from gateway.structured.validation import CompiledSchema, ValidatorCache
from tests.structured.conftest import SCHEMAS_DIR

TICKET = '{"category": "billing", "priority": "high", "escalate": false}'


def _feed(check: PrefixCheck, text: str, size: int = 3) -> tuple[int, Any]:
    """Feeds ``text`` in pieces; where it stopped (characters read) and the verdict."""
    for start in range(0, len(text), size):
        verdict = check.feed(text[start:start + size])
        if verdict is not None:
            return len(check.text), verdict
    return len(text), None


@pytest.mark.parametrize(("text", "read", "kind", "keyword"), [
    ("Here is the JSON: " + TICKET, 3, "not_json", None),
    ("I'm sorry, I can't help with that. Anything else?", 36, "refusal", None),
    ("```json\n" + TICKET + "\n```\nThis routes the ticket to billing.", 75, "extra_text",
     None),
    ('```json\n{"category": billing}\n```', 24, "invalid_json", None),
    ("```\nbilling\n```", 6, "not_json", None),
    ('{"category": "payments", "priority": "high"}', 15, "schema_violation", "enum"),
    ('{"category": "billing", "urgency": "high"}', 39, "schema_violation",
     "additionalProperties"),
    ('{"category": "billing", "escalate": "yes"}', 39, "schema_violation", "type"),
    ('{"category": "billing", "priority": high}', 39, "invalid_json", None),
    (TICKET + " Thanks!", 66, "extra_text", None),
    ("[" + TICKET + "]", 3, "schema_violation", "type"),
])
def test_stops_where_the_answer_went_wrong(
    ticket: CompiledSchema, text: str, read: int, kind: str, keyword: str | None
) -> None:
    stopped_at, verdict = _feed(PrefixCheck(ticket), text)
    assert verdict is not None and not verdict.valid
    assert (stopped_at, verdict.kind.value, verdict.keyword) == (read, kind, keyword)
    assert stopped_at < len(text)


@pytest.mark.parametrize("text", [
    TICKET, "  \n" + TICKET + "\n\n", json.dumps(json.loads(TICKET), indent=2),
    '{"category": "bill', "I", "I'm", "Sorry",
])
def test_valid_answers_and_open_prefixes_are_read_on(ticket: CompiledSchema, text: str) -> None:
    assert _feed(PrefixCheck(ticket), text)[1] is None


def test_with_extract_prose_is_read_until_an_object_is_complete(ticket: CompiledSchema) -> None:
    text = "Sure! Here it is: " + TICKET + " Anything else?"
    stopped_at, verdict = _feed(PrefixCheck(ticket, read_prose=True), text)
    assert verdict is not None and verdict.kind is DeviationKind.EXTRA_TEXT
    assert verdict.extracted == json.loads(TICKET)
    assert len("Sure! Here it is: " + TICKET) <= stopped_at < len(text)


def test_schema_parts_it_does_not_know_never_stop(cache: ValidatorCache) -> None:
    schema = cache.compile({"anyOf": [{"type": "object"}, {"type": "array"}],
                            "properties": {"a": {"enum": ["x"]}}})
    assert _feed(PrefixCheck(schema), '{"a": "zzz", "b": 1')[1] is None


def test_checking_stays_linear_in_the_answer(ticket: CompiledSchema) -> None:
    check = PrefixCheck(ticket)
    check.feed('{"category": "')
    checks = 0
    for _ in range(20_000):
        before = check._checked_at
        check.feed("a")
        checks += check._checked_at != before
    assert checks < 100  # re-parsed at growth of an eighth, not on every piece


_VALUES: dict[str, list[Any]] = {
    "category": ["billing", "technical", "account", "other", "payments", "bill"],
    "priority": ["low", "medium", "high", "urgent"],
    "escalate": [True, False, "yes"],
}
_documents = st.fixed_dictionaries(
    {}, optional={k: st.sampled_from(v) for k, v in _VALUES.items()}
    | {"urgency": st.sampled_from(["high", "low"])})
_texts = st.one_of(
    _documents.map(json.dumps),
    st.tuples(st.sampled_from(["", "Sure! ", "```json\n", "I'm sorry, ", " \n"]),
              _documents.map(lambda d: json.dumps(d, indent=2)),
              st.sampled_from(["", "\n```", " Thanks!", "}", "\n"])).map("".join),
    st.text(max_size=80),
)


_TICKET_SCHEMA = SchemaRegistry.load(SCHEMAS_DIR, ValidatorCache()).require("ticket")


@settings(max_examples=400, deadline=None)
@given(text=_texts, size=st.integers(1, 7), read_prose=st.booleans())
def test_a_stop_is_always_right(text: str, size: int, read_prose: bool) -> None:
    ticket = _TICKET_SCHEMA
    full = classify(text, "stop", ticket)
    stopped_at, verdict = _feed(PrefixCheck(ticket, read_prose=read_prose), text, size)
    if full.valid:
        assert verdict is None  # a valid answer is never stopped
    if verdict is not None:
        assert not verdict.valid and not full.valid
        assert verdict.kind is not None


@pytest.mark.parametrize("schema", [
    # Draft 2020-12 (the default): items covers only the elements after prefixItems.
    {"type": "object", "properties": {"pair": {
        "type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}],
        "items": {"type": "boolean"}}}},
    # Draft-07's tuple form: items as a list, additionalItems for the rest.
    {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
     "properties": {"pair": {"type": "array", "items": [{"type": "string"},
                                                        {"type": "integer"}],
                             "additionalItems": {"type": "boolean"}}}},
])
def test_a_valid_tuple_answer_is_never_stopped(cache: ValidatorCache,
                                               schema: dict[str, Any]) -> None:
    compiled = cache.compile(schema)
    answer = '{"pair": ["a", 1, true]}'
    assert classify(answer, "stop", compiled).valid
    assert _feed(PrefixCheck(compiled), answer, size=1) == (len(answer), None)
