from __future__ import annotations

import itertools
import json
import os
import pickle
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters.errors import AdapterRejected, RejectReason
from gateway.adapters.store.base_model import BaseModelSpec
from gateway.adapters.store.validation import (
    AdapterPolicy,
    ValidationLimits,
    validate_adapter,
    validate_folder,
)
from gateway.adapters.store.weights import WEIGHTS_FILE
from tests.adapter_factory import SMOLLM2_HF_ID, expected_digest, write_adapter


def rejected(requested: str, policy: AdapterPolicy, **kw: Any) -> AdapterRejected:
    with pytest.raises(AdapterRejected) as info:
        validate_adapter(requested, policy, **kw)
    return info.value


class _PickleBomb:
    """Unpickling this creates the marker file: the proof a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_valid_adapter_becomes_a_spec(store: Path, policy: AdapterPolicy) -> None:
    folder = write_adapter(
        store / "router", name="router", version="3", serving={"response_schema": "ticket"}
    )
    spec = validate_adapter("router", policy)
    assert spec.name == "router"
    assert spec.version == "3"
    assert spec.path == folder.resolve()
    assert spec.base_model == SMOLLM2_HF_ID
    assert (spec.rank, spec.max_rank, spec.alpha) == (8, 8, 16.0)
    assert spec.target_modules == ("q_proj", "v_proj")
    assert spec.dtypes == ("F16",)
    assert spec.digest == expected_digest(folder)
    assert spec.serving.response_schema == "ticket"
    assert spec.weights_bytes == (folder / "adapter_model.safetensors").stat().st_size


def test_without_manifest_the_version_comes_from_the_digest(
    store: Path, policy: AdapterPolicy
) -> None:
    folder = write_adapter(store / "bare", name="unused", manifest=False)
    spec = validate_adapter("bare", policy, name="caller-name")
    assert spec.name == "caller-name"
    assert spec.version == expected_digest(folder)[:12]
    assert spec.manifest is None
    assert validate_adapter("bare", policy).name == "bare"  # the folder's name by default


def test_manifest_edit_changes_fingerprint_not_digest(store: Path, policy: AdapterPolicy) -> None:
    write_adapter(store / "a", name="a", serving={"system_prompt": "one"})
    first = validate_adapter("a", policy)
    write_adapter(store / "a", name="a", serving={"system_prompt": "two"})
    second = validate_adapter("a", policy)
    assert first.digest == second.digest
    assert first.fingerprint != second.fingerprint


def test_pickled_weights_are_refused_and_never_unpickled(
    store: Path, policy: AdapterPolicy, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    folder = store / "evil"
    folder.mkdir()
    (folder / "adapter_config.json").write_text('{"r": 8}')
    (folder / "adapter_model.bin").write_bytes(pickle.dumps(_PickleBomb(marker)))
    pickle.loads((folder / "adapter_model.bin").read_bytes())  # the bomb works...
    assert marker.exists()
    marker.unlink()
    error = rejected("evil", policy)  # ...but validation never loads it
    assert error.reason is RejectReason.PICKLE_WEIGHTS
    assert "adapter_model.bin" in error.message
    assert not marker.exists()


@pytest.mark.parametrize("extra", ["weights.pt", "optimizer.pth", "state.pkl", "x.BIN"])
def test_any_pickle_file_beside_good_weights_is_refused(
    store: Path, policy: AdapterPolicy, extra: str
) -> None:
    folder = write_adapter(store / "a", name="a")
    (folder / extra).write_bytes(b"\x80\x04N.")
    assert rejected("a", policy).reason is RejectReason.PICKLE_WEIGHTS


@pytest.mark.parametrize("missing", ["adapter_config.json", "adapter_model.safetensors"])
def test_missing_files(store: Path, policy: AdapterPolicy, missing: str) -> None:
    write_adapter(store / "a", name="a")
    (store / "a" / missing).unlink()
    error = rejected("a", policy)
    assert error.reason is RejectReason.MISSING_FILES
    assert missing in error.message


def test_wrong_base_model_in_manifest(store: Path, policy: AdapterPolicy) -> None:
    write_adapter(store / "a", name="a", base_model="Qwen/Qwen2.5-0.5B-Instruct")
    error = rejected("a", policy)
    assert error.reason is RejectReason.BASE_MODEL_MISMATCH
    assert "Qwen/Qwen2.5-0.5B-Instruct" in error.message


def test_wrong_base_model_in_config_without_manifest(store: Path, policy: AdapterPolicy) -> None:
    write_adapter(store / "a", name="a", base_model="meta-llama/Llama-3.2-1B", manifest=False)
    assert rejected("a", policy).reason is RejectReason.BASE_MODEL_MISMATCH


def test_config_and_manifest_disagree_on_base(store: Path, policy: AdapterPolicy) -> None:
    write_adapter(
        store / "a",
        name="a",
        base_model="meta-llama/Llama-3.2-1B",
        manifest_overrides={"base_model": SMOLLM2_HF_ID},
    )
    assert rejected("a", policy).reason is RejectReason.CONFIG_MISMATCH


@pytest.mark.parametrize(
    "cited", ["SmolLM2-135M-Instruct", "/data/models/SmolLM2-135M-Instruct/", None]
)
def test_base_named_by_alias_local_path_or_not_at_all(
    store: Path, policy: AdapterPolicy, cited: str | None
) -> None:
    write_adapter(store / "a", name="a", base_model=cited)
    assert validate_adapter("a", policy).name == "a"


def test_rank_above_engine_limit(store: Path, policy: AdapterPolicy) -> None:
    write_adapter(store / "a", name="a", rank=32, num_layers=2)
    error = rejected("a", policy)
    assert error.reason is RejectReason.RANK_TOO_LARGE
    assert "32" in error.message and "16" in error.message


def test_rank_pattern_counts_toward_the_limit(store: Path, policy: AdapterPolicy) -> None:
    write_adapter(store / "a", name="a", rank_pattern={"v_proj": 64})
    assert rejected("a", policy).reason is RejectReason.RANK_TOO_LARGE


def test_unknown_target_module(store: Path, policy: AdapterPolicy) -> None:
    write_adapter(store / "a", name="a", target_modules=["q_proj", "c_attn"])
    error = rejected("a", policy)
    assert error.reason is RejectReason.UNKNOWN_TARGET_MODULES
    assert "c_attn" in error.message


def test_weights_for_a_deeper_model_are_refused(store: Path, policy: AdapterPolicy) -> None:
    write_adapter(store / "a", name="a", num_layers=31)
    error = rejected("a", policy)
    assert error.reason is RejectReason.UNKNOWN_TARGET_MODULES
    assert "layer 30" in error.message


def test_weights_for_a_wider_model_are_refused(store: Path, policy: AdapterPolicy) -> None:
    write_adapter(store / "a", name="a", hidden_size=640, num_heads=10, num_kv_heads=5)
    assert rejected("a", policy).reason is RejectReason.TENSOR_MISMATCH


def test_config_rank_must_match_tensor_shapes(store: Path, policy: AdapterPolicy) -> None:
    write_adapter(store / "a", name="a", rank=8, r=4)
    error = rejected("a", policy)
    assert error.reason is RejectReason.TENSOR_MISMATCH
    assert "rank 4" in error.message


def test_tensor_for_a_module_not_targeted(store: Path, policy: AdapterPolicy) -> None:
    write_adapter(store / "a", name="a", targets=("q_proj", "v_proj"), target_modules=["q_proj"])
    assert rejected("a", policy).reason is RejectReason.CONFIG_MISMATCH


def test_dora_is_unsupported(store: Path, policy: AdapterPolicy) -> None:
    write_adapter(store / "a", name="a", use_dora=True)
    error = rejected("a", policy)
    assert error.reason is RejectReason.UNSUPPORTED_FEATURE
    assert "DoRA" in error.message


def test_not_a_lora_config(store: Path, policy: AdapterPolicy) -> None:
    write_adapter(store / "a", name="a", peft_type="PREFIX_TUNING")
    assert rejected("a", policy).reason is RejectReason.INVALID_CONFIG
    (store / "a" / "adapter_config.json").write_text("[1, 2")
    assert rejected("a", policy).reason is RejectReason.INVALID_CONFIG


def test_stated_digest_is_checked(store: Path, policy: AdapterPolicy) -> None:
    folder = write_adapter(store / "a", name="a", digest=True)
    assert validate_adapter("a", policy).digest == expected_digest(folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    config["lora_alpha"] = 32
    (folder / "adapter_config.json").write_text(json.dumps(config))
    error = rejected("a", policy)
    assert error.reason is RejectReason.DIGEST_MISMATCH


def test_truncated_weights(store: Path, policy: AdapterPolicy) -> None:
    folder = write_adapter(store / "a", name="a")
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    assert rejected("a", policy).reason is RejectReason.CORRUPT_WEIGHTS


def test_weights_over_the_size_limit(store: Path, base: BaseModelSpec) -> None:
    write_adapter(store / "a", name="a")
    small = AdapterPolicy.build([store], base, 16, ValidationLimits(max_weights_bytes=100_000))
    assert rejected("a", small).reason is RejectReason.FILE_TOO_LARGE


def test_oversized_config(store: Path, base: BaseModelSpec) -> None:
    write_adapter(store / "a", name="a", padding="x" * 5000)
    small = AdapterPolicy.build([store], base, 16, ValidationLimits(max_config_bytes=4096))
    assert rejected("a", small).reason is RejectReason.FILE_TOO_LARGE


def test_invalid_manifest(store: Path, policy: AdapterPolicy) -> None:
    write_adapter(store / "a", name="a", manifest_overrides={"colour": "blue"})
    error = rejected("a", policy)
    assert error.reason is RejectReason.INVALID_MANIFEST
    assert "colour" in error.message


def test_caller_name_must_match_manifest(store: Path, policy: AdapterPolicy) -> None:
    write_adapter(store / "a", name="a")
    assert rejected("a", policy, name="b").reason is RejectReason.CONFIG_MISMATCH


@pytest.mark.parametrize("name", ["Upper", "a@1", "-dash", "x" * 65, "SmolLM2-135M-Instruct"])
def test_bad_or_reserved_names(store: Path, policy: AdapterPolicy, name: str) -> None:
    write_adapter(store / "a", name="a", manifest=False)
    assert rejected("a", policy, name=name).reason is RejectReason.INVALID_NAME


def test_config_symlinked_out_of_the_store(
    store: Path, policy: AdapterPolicy, tmp_path: Path
) -> None:
    folder = write_adapter(store / "a", name="a")
    outside = tmp_path / "secret.json"
    (folder / "adapter_config.json").rename(outside)
    os.symlink(outside, folder / "adapter_config.json")
    assert rejected("a", policy).reason is RejectReason.PATH_OUTSIDE_ROOTS


def test_weights_may_be_symlinked_within_the_store(store: Path, policy: AdapterPolicy) -> None:
    folder = write_adapter(store / "a", name="a")
    blobs = store / ".blobs"
    blobs.mkdir()
    (folder / "adapter_model.safetensors").rename(blobs / "w.safetensors")
    os.symlink(blobs / "w.safetensors", folder / "adapter_model.safetensors")
    assert validate_folder(folder.resolve(), policy).name == "a"


def test_every_reason_is_a_short_label() -> None:
    assert all(r.value.replace("_", "").isalpha() for r in RejectReason)
    assert len({r.value for r in RejectReason}) == len(RejectReason) < 32


def test_rejection_is_an_openai_style_error() -> None:
    error = AdapterRejected(RejectReason.RANK_TOO_LARGE, "too big")
    envelope = error.envelope()["error"]
    assert error.status_code == 400
    assert envelope["code"] == "rank_too_large"
    assert envelope["message"] == "too big"


def test_config_symlink_loop(store: Path, policy: AdapterPolicy) -> None:
    folder = write_adapter(store / "a", name="a")
    (folder / "adapter_config.json").unlink()
    os.symlink(folder / "adapter_config.json", folder / "adapter_config.json")
    assert rejected("a", policy).reason is RejectReason.INVALID_PATH


def test_dangling_weights_symlink(store: Path, policy: AdapterPolicy) -> None:
    folder = write_adapter(store / "a", name="a")
    (folder / "adapter_model.safetensors").unlink()
    os.symlink(store / "gone.safetensors", folder / "adapter_model.safetensors")
    assert rejected("a", policy).reason is RejectReason.MISSING_FILES


def test_the_digest_is_of_the_bytes_that_were_checked(store: Path, policy: AdapterPolicy,
                                                     tmp_path: Path) -> None:
    """Weights swapped during validation never yield a spec whose digest vouches for
    unchecked bytes: the header is checked and hashed in one read."""
    good = write_adapter(store / "alpha", name="alpha", num_layers=2)
    good_weights = (good / WEIGHTS_FILE).read_bytes()
    # The same size, one tensor renamed in the header: refused when checked.
    bad_weights = good_weights.replace(b"q_proj.lora_A", b"x_proj.lora_A", 1)
    assert bad_weights != good_weights and len(bad_weights) == len(good_weights)
    good_digest = expected_digest(good)
    variants = [tmp_path / "good.safetensors", tmp_path / "bad.safetensors"]
    variants[0].write_bytes(good_weights)
    variants[1].write_bytes(bad_weights)
    stop = threading.Event()

    def swap() -> None:  # atomic renames, as a copy tool or an attacker would do
        for i in itertools.count():
            if stop.is_set():
                return
            scratch = good / f".swap-{i % 2}"
            shutil.copyfile(variants[i % 2], scratch)
            os.replace(scratch, good / WEIGHTS_FILE)

    swapper = threading.Thread(target=swap)
    swapper.start()
    accepted = 0
    try:
        for _ in range(300):
            try:
                spec = validate_folder(good, policy)
            except AdapterRejected:
                continue
            accepted += 1
            assert spec.digest == good_digest
    finally:
        stop.set()
        swapper.join()
    assert accepted  # the good weights were seen, and only they were accepted
