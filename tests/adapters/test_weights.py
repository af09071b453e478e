from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from gateway.adapters.errors import AdapterRejected, RejectReason
from gateway.adapters.store.base_model import BaseModelSpec
from gateway.adapters.store.peft_config import PeftLoraConfig, targeted_modules
from gateway.adapters.store.safetensors_header import read_header
from gateway.adapters.store.weights import check_tensors
from tests.adapter_factory import llama_modules, lora_tensors

BASE = BaseModelSpec.smollm2_135m()
CONFIG = PeftLoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
Q = "base_model.model.model.layers.0.self_attn.q_proj"


def check(tmp_path: Path, tensors: dict[str, np.ndarray]) -> None:
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path))
    check_tensors(read_header(path), CONFIG, BASE, targeted_modules(CONFIG, BASE))


def good(layers: int = 2) -> dict[str, np.ndarray]:
    return lora_tensors(
        rank=4, targets=("q_proj", "v_proj"), num_layers=layers, modules=llama_modules()
    )


def reason(tmp_path: Path, tensors: dict[str, np.ndarray]) -> RejectReason:
    with pytest.raises(AdapterRejected) as info:
        check(tmp_path, tensors)
    return info.value.reason


def test_summary(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file(good(), str(path))
    summary = check_tensors(read_header(path), CONFIG, BASE, targeted_modules(CONFIG, BASE))
    assert summary.tensor_count == 8
    assert summary.dtypes == {"F16"}
    assert "model.layers.1.self_attn.v_proj" in summary.modules


def test_a_subset_of_layers_is_fine(tmp_path: Path) -> None:
    check(tmp_path, good(layers=1))


def test_no_tensors(tmp_path: Path) -> None:
    assert reason(tmp_path, {}) is RejectReason.TENSOR_MISMATCH


def test_non_lora_tensor(tmp_path: Path) -> None:
    tensors = {**good(), "base_model.model.lm_head.weight": np.zeros((4, 4), np.float16)}
    assert reason(tmp_path, tensors) is RejectReason.TENSOR_MISMATCH


def test_integer_weights(tmp_path: Path) -> None:
    tensors = {**good(), f"{Q}.lora_A.weight": np.zeros((4, 576), np.int8)}
    assert reason(tmp_path, tensors) is RejectReason.TENSOR_MISMATCH


def test_missing_factor(tmp_path: Path) -> None:
    tensors = good()
    del tensors[f"{Q}.lora_B.weight"]
    assert reason(tmp_path, tensors) is RejectReason.TENSOR_MISMATCH


def test_transposed_factor(tmp_path: Path) -> None:
    tensors = {**good(), f"{Q}.lora_A.weight": np.zeros((576, 4), np.float16)}
    assert reason(tmp_path, tensors) is RejectReason.TENSOR_MISMATCH


@pytest.mark.parametrize(
    "module",
    [
        "base_model.model.model.layers.0.self_attn.c_attn",
        "base_model.model.model.layers.0.mlp.q_proj",
        "base_model.model.model.layers.01.self_attn.q_proj",
        "base_model.model.transformer.h.0.self_attn.q_proj",
    ],
)
def test_modules_the_base_does_not_have(tmp_path: Path, module: str) -> None:
    tensors = {
        **good(),
        f"{module}.lora_A.weight": np.zeros((4, 576), np.float16),
        f"{module}.lora_B.weight": np.zeros((576, 4), np.float16),
    }
    assert reason(tmp_path, tensors) is RejectReason.UNKNOWN_TARGET_MODULES
