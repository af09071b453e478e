"""The registry of named schemas, loaded from ``config/schemas/*.json``.

One JSON Schema per file; the file stem is the schema's name and must match
:data:`NAME_PATTERN` (OpenAI's rule for ``json_schema.name``, which also keeps
names safe as metric labels). Every file is checked against the bounds; a
file that fails is reported (logged, and listed in ``problems``) and left
out, so one bad file never stops the gateway.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.structured.errors import SchemaRejected, UnknownSchema
from gateway.structured.validation import CompiledSchema, ValidatorCache

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """A schema file that could not be registered, and why."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SchemaRegistry:
    """Named, bounds-checked schemas with their compiled validators."""

    def __init__(
        self,
        schemas: Mapping[str, CompiledSchema] | None = None,
        problems: Sequence[SchemaProblem] = (),
    ) -> None:
        self._schemas = dict(schemas or {})
        self.problems = tuple(problems)

    @classmethod
    def load(cls, directory: Path, cache: ValidatorCache) -> SchemaRegistry:
        """Registers every valid ``*.json`` in ``directory``; the rest go to ``problems``."""
        schemas: dict[str, CompiledSchema] = {}
        problems: list[SchemaProblem] = []
        for path, outcome in _load_all(directory, cache):
            if isinstance(outcome, SchemaProblem):
                logger.warning("schema file refused: %s: %s", path, outcome.message)
                problems.append(outcome)
                continue
            if outcome.accepts_anything:
                logger.warning("schema %s accepts any JSON document: only syntax is checked", path)
            schemas[path.stem] = outcome
        logger.info("schemas registered: %d, refused: %d", len(schemas), len(problems))
        return cls(schemas, problems)

    def __contains__(self, name: object) -> bool:
        return name in self._schemas

    def __len__(self) -> int:
        return len(self._schemas)

    def get(self, name: str) -> CompiledSchema | None:
        return self._schemas.get(name)

    def require(self, name: str, param: str = "response_format.json_schema.name") -> CompiledSchema:
        """The schema called ``name``; raises :class:`UnknownSchema` naming ``param``."""
        schema = self._schemas.get(name)
        if schema is None:
            known = ", ".join(sorted(self._schemas)) or "none"
            raise UnknownSchema(
                f"no schema is registered as {name[:64]!r} (registered: {known}); "
                "send the schema itself in response_format.json_schema.schema",
                param=param,
            )
        return schema

    def names(self) -> frozenset[str]:
        """Registered names, e.g. to allow them as metric labels."""
        return frozenset(self._schemas)


def _load_all(
    directory: Path, cache: ValidatorCache
) -> Iterator[tuple[Path, CompiledSchema | SchemaProblem]]:
    if not directory.is_dir():
        yield directory, SchemaProblem(directory, "schema directory not found")
        return
    for path in sorted(directory.glob("*.json")):
        yield path, _load_one(path, cache)


def _load_one(path: Path, cache: ValidatorCache) -> CompiledSchema | SchemaProblem:
    if not NAME_PATTERN.fullmatch(path.stem):
        return SchemaProblem(
            path, f"name {path.stem!r} must be 1 to 64 letters, digits, '_' or '-': rename the file"
        )
    try:
        # The canonical form may be smaller than the file (indentation), but not by this much.
        if path.stat().st_size > 16 * cache.bounds.max_schema_bytes:
            return SchemaProblem(path, "file is too large to hold a schema within the bounds")
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        return SchemaProblem(path, f"not readable as JSON: {exc}")
    try:
        return cache.compile(document)
    except SchemaRejected as exc:
        return SchemaProblem(path, exc.message)
