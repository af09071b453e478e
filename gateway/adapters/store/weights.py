"""Check that an adapter's tensors are exactly LoRA pairs for the modules its config targets."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.adapters.errors import AdapterRejected, RejectReason
from gateway.adapters.store.base_model import LAYER_PREFIX, BaseModelSpec
from gateway.adapters.store.peft_config import PeftLoraConfig, module_rank
from gateway.adapters.store.safetensors_header import SafetensorsHeader, TensorInfo

WEIGHTS_FILE = "adapter_model.safetensors"
LORA_DTYPES = frozenset({"F16", "BF16", "F32"})

_TENSOR_RE = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<kind>[AB])\.weight$")
_MODULE_RE = re.compile(rf"^{re.escape(LAYER_PREFIX)}\.(?P<layer>0|[1-9][0-9]*)\.(?P<path>.+)$")


@dataclass(frozen=True)
class WeightsSummary:
    """What the weights file adapts, for the adapter's spec and listings."""

    modules: frozenset[str]
    dtypes: frozenset[str]
    tensor_count: int


def check_tensors(
    header: SafetensorsHeader,
    config: PeftLoraConfig,
    base: BaseModelSpec,
    targeted: frozenset[str],
) -> WeightsSummary:
    """Raise a typed rejection unless every tensor is a well-shaped LoRA factor of a target."""
    pairs: dict[str, dict[str, TensorInfo]] = {}
    paths: dict[str, str] = {}
    for info in header.tensors.values():
        module, kind = _parse_name(info)
        paths[module] = _check_module(info, module, base, targeted)
        pairs.setdefault(module, {})[kind] = info
    if not pairs:
        raise _mismatch(f"{WEIGHTS_FILE} holds no LoRA tensors; save the trained adapter again")
    for module, factors in pairs.items():
        _check_pair(module, factors, module_rank(config, module), base.modules[paths[module]])
    dtypes = frozenset(info.dtype for info in header.tensors.values())
    return WeightsSummary(frozenset(pairs), dtypes, len(header.tensors))


def _parse_name(info: TensorInfo) -> tuple[str, str]:
    match = _TENSOR_RE.match(info.name)
    if match is None:
        raise _mismatch(
            f"tensor {info.name!r} is not a LoRA factor; only "
            "'base_model.model.<module>.lora_A.weight' and '...lora_B.weight' are served"
        )
    if info.dtype not in LORA_DTYPES:
        raise _mismatch(f"tensor {info.name!r} has dtype {info.dtype}; use F16, BF16 or F32")
    return match["module"], match["kind"]


def _check_module(
    info: TensorInfo, module: str, base: BaseModelSpec, targeted: frozenset[str]
) -> str:
    """The module's path inside its layer, once it is known to be an adapted base module."""
    match = _MODULE_RE.match(module)
    if match is None or match["path"] not in base.modules:
        raise AdapterRejected(
            RejectReason.UNKNOWN_TARGET_MODULES,
            f"tensor {info.name!r} adapts {module!r}, which the base model does not have; "
            f"adaptable modules are {sorted(base.short_names())} in {LAYER_PREFIX}.<n>",
        )
    if int(match["layer"]) >= base.num_hidden_layers:
        raise AdapterRejected(
            RejectReason.UNKNOWN_TARGET_MODULES,
            f"tensor {info.name!r} adapts layer {match['layer']} but the base model has "
            f"{base.num_hidden_layers} layers; was the adapter trained on another base?",
        )
    if module not in targeted:
        raise AdapterRejected(
            RejectReason.CONFIG_MISMATCH,
            f"tensor {info.name!r} adapts {module!r}, which target_modules in "
            "adapter_config.json does not select; fix target_modules or drop the tensor",
        )
    return match["path"]


def _check_pair(
    module: str, factors: Mapping[str, TensorInfo], rank: int, features: tuple[int, int]
) -> None:
    if set(factors) != {"A", "B"}:
        missing = "lora_B" if "A" in factors else "lora_A"
        raise _mismatch(f"module {module!r} has no {missing} tensor; each needs lora_A and lora_B")
    in_features, out_features = features
    expected = {"A": (rank, in_features), "B": (out_features, rank)}
    for kind, shape in expected.items():
        if factors[kind].shape != shape:
            raise _mismatch(
                f"tensor {factors[kind].name!r} has shape {list(factors[kind].shape)}, "
                f"expected {list(shape)} for rank {rank} on this base model"
            )


def _mismatch(message: str) -> AdapterRejected:
    return AdapterRejected(RejectReason.TENSOR_MISMATCH, message)
