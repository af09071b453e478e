"""Personal data replaced by pseudonyms of the same shape; everything else untouched."""

from __future__ import annotations

import re

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.privacy.redaction import Redactor

EMAIL_SCHEMA = {"type": "string", "format": "email"}


def _luhn(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()][::-1]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2)
                for i, d in enumerate(digits))
    return total % 10 == 0


def test_an_address_becomes_a_valid_address_the_same_each_time() -> None:
    redactor = Redactor()
    first, again = redactor.text("mail Bob@X.com"), redactor.text("bob@x.com, please")
    pseudonym = first.removeprefix("mail ")
    assert "x.com" not in first.lower() and again.startswith(pseudonym)
    jsonschema.validate(pseudonym, EMAIL_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert Redactor().text("bob@x.com") != pseudonym  # another process, another key


@pytest.mark.parametrize("phone", ["+44 20 7946 0958", "+1 (555) 123-4567", "(555) 123-4567",
                                   "555.123.4567", "+33612345678"])
def test_a_phone_number_keeps_its_layout(phone: str) -> None:
    redacted = Redactor().text(f"call {phone} today").removeprefix("call ")[: len(phone)]
    assert redacted != phone
    assert re.sub(r"\d", "0", redacted) == re.sub(r"\d", "0", phone)


@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "5500-0000-0000-0004",
                                  "378282246310005"])
def test_a_card_number_keeps_its_layout_and_passes_luhn(card: str) -> None:
    redacted = Redactor().text(f"card {card}.").removeprefix("card ").rstrip(".")
    assert redacted != card and _luhn(redacted)
    assert re.sub(r"\d", "0", redacted) == re.sub(r"\d", "0", card)


@pytest.mark.parametrize("text", [
    "Order 12345678 shipped on 2026-12-07 at 05:56.", "version 1.2.3.4 of the app",
    "Invoice 4111111111111112 is wrong", "call extension 4567", "3.14159265358979",
    "ticket TCK-2026-000123", "user@localhost"])
def test_what_is_not_personal_data_is_left_alone(text: str) -> None:
    assert Redactor().text(text) == text


def test_json_values_tool_arguments_and_parts_are_redacted_keys_kept() -> None:
    redactor = Redactor()
    message = {"role": "assistant", "content": [{"type": "output_text", "text": "a@b.co"}],
               "tool_calls": [{"function": {"arguments": '{"email": "a@b.co"}'}}],
               "a@b.co": 1}
    redacted = redactor.message(message)
    assert "a@b.co" in redacted and "a@b.co" not in str(
        {k: v for k, v in redacted.items() if k != "a@b.co"})


def test_no_kinds_keeps_everything() -> None:
    message = {"content": "bob@x.com +44 20 7946 0958"}
    assert Redactor(()).message(message) == message


PERSONAL = ["bob@x.com", "jane.doe+tag@mail.example.org", "+44 20 7946 0958",
            "(555) 123-4567", "4111 1111 1111 1111"]
_words = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30)


@settings(derandomize=True)
@given(st.lists(st.one_of(_words, st.sampled_from(PERSONAL)), max_size=12))
def test_personal_data_among_any_text_never_survives(parts: list[str]) -> None:
    text = " | ".join(parts)
    redacted = Redactor().text(text)
    for value in PERSONAL:
        if value in parts:
            assert value not in redacted
