from __future__ import annotations

import re

import pytest

from gateway.structured.regex_safety import catastrophic_reason

CATASTROPHIC = [
    r"(a+)+$",
    r"^(a+)+",
    r"(a|a)*",
    r"(a|aa)+$",
    r"(.*)*",
    r"(.*a){10}",
    r"^(\w+\s?)+$",
    r"([\w.]+\.)+",
    r"(a*b*)+",
    r"(a+|b)+",
    r"(\w+|\d+)+",
    r"(\d|\w\w)+",
    r"(x+x+)+y",
    r"((ab)*)+",
    r"(?:a+){2,}",
    r"(a?)+",
    r"^(([a-z])+.)+[A-Z]([a-z])+$",
    r"\d+\d+x",
    r".*a.*b",
    r"^.*foo.*$",
    r"^[a-z]+[a-z0-9]*$",
    r"(\d+)(\d+)x",
    r"\d{0,100}\d{0,100}",
    r"(\d+|x)\d+",
]

SAFE = [
    r"^[a-z]+(-[a-z]+)*$",
    r"^[\w.+-]+@[\w-]+(\.[\w-]+)+$",
    r"^\d{3}-\d{4}$",
    r"^(\d{3}-)*\d{4}$",
    r"(ab)+",
    r"(foo|bar)*",
    r"(ab|a)*c",
    r"^[A-Z]{2}-\d+$",
    r"^\+?[0-9 ()-]{7,20}$",
    r"(ab+c)+",
    r"^(-?\d)+$",
    r"(a{2})+",
    r"^(https?|ftp)://[^\s/$.?#].[^\s]*$",
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    r"^(?=.*\d)[A-Za-z\d]{8,}$",
    r"a*+b",
    r"\d+-\d+",
    r"^[a-z][a-z0-9]*$",
    r"^\s*\w+\s*$",
    r"^[\w-]+(\.[\w-]+)+$",
    r"^\d{1,3}(,\d{3})*(\.\d+)?$",
    r"^[A-Z][a-z]+ [A-Z][a-z]+$",
]


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_catastrophic_patterns_are_found(pattern: str) -> None:
    assert catastrophic_reason(pattern) is not None


@pytest.mark.parametrize("pattern", SAFE)
def test_common_safe_patterns_pass(pattern: str) -> None:
    assert catastrophic_reason(pattern) is None


def test_case_insensitive_overlap_counts() -> None:
    assert catastrophic_reason(r"(?i)([a-z]+A)+") is not None
    assert catastrophic_reason(r"([a-z]+-)+") is None


def test_invalid_pattern_raises() -> None:
    with pytest.raises(re.error):
        catastrophic_reason("(unclosed")


def test_reasons_name_the_rule() -> None:
    assert "nested quantifier" in (catastrophic_reason("(a+)+") or "")
    assert "alternatives" in (catastrophic_reason("(a|a)*") or "")
    assert "two repeated parts" in (catastrophic_reason("x\\d+\\d+") or "")
