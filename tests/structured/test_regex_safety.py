from __future__ import annotations

import contextlib
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


@pytest.mark.timeout(60)  # a hang guard: the analysis must stay linear-ish in the pattern
@pytest.mark.parametrize("pattern", [
    "(" * 500 + "a" + ")" * 500,
    "(?:a|b|c|d|e|f|g|h)" * 200,
    "[a-z]" * 800 + "+",
    "(x{1,3}y)" * 400,
])
def test_the_analysis_of_long_patterns_finishes(pattern: str) -> None:
    # An adapter's module patterns are short; one too deep for the parser is refused,
    # which is an answer too.
    with contextlib.suppress(re.error, RecursionError, OverflowError):
        catastrophic_reason(pattern)


@pytest.mark.timeout(60)  # a hang guard: Python's re would backtrack for years
@pytest.mark.parametrize("pattern", SAFE)
def test_what_the_analysis_allows_is_validated_in_bounded_time(pattern: str) -> None:
    """The validator, not this analysis, is what keeps answers fast: any allowed pattern
    against long hostile subjects (it runs on jsonschema-rs's linear-time engine)."""
    from gateway.structured.validation import ValidatorCache

    try:
        compiled = ValidatorCache().compile({"type": "string", "pattern": pattern})
    except Exception:  # look-arounds: refused by the linear-time engine, nothing to match
        return
    for subject in ("a" * 50_000 + "!", "1-" * 25_000 + "x", " " * 50_000 + "\x00"):
        compiled.problems(subject)
