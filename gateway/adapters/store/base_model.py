"""What the served base model offers to adapters: its accepted names and its linear modules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

# Llama decoder layers: module path inside a layer -> which dimensions it maps between.
_LLAMA_MODULES: Mapping[str, tuple[str, str]] = {
    "self_attn.q_proj": ("hidden", "q"),
    "self_attn.k_proj": ("hidden", "kv"),
    "self_attn.v_proj": ("hidden", "kv"),
    "self_attn.o_proj": ("q", "hidden"),
    "mlp.gate_proj": ("hidden", "intermediate"),
    "mlp.up_proj": ("hidden", "intermediate"),
    "mlp.down_proj": ("intermediate", "hidden"),
}
LAYER_PREFIX = "model.layers"
SMOLLM2_NAMES = ("SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct")


@dataclass(frozen=True)
class BaseModelSpec:
    """The served base: names an adapter may cite for it, layer count and module shapes.

    ``modules`` maps a module path inside one decoder layer (``self_attn.q_proj``) to its
    ``(in_features, out_features)``; full module names are
    ``model.layers.{i}.{path}`` for ``i < num_hidden_layers``.
    """

    names: frozenset[str]
    num_hidden_layers: int
    modules: Mapping[str, tuple[int, int]]

    @classmethod
    def llama(
        cls,
        names: Iterable[str],
        *,
        hidden_size: int,
        intermediate_size: int,
        num_attention_heads: int,
        num_key_value_heads: int,
        num_hidden_layers: int,
        head_dim: int | None = None,
    ) -> BaseModelSpec:
        head = head_dim or hidden_size // num_attention_heads
        dims = {
            "hidden": hidden_size,
            "intermediate": intermediate_size,
            "q": num_attention_heads * head,
            "kv": num_key_value_heads * head,
        }
        modules = {path: (dims[src], dims[dst]) for path, (src, dst) in _LLAMA_MODULES.items()}
        return cls(frozenset(names), num_hidden_layers, modules)

    @classmethod
    def from_hf_config(cls, config: Mapping[str, Any], names: Iterable[str]) -> BaseModelSpec:
        """Build from a Llama-family ``config.json`` (as written next to converted weights)."""
        return cls.llama(
            names,
            hidden_size=int(config["hidden_size"]),
            intermediate_size=int(config["intermediate_size"]),
            num_attention_heads=int(config["num_attention_heads"]),
            num_key_value_heads=int(
                config.get("num_key_value_heads") or config["num_attention_heads"]
            ),
            num_hidden_layers=int(config["num_hidden_layers"]),
            head_dim=int(config["head_dim"]) if config.get("head_dim") else None,
        )

    @classmethod
    def smollm2_135m(cls, names: Iterable[str] | None = None) -> BaseModelSpec:
        """SmolLM2-135M(-Instruct): the default served base."""
        return cls.llama(
            SMOLLM2_NAMES if names is None else names,
            hidden_size=576,
            intermediate_size=1536,
            num_attention_heads=9,
            num_key_value_heads=3,
            num_hidden_layers=30,
        )

    def accepts(self, base_model: str) -> bool:
        """True when ``base_model`` names this base: exactly, or by its last path component.

        The last-component rule lets adapters trained from a local copy
        (``/data/models/SmolLM2-135M-Instruct``) match the hub id's final part; the
        comparison ignores case, as hub ids do.
        """
        if base_model in self.names:
            return True
        leaf = _leaf(base_model)
        return bool(leaf) and leaf in {_leaf(name) for name in self.names}

    def module_names(self) -> list[str]:
        """Every adaptable module's full name, layer by layer."""
        return [
            f"{LAYER_PREFIX}.{layer}.{path}"
            for layer in range(self.num_hidden_layers)
            for path in self.modules
        ]

    def short_names(self) -> frozenset[str]:
        """The modules' last name components (``q_proj``, ...), as PEFT configs list them."""
        return frozenset(path.rsplit(".", 1)[-1] for path in self.modules)


def _leaf(name: str) -> str:
    return PurePosixPath(name.strip().rstrip("/")).name.casefold()
