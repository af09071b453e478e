from __future__ import annotations

import pytest

from gateway.structured.bounds import SchemaBounds
from gateway.structured.deviations import (
    ANSWER_TOO_LONG,
    DeviationKind,
    Verdict,
    check_document,
    classify,
)
from gateway.structured.validation import CompiledSchema, ValidatorCache

VALID = '{"category": "billing", "priority": "high", "escalate": true}'
VALID_DOC = {"category": "billing", "priority": "high", "escalate": True}


def test_valid_answer(ticket: CompiledSchema) -> None:
    verdict = classify(VALID, "stop", ticket)
    assert verdict == Verdict(valid=True, parsed=VALID_DOC)


def test_valid_pretty_printed_answer_with_surrounding_whitespace(ticket: CompiledSchema) -> None:
    content = '\n\n{\n  "category": "account",\n  "priority": "low",\n  "escalate": false\n}\n'
    assert classify(content, "stop", ticket).valid


def test_complete_document_is_valid_even_when_cut_at_the_limit(ticket: CompiledSchema) -> None:
    verdict = classify(VALID + "\n\n\n", "length", ticket)
    assert verdict.valid and verdict.parsed == VALID_DOC


@pytest.mark.parametrize("content", [None, "", "   \n\t  "])
def test_empty(ticket: CompiledSchema, content: str | None) -> None:
    verdict = classify(content, "stop", ticket)
    assert verdict.kind is DeviationKind.EMPTY and not verdict.valid
    assert verdict.messages == ("the answer is empty",)


def test_refusal_field_wins_over_everything(ticket: CompiledSchema) -> None:
    verdict = classify(VALID, "stop", ticket, refusal="I can't help with that request.")
    assert verdict.kind is DeviationKind.REFUSAL
    assert "I can't help with that request." in verdict.messages[0]


def test_blank_refusal_field_is_ignored(ticket: CompiledSchema) -> None:
    assert classify(VALID, "stop", ticket, refusal="  ").valid


@pytest.mark.parametrize(
    "content",
    [
        "I'm sorry, but I can't help with categorizing this ticket.",
        "I cannot provide that information.",
        "As an AI language model, I do not have access to your account.",
        "Sorry, I won't answer that.",
        "Unfortunately, I am unable to process this request.",
    ],
)
def test_refusal_by_phrasing(ticket: CompiledSchema, content: str) -> None:
    assert classify(content, "stop", ticket).kind is DeviationKind.REFUSAL


def test_refusal_phrasing_inside_prose_is_not_a_refusal(ticket: CompiledSchema) -> None:
    content = "The customer says: I'm sorry, I cannot log in. This is an account issue."
    assert classify(content, "stop", ticket).kind is DeviationKind.NOT_JSON


def test_json_found_after_an_apology_is_extra_text(ticket: CompiledSchema) -> None:
    verdict = classify(f"I'm sorry for the delay! Here it is: {VALID}", "stop", ticket)
    assert verdict.kind is DeviationKind.EXTRA_TEXT and verdict.extracted == VALID_DOC


def test_whitespace_runaway_is_truncated(ticket: CompiledSchema) -> None:
    content = '{"category": "billing"' + " \n" * 3000
    verdict = classify(content, "length", ticket)
    assert verdict.kind is DeviationKind.TRUNCATED
    assert verdict.parsed is None and verdict.extracted is None
    assert "6000 whitespace characters" in verdict.messages[0]


def test_whitespace_only_runaway_is_truncated_not_empty(ticket: CompiledSchema) -> None:
    verdict = classify("\n" * 500, "length", ticket)
    assert verdict.kind is DeviationKind.TRUNCATED
    assert "run-away" in verdict.messages[0]


def test_prose_cut_at_the_limit_is_truncated(ticket: CompiledSchema) -> None:
    content = "The ticket concerns a billing problem because the customer was charged twice and"
    verdict = classify(content, "length", ticket)
    assert verdict.kind is DeviationKind.TRUNCATED
    assert "run-away" not in verdict.messages[0]


def test_truncated_answer_keeps_an_object_completed_before_the_cut(ticket: CompiledSchema) -> None:
    content = f"Here is the routing: {VALID}\nExplanation: the customer was charged twice, so"
    verdict = classify(content, "length", ticket)
    assert verdict.kind is DeviationKind.TRUNCATED and verdict.extracted == VALID_DOC


def test_inner_object_of_a_cut_document_is_not_extracted(ticket: CompiledSchema) -> None:
    content = '{"category": "billing", "meta": {"source": "email"}, "priority": "hi'
    assert classify(content, "length", ticket).extracted is None


def test_code_fenced_json_is_extra_text(ticket: CompiledSchema) -> None:
    verdict = classify(f"```json\n{VALID}\n```", "stop", ticket)
    assert verdict.kind is DeviationKind.EXTRA_TEXT
    assert verdict.extracted == VALID_DOC
    assert "code fences" in verdict.messages[0]


def test_prose_around_json_is_extra_text(ticket: CompiledSchema) -> None:
    content = f"Sure! Based on the message, here is the routing:\n{VALID}\nLet me know if needed."
    verdict = classify(content, "stop", ticket)
    assert verdict.kind is DeviationKind.EXTRA_TEXT
    assert verdict.parsed is None and verdict.extracted == VALID_DOC
    assert "surrounded by text" in verdict.messages[0]


def test_extraction_prefers_the_object_that_fits_the_schema(ticket: CompiledSchema) -> None:
    content = f'An example would be {{"category": "x"}}, but the answer is {VALID}.'
    assert classify(content, "stop", ticket).extracted == VALID_DOC


def test_extraction_falls_back_to_the_first_object(ticket: CompiledSchema) -> None:
    content = 'Routing: {"category": "billing", "urgency": "high"} and {"note": 1}'
    verdict = classify(content, "stop", ticket)
    assert verdict.kind is DeviationKind.EXTRA_TEXT
    assert verdict.extracted == {"category": "billing", "urgency": "high"}


def test_two_documents_back_to_back_are_extra_text(ticket: CompiledSchema) -> None:
    verdict = classify(VALID + VALID, "stop", ticket)
    assert verdict.kind is DeviationKind.EXTRA_TEXT and verdict.extracted == VALID_DOC


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ('{"category": billing, "priority": "high", "escalate": true}', "column 14"),
        ("{'category': 'billing', 'priority': 'high', 'escalate': True}", "column 2"),
        ('{"category": "billing", "priority": "high", "escalate": true,}', "column 62"),
        ('["billing", "high"', "column 19"),
        ('Answer: {"category": "billing" "priority": "high"}', "column 32"),
    ],
)
def test_invalid_json(ticket: CompiledSchema, content: str, where: str) -> None:
    verdict = classify(content, "stop", ticket)
    assert verdict.kind is DeviationKind.INVALID_JSON
    assert verdict.messages[0].startswith("invalid JSON: ") and where in verdict.messages[0]


def test_nan_is_not_json(ticket: CompiledSchema) -> None:
    content = '{"category": "billing", "priority": "high", "escalate": NaN}'
    assert classify(content, "stop", ticket).kind is DeviationKind.INVALID_JSON


def test_prose_is_not_json(ticket: CompiledSchema) -> None:
    content = "This ticket is about billing. It is high priority and should be escalated."
    verdict = classify(content, "stop", ticket)
    assert verdict.kind is DeviationKind.NOT_JSON
    assert verdict.messages == ("the answer contains no JSON document",)


@pytest.mark.parametrize(
    ("content", "keyword", "message"),
    [
        ('{"category": "billing", "priority": "high"}',
         "required", '$: "escalate" is a required property'),
        ('{"category": "billing", "priority": "high", "escalate": "yes"}',
         "type", '$.escalate: "yes" is not of type "boolean"'),
        ('{"category": "refund", "priority": "high", "escalate": true}',
         "enum", '$.category: "refund" is not one of'),
        ('{"category": "billing", "priority": "high", "escalate": true, "reason": "x"}',
         "additionalProperties", "('reason' was unexpected)"),
        ('"billing"', "type", '$: "billing" is not of type "object"'),
    ],
)
def test_schema_violation(
    ticket: CompiledSchema, content: str, keyword: str, message: str
) -> None:
    verdict = classify(content, "stop", ticket)
    assert verdict.kind is DeviationKind.SCHEMA_VIOLATION
    assert verdict.keyword == keyword
    assert message in verdict.messages[0]
    assert verdict.parsed is not None


def test_renamed_keys_report_every_problem(ticket: CompiledSchema) -> None:
    content = '{"Category": "billing", "prio": "high", "escalate": true}'
    verdict = classify(content, "stop", ticket)
    assert verdict.kind is DeviationKind.SCHEMA_VIOLATION
    assert len(verdict.messages) == 3
    assert verdict.keyword in ("required", "additionalProperties")


def test_answer_too_long_is_not_parsed(ticket: CompiledSchema) -> None:
    small = ValidatorCache(SchemaBounds(max_answer_chars=100)).compile(dict(ticket.schema))
    content = f"Here you go: {VALID} Is there anything else I can help you with?"
    verdict = classify(content, "stop", small)
    assert verdict.kind is DeviationKind.SCHEMA_VIOLATION and verdict.keyword == ANSWER_TOO_LONG
    assert classify(content, "length", small).kind is DeviationKind.TRUNCATED
    # Whitespace around the answer does not count.
    assert classify(VALID + " \n" * 1000, "length", small).valid


def test_deeply_nested_answer_is_a_deviation_not_a_crash(cache: ValidatorCache) -> None:
    anything = cache.compile({})
    assert classify("[" * 60_000, "stop", anything).kind is DeviationKind.INVALID_JSON
    nested = "[" * 5_000 + "]" * 5_000
    assert not classify(nested, "stop", cache.compile({"type": "object"})).valid


def test_empty_schema_accepts_any_complete_document(cache: ValidatorCache) -> None:
    anything = cache.compile({})
    assert classify("42", "stop", anything).valid
    # Only objects are looked for inside text: an array in prose is not taken for the answer.
    assert classify("Sure: [1, 2]", "stop", anything).kind is DeviationKind.NOT_JSON


def test_check_document(ticket: CompiledSchema) -> None:
    assert check_document(VALID_DOC, ticket).valid
    assert check_document({}, ticket).kind is DeviationKind.SCHEMA_VIOLATION


def test_taxonomy_is_fixed() -> None:
    assert [kind.value for kind in DeviationKind] == [
        "empty", "refusal", "truncated", "extra_text", "invalid_json", "not_json",
        "schema_violation", "tool_call_in_content", "tool_call_missing", "tool_call_unexpected",
        "tool_unknown", "tool_arguments_invalid_json", "tool_arguments_truncated",
        "tool_arguments_schema_violation",
    ]


def test_document_too_deep_for_the_validator(cache: ValidatorCache) -> None:
    unique = cache.compile({"type": "array", "uniqueItems": True})
    deep = "[" * 400 + "]" * 400
    verdict = classify(f"[{deep}, {deep}]", "stop", unique)
    assert verdict.kind is DeviationKind.SCHEMA_VIOLATION and verdict.keyword == "x-max-depth"
