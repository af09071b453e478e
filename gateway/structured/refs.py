"""Checks the ``$ref``s of a schema: local, resolvable and not recursive.

Only references inside the schema document are allowed: ``#`` (the root),
a JSON Pointer such as ``#/$defs/address``, or an anchor ``#name`` declared
with ``$anchor``. Anything else (``https://…``, ``file:…``, ``other.json``)
is refused and never fetched.

Recursive schemas are refused: a reference whose target contains, directly
or through further references, the reference itself. A bounded unrolling
would still let a client make the validator and the grammar compiler do
exponential work; a schema that needs nesting writes it out to the depth it
needs, within ``max_depth``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from gateway.structured.errors import SchemaRejected
from gateway.structured.walk import Path, describe

REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


@dataclass(frozen=True, slots=True)
class RefSite:
    """A reference found at ``path`` pointing at the subschema at ``target``."""

    path: Path
    target: Path


def resolve(
    ref: str, at: Path, anchors: Mapping[str, Path], schema_paths: frozenset[Path],
) -> Path:
    """The path a local reference points at; raises :class:`SchemaRejected` otherwise."""
    where = describe(at)
    if not ref.startswith("#"):
        raise SchemaRejected(
            f"$ref {ref[:200]!r} at {where} points outside the schema; only local references "
            "such as '#/$defs/name' are allowed (remote schemas are never fetched): "
            "copy the referenced schema into $defs"
        )
    fragment = unquote(ref[1:])
    if fragment and not fragment.startswith("/"):
        if fragment not in anchors:
            raise SchemaRejected(f"$ref {ref[:200]!r} at {where} names no $anchor in the schema")
        return anchors[fragment]
    parts = tuple(part.replace("~1", "/").replace("~0", "~") for part in fragment.split("/")[1:])
    target = _with_indexes(parts, schema_paths)
    if target not in schema_paths:
        raise SchemaRejected(
            f"$ref {ref[:200]!r} at {where} does not point at a subschema of this schema; "
            "point it at a schema under $defs"
        )
    return target


def _with_indexes(parts: tuple[str, ...], schema_paths: frozenset[Path]) -> Path:
    """Reads numeric pointer segments as list indexes unless the names themselves fit."""
    if parts in schema_paths:
        return parts
    # ASCII digits only: int() also reads "٣" as 3, which JSON Pointer does not.
    return tuple(int(p) if p.isascii() and p.isdigit() else p for p in parts)


def check_cycles(sites: Sequence[RefSite]) -> None:
    """Refuses references that lead back into themselves."""
    following = {site: _inside(site.target, sites) for site in sites}
    state: dict[RefSite, int] = {}  # 1: on the current path, 2: done
    for start in sites:
        if start in state:
            continue
        stack: list[tuple[RefSite, int]] = [(start, 0)]
        state[start] = 1
        while stack:
            site, index = stack.pop()
            nexts = following[site]
            if index == len(nexts):
                state[site] = 2
                continue
            stack.append((site, index + 1))
            nxt = nexts[index]
            if state.get(nxt) == 1:
                raise SchemaRejected(
                    f"$ref at {describe(nxt.path)} is recursive (it leads back into itself); "
                    "recursive schemas are not supported: write the nesting out to the depth "
                    "you need"
                )
            if nxt not in state:
                state[nxt] = 1
                stack.append((nxt, 0))


def _inside(target: Path, sites: Sequence[RefSite]) -> list[RefSite]:
    """The reference sites within the subtree at ``target``."""
    size = len(target)
    return [site for site in sites if site.path[:size] == target]


def anchor_name(schema: Mapping[str, Any]) -> str | None:
    """The plain-name anchor a subschema declares, if any."""
    for keyword in ("$anchor", "$dynamicAnchor"):
        value = schema.get(keyword)
        if isinstance(value, str):
            return value
    return None
