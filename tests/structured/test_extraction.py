from __future__ import annotations

import json

import pytest

from gateway.structured.extraction import (
    MAX_ATTEMPTS,
    Found,
    closes,
    find_objects,
    loads,
    looks_like_refusal,
    pick,
    syntax_error,
    trailing_whitespace,
)


def test_loads_refuses_non_standard_constants() -> None:
    for text in ("NaN", "[Infinity]", '{"a": -Infinity}'):
        with pytest.raises(ValueError, match="not valid JSON"):
            loads(text)
    assert loads('{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}


def test_find_objects_in_order_with_positions() -> None:
    text = 'first {"a": 1} then {"b": {"c": 2}} end'
    found = find_objects(text)
    assert [f.value for f in found] == [{"a": 1}, {"b": {"c": 2}}]
    assert text[found[0].start : found[0].end] == '{"a": 1}'


def test_find_objects_skips_braces_that_are_not_json() -> None:
    text = 'Use {placeholders} like {name}; the answer: {"ok": true}'
    assert [f.value for f in find_objects(text)] == [{"ok": True}]


def test_find_objects_stops_at_an_object_that_never_closes() -> None:
    text = '{"a": {"b": 1}, "c": "cut off here'
    assert find_objects(text) == []


def test_braces_inside_strings_do_not_count() -> None:
    assert closes('{"text": "a } brace"}', 0)
    assert not closes('{"text": "a } brace"', 0)
    assert not closes('{"text": "unterminated } ', 0)


def test_find_objects_respects_the_limit() -> None:
    text = " ".join(json.dumps({"n": n}) for n in range(20))
    assert len(find_objects(text, limit=3)) == 3


def test_find_objects_bounds_its_attempts() -> None:
    text = "{x} " * (MAX_ATTEMPTS + 5) + '{"late": 1}'
    assert find_objects(text) == []


def test_pick_prefers_accepted_candidates() -> None:
    found = [Found({"a": 1}, 0, 8), Found({"b": 2}, 9, 17)]
    assert pick(found, lambda value: "b" in value) == found[1]
    assert pick(found, lambda value: False) == found[0]
    assert pick([], lambda value: True) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I'm sorry, but I can't do that.", True),
        ("I’m sorry, I cannot.", True),
        ("  I cannot share account details.", True),
        ("We can't process refunds here.", True),
        ("I apologise, that is not something I can do.", True),
        ("I can help with that!", False),
        ("The customer said I'm sorry.", False),
        ("Sorry-looking customers are billing issues", False),
        ("I'm sorry to hear that your data was lost. Our support team will help.", False),
        ("I'm sorry to hear that. Unfortunately I can't share it.", False),
        ("Sorry for the trouble, I cannot change your plan.", True),
        ("As an AI, I have no access to invoices.", True),
    ],
)
def test_looks_like_refusal(text: str, expected: bool) -> None:
    assert looks_like_refusal(text) is expected


def test_syntax_error_reports_position() -> None:
    assert syntax_error('{"a" 1}') == "invalid JSON: Expecting ':' delimiter at line 1 column 6"
    assert syntax_error('x {"a": }').endswith("line 1 column 9")


def test_trailing_whitespace() -> None:
    assert trailing_whitespace('{"a": 1' + " \n" * 10) == 20
    assert trailing_whitespace("x") == 0
