from __future__ import annotations

from pathlib import Path

import pytest

from gateway.adapters.errors import AdapterRejected, RejectReason
from gateway.adapters.serving.staging import discard_staged, stage_adapter
from gateway.adapters.store.validation import AdapterPolicy, validate_adapter
from tests.adapter_factory import expected_digest, write_adapter


def test_staged_copy_holds_exactly_the_validated_files(
    store: Path, policy: AdapterPolicy, tmp_path: Path
) -> None:
    write_adapter(store / "a", name="a", num_layers=2)
    (store / "a" / "README.md").write_text("not needed by the engine")
    spec = validate_adapter("a", policy)
    staged = stage_adapter(spec, tmp_path / "staging")
    assert sorted(p.name for p in staged.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    assert expected_digest(staged) == spec.digest
    assert staged.name == f"a--{spec.digest}"


def test_staging_is_idempotent(store: Path, policy: AdapterPolicy, tmp_path: Path) -> None:
    write_adapter(store / "a", name="a", num_layers=2)
    spec = validate_adapter("a", policy)
    first = stage_adapter(spec, tmp_path / "staging")
    mtime = (first / "adapter_model.safetensors").stat().st_mtime_ns
    assert stage_adapter(spec, tmp_path / "staging") == first
    assert (first / "adapter_model.safetensors").stat().st_mtime_ns == mtime
    assert [p.name for p in (tmp_path / "staging").iterdir()] == [first.name]


def test_files_changed_after_validation_are_not_staged(
    store: Path, policy: AdapterPolicy, tmp_path: Path
) -> None:
    write_adapter(store / "a", name="a", num_layers=2)
    spec = validate_adapter("a", policy)
    write_adapter(store / "a", name="a", num_layers=2, seed=1)
    with pytest.raises(AdapterRejected) as info:
        stage_adapter(spec, tmp_path / "staging")
    assert info.value.reason is RejectReason.DIGEST_MISMATCH
    assert list((tmp_path / "staging").iterdir()) == []


def test_a_damaged_staged_copy_is_replaced(
    store: Path, policy: AdapterPolicy, tmp_path: Path
) -> None:
    write_adapter(store / "a", name="a", num_layers=2)
    spec = validate_adapter("a", policy)
    staged = stage_adapter(spec, tmp_path / "staging")
    (staged / "adapter_model.safetensors").write_bytes(b"garbage")
    assert stage_adapter(spec, tmp_path / "staging") == staged
    assert expected_digest(staged) == spec.digest


def test_discard(store: Path, policy: AdapterPolicy, tmp_path: Path) -> None:
    write_adapter(store / "a", name="a", num_layers=2)
    staged = stage_adapter(validate_adapter("a", policy), tmp_path / "staging")
    discard_staged(store / "a", tmp_path / "staging")  # not a staged copy: left alone
    assert (store / "a").is_dir()
    discard_staged(staged, tmp_path / "staging")
    assert not staged.exists()
