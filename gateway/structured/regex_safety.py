"""Finds regular expressions that can backtrack catastrophically.

It guards one path only: the module patterns of an adapter's ``adapter_config.json``
(``target_modules``, ``exclude_modules``, ``rank_pattern``, ``alpha_pattern``;
``gateway.adapters.store.peft_config``), which PEFT and vLLM match with Python's
backtracking ``re`` against every module name when the adapter loads. Schemas no longer
pass through it: answers are validated in linear time (jsonschema-rs on Rust's ``regex``
engine), and what a schema's patterns cost the engine's grammar compiler is measured per
schema by the compile check (``gateway.grammar``), not guessed from the pattern.

Three rules. Applied to every repeated part ``(B)*``, ``(B)+`` or ``(B){n,m}``
of a pattern (anything that may repeat more than once):

1. *Nested quantifier*: ``B`` contains a part repeated a variable number of
   times (``x*``, ``x+``, ``x?``, ``x{1,3}``) and no mandatory part of ``B``
   separates one repetition from the next, i.e. every other part of ``B`` is
   optional or can match a character the repeated part can match.
   ``(a+)+``, ``(.*)*``, ``(\\w+\\s?)+`` and ``([\\w.]+\\.)+`` are refused;
   ``[a-z]+(-[a-z]+)*`` and ``(\\.[\\w-]+)+`` are allowed (``-`` and ``.`` separate).
2. *Overlapping alternatives*: ``B`` contains an alternation two of whose
   branches can start with the same character, as in ``(a|a)*`` or ``(\\d|\\w\\w)+``.

and to every sequence of the pattern:

3. *Adjacent repeats*: two parts that repeat without a practical limit
   (``+``, ``*``, ``{n,}``, or a count range of 32 or more) can match the
   same characters, the second can start where the first could go on, and
   no mandatory part between them stops the first one,
   as in ``\\d+\\d+``, ``[a-z]+[a-z0-9]*`` or ``.*a.*``. Each such pair
   multiplies matching time by the length of the string (``pattern`` is an
   unanchored search, which adds one more factor).
   ``\\d+-\\d+`` and ``[a-z][a-z0-9]*`` are allowed.

These are sufficient conditions for trouble judged conservatively: character
sets are compared on a sample alphabet (ASCII plus a few non-ASCII letters,
digits and spaces, case folded), and anything the analysis cannot see into
counts as overlapping. What remains is at worst quadratic (one repeat, found
anywhere in the string).

The analysis reads Python's own regex parse tree (``re._parser``): JSON
Schema patterns are ECMA-262 regexes, which Python parses the same way for
everything that matters here.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

_ALPHABET = "".join(map(chr, range(128))) + "éßЖ中٣\u00a0\u2003"
_EVERYTHING = frozenset(_ALPHABET)
_REPEATS = frozenset({"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"})
_ZERO_WIDTH = frozenset({"AT", "ASSERT", "ASSERT_NOT"})
# Repeats whose count range is at least this wide count as long (``+``, ``*``, ``{0,100}``).
_LONG_RANGE = 32
_CATEGORY_CHARS = {
    name: frozenset(ch for ch in _ALPHABET if re.fullmatch(pattern, ch))
    for name, pattern in {
        "CATEGORY_DIGIT": r"\d", "CATEGORY_NOT_DIGIT": r"\D",
        "CATEGORY_SPACE": r"\s", "CATEGORY_NOT_SPACE": r"\S",
        "CATEGORY_WORD": r"\w", "CATEGORY_NOT_WORD": r"\W",
        "CATEGORY_LINEBREAK": r"\n", "CATEGORY_NOT_LINEBREAK": r"[^\n]",
    }.items()
}

Item = tuple[Any, Any]


def _parser() -> Any:
    # A private module, but the only parser of Python's regex syntax; typeshed has no stub.
    return importlib.import_module("re._parser")


def catastrophic_reason(pattern: str) -> str | None:
    """Why ``pattern`` may backtrack catastrophically, or ``None`` when it looks safe.

    Raises ``re.error`` when the pattern does not parse.
    """
    return _scan(list(_parser().parse(pattern)))


def _scan(items: Iterable[Item]) -> str | None:
    items = list(items)
    if _adjacent_overlap(items):
        return "two repeated parts can match the same characters with nothing between them"
    for op, av in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            _low, high, body = av
            body_items = list(body)
            if high > 1 and _unseparated(body_items):
                return "a repeated group contains a nested quantifier with nothing between repeats"
            if high > 1 and _overlapping_branches(body_items):
                return "a repeated group contains alternatives that can match the same text"
            reason = _scan(body_items)
        else:
            reason = _scan_inside(name, av)
        if reason:
            return reason
    return None


def _scan_inside(name: str, av: Any) -> str | None:
    for body in _bodies(name, av):
        reason = _scan(list(body))
        if reason:
            return reason
    return None


def _bodies(name: str, av: Any) -> list[Any]:
    """The sub-sequences nested in one parse item."""
    if name == "SUBPATTERN":
        return [av[3]]
    if name == "BRANCH":
        return list(av[1])
    if name in ("ASSERT", "ASSERT_NOT", "ATOMIC_GROUP", "POSSESSIVE_REPEAT"):
        return [av[-1]]
    if name == "GROUPREF_EXISTS":
        return [b for b in av[1:] if b is not None]
    return []


def _flatten(items: Iterable[Item]) -> list[Item]:
    """Splices plain groups into their parent sequence: ``(ab)c`` reads as ``abc``."""
    flat: list[Item] = []
    for op, av in items:
        if str(op) == "SUBPATTERN":
            flat.extend(_flatten(av[3]))
        else:
            flat.append((op, av))
    return flat


def _is_variable(item: Item) -> bool:
    """A repeat with a choice of count, or an alternation with an empty branch (``a(|b)``)."""
    op, av = item
    name = str(op)
    if name in ("MAX_REPEAT", "MIN_REPEAT"):
        return bool(av[0] != av[1])
    return name == "BRANCH" and any(_min_width(branch) == 0 for branch in av[1])


def _unseparated(items: Sequence[Item]) -> bool:
    """Whether a variable repeat in ``items`` can run into the next repetition unseparated."""
    flat = _flatten(items)
    mandatory = [(index, _chars([it])) for index, it in enumerate(flat) if _min_width([it]) > 0]
    verdicts: dict[tuple[int | None, frozenset[str]], bool] = {}
    for index, item in enumerate(flat):
        if not (_is_variable(item) or _branch_unseparated(item)):
            continue
        inner = _chars([item])
        # Candidates with equal character sets share the answer (``a?a?a?…``).
        key = (index if any(i == index for i, _ in mandatory) else None, inner)
        if key not in verdicts:
            verdicts[key] = any(i != index and not (chars & inner) for i, chars in mandatory)
        if not verdicts[key]:
            return True
    return False


def _is_long(item: Item) -> bool:
    """A repeat whose count may vary widely, or an alternation holding one."""
    op, av = item
    name = str(op)
    if name in ("MAX_REPEAT", "MIN_REPEAT"):
        return bool(av[1] - av[0] >= _LONG_RANGE)
    if name == "BRANCH":
        return any(_is_long(inner) for branch in av[1] for inner in _flatten(branch))
    return False


def _adjacent_overlap(items: Sequence[Item]) -> bool:
    """Whether two long repeats in one sequence can trade characters (``\\d+\\d+``, ``.*a.*``).

    Each such pair multiplies the matching time by the subject's length.
    """
    flat = _flatten(items)
    longs = [index for index, item in enumerate(flat) if _is_long(item)]
    for first, second in zip(longs, longs[1:], strict=False):
        chars = _chars([flat[first]])
        # Only if what follows can start with a character the first repeat could take.
        if not chars & _first(flat[first + 1 : second + 1]):
            continue
        between = flat[first + 1 : second]
        if not any(_min_width([it]) > 0 and not (_chars([it]) & chars) for it in between):
            return True
    return False


def _branch_unseparated(item: Item) -> bool:
    op, av = item
    return str(op) == "BRANCH" and any(_unseparated(list(branch)) for branch in av[1])


def _overlapping_branches(items: Sequence[Item]) -> bool:
    for op, av in _flatten(items):
        if str(op) != "BRANCH":
            continue
        # Python factors common prefixes out: ``(a|a)`` parses as ``a(?:|)``.
        if sum(_min_width(branch) == 0 for branch in av[1]) > 1:
            return True
        seen: set[str] = set()
        for branch in av[1]:
            first = _first(list(branch))
            if first & seen:
                return True
            seen |= first
    return False


def _min_width(items: Iterable[Item]) -> int:
    total = 0
    for op, av in items:
        name = str(op)
        if name in ("LITERAL", "NOT_LITERAL", "ANY", "IN"):
            total += 1
        elif name in _REPEATS:
            total += av[0] * _min_width(av[2])
        elif name == "BRANCH":
            total += min(_min_width(branch) for branch in av[1])
        elif name in ("SUBPATTERN", "ATOMIC_GROUP"):
            total += _min_width(av[-1])
    return total


def _first(items: Sequence[Item]) -> frozenset[str]:
    """Characters that can start a match of the sequence ``items``."""
    first: set[str] = set()
    for item in items:
        first |= _chars([item]) if _is_atom(item) else _first_of(item)
        if _min_width([item]) > 0:
            break
    return frozenset(first)


def _first_of(item: Item) -> frozenset[str]:
    op, av = item
    name = str(op)
    if name in _REPEATS:
        return _first(list(av[2]))
    if name == "BRANCH":
        return frozenset().union(*(_first(list(b)) for b in av[1]))
    if name in ("SUBPATTERN", "ATOMIC_GROUP"):
        return _first(list(av[-1]))
    if name in _ZERO_WIDTH:
        return frozenset()
    return _EVERYTHING


def _is_atom(item: Item) -> bool:
    return str(item[0]) in ("LITERAL", "NOT_LITERAL", "ANY", "IN")


def _chars(items: Iterable[Item]) -> frozenset[str]:
    """Every character a match of ``items`` may contain (the whole alphabet when unsure)."""
    chars: set[str] = set()
    for op, av in items:
        name = str(op)
        if _is_atom((op, av)):
            chars |= _atom_chars(name, av)
        elif name in _ZERO_WIDTH:
            continue
        elif name in _REPEATS:
            chars |= _chars(av[2])
        elif bodies := _bodies(name, av):
            for body in bodies:
                chars |= _chars(body)
        else:
            return _EVERYTHING
    return frozenset(c for ch in chars for c in (ch, ch.swapcase()))


def _atom_chars(name: str, av: Any) -> frozenset[str]:
    if name == "LITERAL":
        return frozenset(chr(av))
    if name == "NOT_LITERAL":
        return _EVERYTHING - {chr(av)}
    if name == "ANY":
        return _EVERYTHING
    return _set_chars(av)


def _set_chars(members: Iterable[Item]) -> frozenset[str]:
    """The sample characters a ``[...]`` class matches."""
    negate = False
    chars: set[str] = set()
    for op, av in members:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            chars.add(chr(av))
        elif name in ("RANGE", "RANGE_UNI_IGNORE"):
            chars.update(ch for ch in _ALPHABET if av[0] <= ord(ch) <= av[1])
        elif name == "CATEGORY":
            chars |= _CATEGORY_CHARS.get(str(av), _EVERYTHING)
        else:
            chars |= _EVERYTHING
    return _EVERYTHING - chars if negate else frozenset(chars)
