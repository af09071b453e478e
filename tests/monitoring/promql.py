"""Just enough PromQL reading to list the series selectors of an expression.

The monitoring tests check that every series the rules and the dashboard query is one the
gateway exports (or a recording rule), so a renamed metric cannot leave a panel empty or an
alert silent. A full PromQL parser is not needed for that: selectors are the identifiers that
are neither functions, keywords nor label names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
     "offset", "bool", "inf", "nan"}
)

_TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<grouping>\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\))
  | (?P<matchers>\{(?:[^}"]|"(?:[^"\\]|\\.)*")*\})
  | (?P<range>\[[^\]]*\])
  | (?P<variable>\$\{[^}]*\}|\$\w+)
  | (?P<number>\d[\w.]*)
  | (?P<name>[a-zA-Z_:][\w:]*)
  | (?P<paren>\()
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_MATCHER = re.compile(r'([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Selector:
    """One series selector: a metric name and its label matchers (label -> (op, value))."""

    name: str
    matchers: dict[str, tuple[str, str]]


def selectors(expr: str) -> list[Selector]:
    """The series selectors of a PromQL expression, in order of appearance."""
    tokens = [(m.lastgroup or "", m.group()) for m in _TOKEN.finditer(expr)]
    # Grouping clauses go too, so that `sum by (a) (...)` reads as a call like `sum(...)`.
    tokens = [(kind, text) for kind, text in tokens if kind != "grouping" and not text.isspace()]
    found: list[Selector] = []
    for index, (kind, text) in enumerate(tokens):
        if kind != "name" or text in KEYWORDS:
            continue
        following = tokens[index + 1] if index + 1 < len(tokens) else ("", "")
        if following[0] == "paren":
            continue  # a function or aggregation call
        matchers = _matchers(following[1]) if following[0] == "matchers" else {}
        found.append(Selector(text, matchers))
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads."""
    return {selector.name for selector in selectors(expr)}


def _matchers(block: str) -> dict[str, tuple[str, str]]:
    return {label: (op, value) for label, op, value in _MATCHER.findall(block)}
