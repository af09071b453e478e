"""Write PEFT-format LoRA adapters for tests without PEFT, torch or a model.

Shared by the unit tests and the integration tier: ``write_adapter`` produces exactly
what PEFT's ``save_pretrained`` writes for a Llama model (tensor names, shapes, config
fields), sized by default for SmolLM2-135M-Instruct.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from safetensors.numpy import save_file

SMOLLM2_HF_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
MANIFEST_FILE = "adapter.yaml"


def llama_modules(
    hidden_size: int = 576,
    intermediate_size: int = 1536,
    num_heads: int = 9,
    num_kv_heads: int = 3,
) -> dict[str, tuple[str, int, int]]:
    """Short module name -> (parent path in a layer, in_features, out_features)."""
    head_dim = hidden_size // num_heads
    q, kv = num_heads * head_dim, num_kv_heads * head_dim
    return {
        "q_proj": ("self_attn", hidden_size, q),
        "k_proj": ("self_attn", hidden_size, kv),
        "v_proj": ("self_attn", hidden_size, kv),
        "o_proj": ("self_attn", q, hidden_size),
        "gate_proj": ("mlp", hidden_size, intermediate_size),
        "up_proj": ("mlp", hidden_size, intermediate_size),
        "down_proj": ("mlp", intermediate_size, hidden_size),
    }


def lora_tensors(
    *,
    rank: int,
    targets: Iterable[str],
    num_layers: int,
    modules: Mapping[str, tuple[str, int, int]],
    seed: int = 0,
    nonzero_b: bool = True,
    dtype: str = "float16",
) -> dict[str, np.ndarray]:
    """LoRA factors named as PEFT names them: A is [r, in], B is [out, r]."""
    rng = np.random.default_rng(seed)
    tensors: dict[str, np.ndarray] = {}
    for layer in range(num_layers):
        for target in sorted(targets):
            parent, fan_in, fan_out = modules[target]
            prefix = f"base_model.model.model.layers.{layer}.{parent}.{target}"
            a = rng.normal(0.0, 1.0 / np.sqrt(fan_in), size=(rank, fan_in))
            b = (
                rng.normal(0.0, 0.02, size=(fan_out, rank))
                if nonzero_b
                else np.zeros((fan_out, rank))
            )
            tensors[f"{prefix}.lora_A.weight"] = a.astype(dtype)
            tensors[f"{prefix}.lora_B.weight"] = b.astype(dtype)
    return tensors


def peft_config(
    *, rank: int, alpha: float, targets: Iterable[str], base_model: str | None
) -> dict[str, Any]:
    """The fields PEFT 0.1x writes for a plain LoRA on a causal LM."""
    return {
        "alpha_pattern": {},
        "base_model_name_or_path": base_model,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layers_pattern": None,
        "layers_to_transform": None,
        "lora_alpha": alpha,
        "lora_bias": False,
        "lora_dropout": 0.0,
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": rank,
        "rank_pattern": {},
        "revision": None,
        "target_modules": sorted(targets),
        "task_type": "CAUSAL_LM",
        "use_dora": False,
        "use_rslora": False,
    }


def write_adapter(
    path: Path,
    *,
    name: str,
    version: str = "1",
    rank: int = 8,
    alpha: float | None = None,
    base_model: str | None = SMOLLM2_HF_ID,
    hidden_size: int = 576,
    intermediate_size: int = 1536,
    num_heads: int = 9,
    num_kv_heads: int = 3,
    num_layers: int = 30,
    targets: Iterable[str] = ("q_proj", "v_proj"),
    seed: int = 0,
    nonzero_b: bool = True,
    dtype: str = "float16",
    manifest: bool = True,
    description: str = "Test adapter with random weights.",
    serving: Mapping[str, Any] | None = None,
    digest: bool = False,
    manifest_overrides: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> Path:
    """Write a valid PEFT LoRA adapter folder at ``path`` and return it.

    ``overrides`` replace fields of adapter_config.json; ``manifest_overrides`` fields of
    adapter.yaml (a value of None deletes the field). ``digest=True`` records the content
    digest in the manifest, computed here independently of the gateway's code.
    """
    path.mkdir(parents=True, exist_ok=True)
    targets = tuple(targets)
    modules = llama_modules(hidden_size, intermediate_size, num_heads, num_kv_heads)
    config = peft_config(rank=rank, alpha=alpha or 2 * rank, targets=targets, base_model=base_model)
    config.update(overrides)
    (path / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    tensors = lora_tensors(
        rank=rank,
        targets=targets,
        num_layers=num_layers,
        modules=modules,
        seed=seed,
        nonzero_b=nonzero_b,
        dtype=dtype,
    )
    save_file(tensors, str(path / WEIGHTS_FILE))
    if manifest:
        fields: dict[str, Any] = {
            "name": name,
            "version": version,
            "base_model": base_model or SMOLLM2_HF_ID,
            "description": description,
        }
        if digest:
            fields["digest"] = "sha256:" + expected_digest(path)
        if serving is not None:
            fields["serving"] = dict(serving)
        write_manifest(path, fields, manifest_overrides or {})
    return path


def write_manifest(path: Path, fields: Mapping[str, Any], overrides: Mapping[str, Any]) -> None:
    merged = {**fields, **overrides}
    document = {key: value for key, value in merged.items() if value is not None}
    (path / MANIFEST_FILE).write_text(yaml.safe_dump(document, sort_keys=False))


def expected_digest(path: Path) -> str:
    """The documented content digest: sha256 of ``sha256sum`` lines for the two files."""
    lines = "".join(
        f"{hashlib.sha256((path / name).read_bytes()).hexdigest()}  {name}\n"
        for name in sorted((CONFIG_FILE, WEIGHTS_FILE))
    )
    return hashlib.sha256(lines.encode()).hexdigest()
