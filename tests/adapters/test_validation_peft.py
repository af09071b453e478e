"""Validation accepts what PEFT itself writes, and the test factory writes the same layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.adapters.store.base_model import BaseModelSpec
from gateway.adapters.store.safetensors_header import read_header
from gateway.adapters.store.validation import AdapterPolicy, validate_folder
from tests.adapter_factory import write_adapter

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

DIMS = {
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def peft_adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("store") / "tiny"
    config = transformers.LlamaConfig(vocab_size=128, **DIMS)
    model = transformers.LlamaForCausalLM(config)
    lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, task_type="CAUSAL_LM")
    peft.get_peft_model(model, lora).save_pretrained(str(folder))
    return folder


def tiny_policy(root: Path) -> AdapterPolicy:
    return AdapterPolicy.build([root], BaseModelSpec.from_hf_config(DIMS, ["tiny-llama"]), 16)


def test_peft_output_validates(peft_adapter: Path) -> None:
    spec = validate_folder(peft_adapter, tiny_policy(peft_adapter.parent))
    assert spec.rank == 4
    assert spec.target_modules == tuple(sorted(TARGETS))
    assert spec.version == spec.digest[:12]  # PEFT writes no manifest


def test_factory_writes_what_peft_writes(peft_adapter: Path, tmp_path: Path) -> None:
    ours = write_adapter(
        tmp_path / "ours",
        name="ours",
        rank=4,
        targets=TARGETS,
        manifest=False,
        hidden_size=64,
        intermediate_size=96,
        num_heads=4,
        num_kv_heads=2,
        num_layers=2,
    )
    theirs = read_header(peft_adapter / "adapter_model.safetensors").tensors
    mine = read_header(ours / "adapter_model.safetensors").tensors
    assert {n: t.shape for n, t in mine.items()} == {n: t.shape for n, t in theirs.items()}
    peft_config = json.loads((peft_adapter / "adapter_config.json").read_text())
    our_config = json.loads((ours / "adapter_config.json").read_text())
    assert {k: peft_config[k] for k in our_config} == {
        **our_config,
        "base_model_name_or_path": peft_config["base_model_name_or_path"],
        "target_modules": peft_config["target_modules"],
    }
    assert sorted(peft_config["target_modules"]) == our_config["target_modules"]
