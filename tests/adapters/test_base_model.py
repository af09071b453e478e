from __future__ import annotations

import pytest

from gateway.adapters.store.base_model import BaseModelSpec

SMOLLM2_CONFIG = {
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "num_hidden_layers": 30,
    "vocab_size": 49152,
}


def test_smollm2_modules() -> None:
    base = BaseModelSpec.smollm2_135m()
    assert base.num_hidden_layers == 30
    assert base.modules["self_attn.q_proj"] == (576, 576)
    assert base.modules["self_attn.k_proj"] == (576, 192)
    assert base.modules["self_attn.v_proj"] == (576, 192)
    assert base.modules["self_attn.o_proj"] == (576, 576)
    assert base.modules["mlp.gate_proj"] == (576, 1536)
    assert base.modules["mlp.down_proj"] == (1536, 576)
    assert len(base.module_names()) == 30 * 7
    assert "model.layers.29.mlp.up_proj" in base.module_names()


def test_from_hf_config_matches_the_builtin() -> None:
    built = BaseModelSpec.from_hf_config(SMOLLM2_CONFIG, ["x"])
    assert built.modules == BaseModelSpec.smollm2_135m().modules


def test_explicit_head_dim() -> None:
    base = BaseModelSpec.from_hf_config({**SMOLLM2_CONFIG, "head_dim": 128}, ["x"])
    assert base.modules["self_attn.q_proj"] == (576, 9 * 128)


@pytest.mark.parametrize(
    ("cited", "accepted"),
    [
        ("SmolLM2-135M-Instruct", True),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", True),
        ("/models/smollm2-135m-instruct/", True),
        ("HuggingFaceTB/SmolLM2-135M", False),
        ("HuggingFaceTB/SmolLM2-360M-Instruct", False),
        ("", False),
    ],
)
def test_accepted_names(cited: str, accepted: bool) -> None:
    assert BaseModelSpec.smollm2_135m().accepts(cited) is accepted
