from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.adapters.errors import AdapterRejected, RejectReason
from gateway.adapters.store.base_model import BaseModelSpec
from gateway.adapters.store.peft_config import (
    PeftLoraConfig,
    module_rank,
    parse_peft_config,
    targeted_modules,
    unsupported_features,
)
from tests.adapter_factory import peft_config

BASE = BaseModelSpec.smollm2_135m()


def config(**changes: Any) -> PeftLoraConfig:
    fields = peft_config(rank=8, alpha=16, targets=("q_proj", "v_proj"), base_model=None)
    return parse_peft_config(json.dumps({**fields, **changes}).encode())


def short(modules: frozenset[str]) -> set[str]:
    return {m.rsplit(".", 1)[-1] for m in modules}


def test_listed_targets() -> None:
    chosen = targeted_modules(config(), BASE)
    assert len(chosen) == 60
    assert short(chosen) == {"q_proj", "v_proj"}


def test_dotted_suffix_targets() -> None:
    chosen = targeted_modules(config(target_modules=["mlp.down_proj"]), BASE)
    assert short(chosen) == {"down_proj"}


def test_regex_target() -> None:
    chosen = targeted_modules(config(target_modules=r".*\.(q|k)_proj"), BASE)
    assert short(chosen) == {"q_proj", "k_proj"}


def test_all_linear() -> None:
    assert len(targeted_modules(config(target_modules="all-linear"), BASE)) == 30 * 7


def test_layers_to_transform_and_exclusions() -> None:
    chosen = targeted_modules(config(layers_to_transform=[0, 1], exclude_modules=["v_proj"]), BASE)
    assert chosen == {"model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj"}


@pytest.mark.parametrize("targets", [["q_proj", "query_key_value"], r"transformer\.h\..*", []])
def test_unknown_targets(targets: Any) -> None:
    with pytest.raises(AdapterRejected) as info:
        targeted_modules(config(target_modules=targets), BASE)
    assert info.value.reason is RejectReason.UNKNOWN_TARGET_MODULES
    assert "q_proj" in info.value.message  # says what would work


def test_invalid_regex() -> None:
    with pytest.raises(AdapterRejected) as info:
        targeted_modules(config(target_modules="(unclosed"), BASE)
    assert info.value.reason is RejectReason.INVALID_CONFIG


@pytest.mark.timeout(30)  # a hang guard: Python's re backtracks for hours on these
@pytest.mark.parametrize("field", ["target_modules", "exclude_modules"])
def test_module_patterns_are_matched_in_linear_time(field: str) -> None:
    # Passes the catastrophic-pattern analysis, yet Python's re needs minutes per module name.
    hostile = "((.+){1})+x"
    if field == "target_modules":
        with pytest.raises(AdapterRejected, match="matches no module"):
            targeted_modules(config(target_modules=hostile), BASE)
    else:
        assert short(targeted_modules(config(exclude_modules=hostile), BASE)) == {"q_proj",
                                                                                 "v_proj"}


@pytest.mark.timeout(30)
def test_rank_pattern_keys_are_matched_in_linear_time() -> None:
    assert module_rank(config(rank_pattern={"((.+){1})+x": 4}), "model.layers.0.q_proj") == 8


@pytest.mark.parametrize("pattern", ["(?=q)q_proj", "(q)\\1_proj", "(a+)+"])
def test_module_patterns_that_could_stall_are_refused(pattern: str) -> None:
    with pytest.raises(AdapterRejected) as refused:
        targeted_modules(config(target_modules=pattern), BASE)
    assert refused.value.reason is RejectReason.INVALID_CONFIG


def test_rank_pattern() -> None:
    cfg = config(rank_pattern={"v_proj": 4})
    assert module_rank(cfg, "model.layers.3.self_attn.v_proj") == 4
    assert module_rank(cfg, "model.layers.3.self_attn.q_proj") == 8
    assert cfg.max_rank == 8


def test_plain_lora_has_no_unsupported_features() -> None:
    assert unsupported_features(config()) == []


@pytest.mark.parametrize(
    ("changes", "phrase"),
    [
        ({"use_dora": True}, "DoRA"),
        ({"bias": "all"}, "bias"),
        ({"lora_bias": True}, "bias"),
        ({"modules_to_save": ["lm_head"]}, "modules to save"),
        ({"init_lora_weights": "pissa"}, "pissa"),
        ({"fan_in_fan_out": True}, "fan_in_fan_out"),
        ({"layer_replication": [[0, 4]]}, "layer_replication"),
        ({"target_parameters": ["experts.w1"]}, "target_parameters"),
    ],
)
def test_unsupported_features(changes: dict[str, Any], phrase: str) -> None:
    found = unsupported_features(config(**changes))
    assert any(phrase in item for item in found)


def test_gaussian_init_is_plain_lora() -> None:
    assert unsupported_features(config(init_lora_weights="gaussian")) == []


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"lora_alpha": 16, "target_modules": ["q_proj"]}',
        b'{"r": 0, "lora_alpha": 16, "target_modules": ["q_proj"]}',
        b'{"r": 8, "lora_alpha": 16, "target_modules": ["q_proj"], "peft_type": "IA3"}',
    ],
)
def test_invalid_configs(raw: bytes) -> None:
    with pytest.raises(AdapterRejected) as info:
        parse_peft_config(raw)
    assert info.value.reason is RejectReason.INVALID_CONFIG
