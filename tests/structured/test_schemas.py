from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from gateway.structured.errors import UnknownSchema
from gateway.structured.schemas import SchemaRegistry
from gateway.structured.validation import ValidatorCache


def write(directory: Path, name: str, content: object) -> Path:
    path = directory / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_the_shipped_schemas_all_register(registry: SchemaRegistry) -> None:
    assert registry.problems == ()
    assert {"ticket", "sentiment", "contact"} <= registry.names()


def test_load_reports_bad_files_and_keeps_the_good(
    tmp_path: Path, cache: ValidatorCache, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "ticket.json", {"type": "object", "required": ["category"]})
    write(tmp_path, "typo.json", {"type": "stsring"})
    write(tmp_path, "broken.json", '{"type": "object",')
    write(tmp_path, "lookbehind.json", {"type": "string", "pattern": "(?<=a)b"})
    write(tmp_path, "bad name!.json", {"type": "object"})
    write(tmp_path, "notes.txt", "not a schema")
    with caplog.at_level(logging.WARNING):
        registry = SchemaRegistry.load(tmp_path, cache)
    assert registry.names() == frozenset({"ticket"})
    problems = {p.path.name: p.message for p in registry.problems}
    assert set(problems) == {"typo.json", "broken.json", "lookbehind.json", "bad name!.json"}
    assert '"stsring" is not valid' in problems["typo.json"]
    assert "not readable as JSON" in problems["broken.json"]
    assert "look-arounds" in problems["lookbehind.json"]
    assert "rename the file" in problems["bad name!.json"]
    assert sum("schema file refused" in r.getMessage() for r in caplog.records) == 4


def test_a_missing_directory_is_a_problem_not_a_crash(
    tmp_path: Path, cache: ValidatorCache
) -> None:
    registry = SchemaRegistry.load(tmp_path / "absent", cache)
    assert len(registry) == 0
    assert "not found" in registry.problems[0].message


def test_oversized_file_is_refused_without_parsing(tmp_path: Path, cache: ValidatorCache) -> None:
    write(tmp_path, "huge.json", " " * (16 * cache.bounds.max_schema_bytes + 1) + "{}")
    registry = SchemaRegistry.load(tmp_path, cache)
    assert "too large" in registry.problems[0].message


def test_empty_schema_is_registered_with_a_warning(
    tmp_path: Path, cache: ValidatorCache, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "anything.json", {})
    with caplog.at_level(logging.WARNING):
        registry = SchemaRegistry.load(tmp_path, cache)
    assert "anything" in registry
    assert any("accepts any JSON" in r.getMessage() for r in caplog.records)


def test_lookup(registry: SchemaRegistry) -> None:
    ticket = registry.get("ticket")
    assert ticket is not None and registry.require("ticket") is ticket
    assert registry.get("nope") is None


def test_unknown_name_names_the_param_and_the_known_ones(registry: SchemaRegistry) -> None:
    with pytest.raises(UnknownSchema) as info:
        registry.require("tickets", param="response_format.json_schema.name")
    assert info.value.param == "response_format.json_schema.name"
    assert "'tickets'" in info.value.message and "ticket" in info.value.message
    assert info.value.status_code == 400


def test_unreadable_file_is_a_problem(tmp_path: Path, cache: ValidatorCache) -> None:
    (tmp_path / "dangling.json").symlink_to(tmp_path / "missing-target.json")
    registry = SchemaRegistry.load(tmp_path, cache)
    assert "not readable as JSON" in registry.problems[0].message
