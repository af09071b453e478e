"""API keys with scopes; compared in constant time and never logged."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from gateway.errors import PermissionDenied, Unauthenticated

Scope = Literal["user", "metrics", "admin"]
# What each scope may do: ``user`` the inference endpoints, ``metrics`` only scrape (a
# Prometheus key), ``admin`` everything.
_GRANTS: dict[str, frozenset[str]] = {"user": frozenset({"user"}),
                                      "metrics": frozenset({"metrics"}),
                                      "admin": frozenset({"user", "metrics", "admin"})}


@dataclass(frozen=True)
class Principal:
    name: str
    scope: Scope


class Authenticator:
    """Checks ``Authorization: Bearer <key>`` against the configured keys."""

    def __init__(self, keys: Iterable[tuple[Principal, str]]) -> None:
        """``keys``: each principal with its secret (read from the configuration once)."""
        self._keys = [(_digest(secret), principal) for principal, secret in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def authenticate(self, authorization: str | None, needed: Scope) -> Principal | None:
        if not self.enabled:
            return None
        principal = self._lookup(_bearer(authorization))
        if principal is None:
            raise Unauthenticated(
                "Missing or invalid API key. Send it as 'Authorization: Bearer <key>'."
            )
        if needed not in _GRANTS[principal.scope]:
            raise PermissionDenied(
                f"This endpoint needs an API key with the '{needed}' scope; "
                f"the key '{principal.name}' has '{principal.scope}'."
            )
        return principal

    def _lookup(self, presented: str | None) -> Principal | None:
        if not presented:
            return None
        digest = _digest(presented)
        found = None
        for known, principal in self._keys:
            # No early exit: every key is compared, so timing does not tell which matched.
            if hmac.compare_digest(known, digest):
                found = principal
        return found


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
