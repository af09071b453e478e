from __future__ import annotations

from gateway.structured.deviations import DeviationKind, Verdict, classify
from gateway.structured.reask import (
    MAX_QUOTED_CHARS,
    feedback,
    quote,
    reask_messages,
    reask_prompt,
)
from gateway.structured.validation import CompiledSchema

ANSWER = '{"category": "refunds", "priority": "high"}'


def test_reask_messages_append_the_answer_and_the_problems(ticket: CompiledSchema) -> None:
    original = [
        {"role": "system", "content": "Route the ticket. Answer in JSON."},
        {"role": "user", "content": "I was charged twice."},
    ]
    verdict = classify(ANSWER, "stop", ticket)
    messages = reask_messages(original, ANSWER, verdict, ticket.schema)
    assert messages[:2] == original and len(original) == 2
    assert messages[2] == {"role": "assistant", "content": ANSWER}
    assert messages[3]["role"] == "user"
    content = messages[3]["content"]
    assert '- $.category: "refunds" is not one of' in content
    assert '- $: "escalate" is a required property' in content
    assert "only the corrected JSON object" in content
    assert '"enum":["billing","technical"' in content  # the schema, compact


def test_the_original_messages_are_not_modified(ticket: CompiledSchema) -> None:
    original = [{"role": "user", "content": "hi", "name": "alice"}]
    messages = reask_messages(original, "hello", classify("hello", "stop", ticket))
    messages[0]["content"] = "changed"
    assert original == [{"role": "user", "content": "hi", "name": "alice"}]


def test_a_runaway_is_quoted_only_in_part(ticket: CompiledSchema) -> None:
    answer = '{"category": "billing"' + " \n" * 5000
    verdict = classify(answer, "length", ticket)
    messages = reask_messages([], answer, verdict)
    assert messages[0]["content"] == '{"category": "billing"'
    assert "cut off at the token limit" in messages[1]["content"]
    long_prose = "word " * 2000
    assert len(quote(long_prose)) == MAX_QUOTED_CHARS + 2


def test_a_large_schema_is_left_out(ticket: CompiledSchema) -> None:
    verdict = Verdict(valid=False, kind=DeviationKind.NOT_JSON, messages=("no JSON",))
    big = {"enum": ["x" * 50] * 100}
    assert "JSON Schema" not in feedback(verdict, big)
    assert "JSON Schema" in feedback(verdict, {"type": "object"})


def test_empty_and_refused_answers(ticket: CompiledSchema) -> None:
    verdict = classify(None, "stop", ticket)
    messages = reask_messages([{"role": "user", "content": "x"}], None, verdict)
    assert messages[1] == {"role": "assistant", "content": ""}
    assert "the answer is empty" in messages[2]["content"]


def test_reask_prompt_for_completions(ticket: CompiledSchema) -> None:
    prompt = "Route this ticket as JSON: I was charged twice.\n"
    verdict = classify(ANSWER, "stop", ticket)
    text = reask_prompt(prompt, ANSWER, verdict)
    assert text.startswith(prompt + ANSWER + "\n\n")
    assert "Problems:\n- " in text and text.endswith("Corrected JSON:\n")
