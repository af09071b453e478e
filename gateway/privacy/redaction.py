"""Replaces personal data in text with pseudonyms of the same shape.

Written by hand rather than with a PII framework: Presidio and its kin load spaCy models
fetched from a model hub, which the gateway may not do at run time, and are far slower than
the three patterns needed here. What they find:

- ``email``: an address becomes ``user-<8 hex>@example.invalid``, still a valid address;
- ``phone``: numbers written with a ``+`` country code, or the North American
  ``(555) 123-4567`` shape, keep their layout with other digits;
- ``payment_card``: 13 to 19 digits that pass the Luhn check keep their layout with other
  digits that pass it too.

The same value gets the same pseudonym within one process (a keyed hash with a random key
per process), so a conversation or a dataset stays coherent and a fine-tune learns the
format of an address, not ``[email]``. Names, postal addresses, account numbers in free
form, and anything a pattern cannot see are not found: see docs/privacy.md.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from typing import Any, Literal

Kind = Literal["email", "phone", "payment_card"]
KINDS: tuple[Kind, ...] = ("email", "phone", "payment_card")

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d[\d ().-]{6,18}\d|\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4})(?!\w)")
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")


class Redactor:
    """Redacts the chosen ``kinds`` in strings, JSON values and chat records."""

    def __init__(self, kinds: Iterable[Kind] = KINDS, key: bytes | None = None) -> None:
        self.kinds = tuple(kinds)
        self._key = key or secrets.token_bytes(32)
        finders: dict[Kind, tuple[re.Pattern[str], Callable[[str], str]]] = {
            "payment_card": (_CARD, self._card), "email": (_EMAIL, self._email),
            "phone": (_PHONE, self._phone)}
        # Cards before phones: a card number written in groups also looks like a phone.
        self._finders = [finders[k] for k in ("payment_card", "email", "phone")
                         if k in self.kinds]

    def __bool__(self) -> bool:
        return bool(self.kinds)

    def text(self, value: str) -> str:
        for pattern, replace in self._finders:
            value = pattern.sub(lambda m, r=replace: r(m.group()), value)  # type: ignore[misc]
        return value

    def json(self, value: Any) -> Any:
        """Every string in a JSON value (keys kept)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, dict):
            return {k: self.json(v) for k, v in value.items()}
        return value

    def message(self, message: dict[str, Any]) -> dict[str, Any]:
        """A chat message or Responses item: its text, text parts, call arguments, output."""
        return self.json(message) if self else message

    def _digest(self, value: str) -> bytes:
        return hmac.new(self._key, value.encode(), hashlib.sha256).digest()

    def _email(self, found: str) -> str:
        return f"user-{self._digest(found.lower()).hex()[:8]}@example.invalid"

    def _phone(self, found: str) -> str:
        return _same_shape(found, self._digest(found))

    def _card(self, found: str) -> str:
        digits = [c for c in found if c.isdigit()]
        if not _luhn(digits):
            return found
        fresh = list(_same_shape("".join(digits), self._digest(found)))
        fresh[-1] = "0"
        fresh[-1] = str((10 - _luhn_sum(fresh)) % 10)
        it = iter(fresh)
        return "".join(next(it) if c.isdigit() else c for c in found)


def _same_shape(found: str, digest: bytes) -> str:
    """``found`` with each digit replaced from ``digest``; separators and ``+`` kept."""
    stream = iter(digest * 2)
    return "".join(str(next(stream) % 10) if c.isdigit() else c for c in found)


def _luhn_sum(digits: list[str]) -> int:
    total = 0
    for index, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10


def _luhn(digits: list[str]) -> bool:
    return len(digits) >= 13 and _luhn_sum(digits) == 0
