from __future__ import annotations

from pathlib import Path

import pytest

from gateway.adapters.errors import AdapterRejected, RejectReason
from gateway.adapters.store.manifest import check_name, parse_manifest

FULL = """
name: ticket-router
version: 1
base_model: HuggingFaceTB/SmolLM2-135M-Instruct
description: Routes tickets.
digest: sha256:%s
serving:
  system_prompt: Route the ticket.
  response_schema: ticket
  validate_by_default: true
  sampling:
    temperature: 0.2
    top_p: 0.9
    max_tokens: 200
""" % ("ab" * 32)


def invalid(text: str) -> str:
    with pytest.raises(AdapterRejected) as info:
        parse_manifest(text)
    assert info.value.reason is RejectReason.INVALID_MANIFEST
    return info.value.message


def test_full_manifest() -> None:
    manifest = parse_manifest(FULL)
    assert manifest.version == "1"  # an integer in YAML is taken as text
    assert manifest.digest_hex == "ab" * 32
    assert manifest.serving.response_schema == "ticket"
    assert manifest.serving.validate_by_default is True
    assert manifest.serving.sampling.max_tokens == 200


def test_minimal_manifest_has_empty_serving_defaults() -> None:
    manifest = parse_manifest("name: a\nversion: '2.0'\nbase_model: m\n")
    assert manifest.digest_hex is None
    assert manifest.serving.system_prompt is None
    assert manifest.serving.sampling.temperature is None


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("name: a\nversion: 1\nbase_model: m\nextra: 1\n", "extra"),
        ("name: a\nversion: 1\nbase_model: m\nserving: {top_k: 3}\n", "top_k"),
        ("name: a\nversion: 1.10\nbase_model: m\n", "version"),
        ("name: a@b\nversion: 1\nbase_model: m\n", "name"),
        ("name: a\nversion: 1\n", "base_model"),
        ("name: a\nversion: 1\nbase_model: m\ndigest: md5:abc\n", "digest"),
        ("name: a\nversion: 1\nbase_model: m\nserving: {sampling: {temperature: 9}}\n", "temp"),
        ("name: a\nversion: 1\nbase_model: m\nserving: {response_schema: ../x}\n", "schema"),
        ("- a\n- b\n", "mapping"),
        ("name: [unclosed\n", "YAML"),
    ],
)
def test_invalid_manifests(text: str, mentions: str) -> None:
    assert mentions in invalid(text)


def test_yaml_aliases_are_refused() -> None:
    bomb = "a: &x [1, 2]\nb: [*x, *x]\nname: a\nversion: 1\nbase_model: m\n"
    assert "aliases" in invalid(bomb)


def test_yaml_tags_cannot_build_objects(tmp_path: Path) -> None:
    # An unsafe loader would call os.mkdir here; the safe one refuses the tag unread.
    built = tmp_path / "built-by-yaml"
    message = invalid(f"name: !!python/object/apply:os.mkdir ['{built}']\nversion: 1\n"
                      "base_model: m\n")
    assert not built.exists()
    assert "python/object/apply" in message


@pytest.mark.parametrize("name", ["a", "ticket-router", "v1.2_x", "9" * 64])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "A", "a@1", "a/b", ".a", "a b", "9" * 65])
def test_bad_names(name: str) -> None:
    with pytest.raises(AdapterRejected) as info:
        check_name(name)
    assert info.value.reason is RejectReason.INVALID_NAME
