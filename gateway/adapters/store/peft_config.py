"""Read ``adapter_config.json`` (PEFT's LoRA config) and match its target modules to the base."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import re2
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.adapters.errors import AdapterRejected, RejectReason
from gateway.adapters.store.base_model import LAYER_PREFIX, BaseModelSpec
from gateway.structured.regex_safety import catastrophic_reason

CONFIG_FILE = "adapter_config.json"
ALL_LINEAR = "all-linear"
# How PEFT matches a rank_pattern or alpha_pattern key against a module's full name.
PEFT_KEY_MATCH = r"(.*\.)?({})"
MAX_PATTERN_LENGTH = 512
# init_lora_weights values that only set the starting weights; others (PiSSA, OLoRA, LoftQ,
# CorDA) change the base weights when PEFT loads the adapter, which vLLM cannot do.
_PLAIN_INITS = frozenset({"gaussian", "eva", "orthogonal", "mica", "lora_ga"})
# RE2's memory for one compiled module pattern.
_RE2_MAX_MEM = 8 << 20
_LAYER_RE = re.compile(rf"^{re.escape(LAYER_PREFIX)}\.(\d+)\.")


class PeftLoraConfig(BaseModel):
    """The fields of PEFT's LoRA config that decide whether the engine can serve it.

    PEFT writes dozens of fields and adds more with each release, so unknown ones are
    ignored here (unlike our own manifest, which forbids them).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    peft_type: str = "LORA"
    base_model_name_or_path: str | None = None
    r: int = Field(gt=0)
    lora_alpha: float = Field(gt=0)
    target_modules: list[str] | str
    exclude_modules: list[str] | str | None = None
    layers_to_transform: list[int] | int | None = None
    rank_pattern: dict[str, int] | None = None
    alpha_pattern: dict[str, float] | None = None
    bias: str = "none"
    fan_in_fan_out: bool = False
    use_rslora: bool = False
    use_dora: bool = False
    lora_bias: bool = False
    use_qalora: bool = False
    init_lora_weights: bool | str = True
    modules_to_save: list[str] | None = None
    layer_replication: list[list[int]] | None = None
    alora_invocation_tokens: list[int] | None = None
    use_bdlora: dict[str, Any] | None = None
    target_parameters: list[str] | None = None
    trainable_token_indices: list[int] | dict[str, Any] | None = None

    @property
    def max_rank(self) -> int:
        return max([self.r, *(self.rank_pattern or {}).values()])


def parse_peft_config(raw: bytes, *, source: Path | None = None) -> PeftLoraConfig:
    """Parse ``adapter_config.json``; a problem is an ``invalid_config`` rejection."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _invalid(f"{CONFIG_FILE} is not valid JSON: {exc}", source) from exc
    if not isinstance(data, dict):
        raise _invalid(f"{CONFIG_FILE} must be a JSON object", source)
    try:
        config = PeftLoraConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise _invalid(
            f"{CONFIG_FILE} is not a LoRA config PEFT would write: {where}: {first['msg']}", source
        ) from exc
    if config.peft_type.upper() != "LORA":
        raise _invalid(
            f"{CONFIG_FILE} has peft_type {config.peft_type!r}; only LORA is served", source
        )
    return config


def unsupported_features(config: PeftLoraConfig) -> list[str]:
    """What the engine cannot serve in this config, one phrase each (empty when all is well)."""
    found = []
    if config.bias != "none" or config.lora_bias:
        found.append("bias terms (bias/lora_bias)")
    if config.use_dora:
        found.append("DoRA (use_dora)")
    if config.fan_in_fan_out:
        found.append("transposed weights (fan_in_fan_out)")
    if config.modules_to_save:
        found.append(f"full modules to save ({config.modules_to_save})")
    if isinstance(config.init_lora_weights, str) and (
        config.init_lora_weights.lower() not in _PLAIN_INITS
    ):
        found.append(f"init_lora_weights={config.init_lora_weights!r} (it alters base weights)")
    extras = {
        "layer_replication": config.layer_replication,
        "alora_invocation_tokens (aLoRA)": config.alora_invocation_tokens,
        "use_qalora": config.use_qalora,
        "use_bdlora": config.use_bdlora,
        "target_parameters": config.target_parameters,
        "trainable_token_indices": config.trainable_token_indices,
    }
    found.extend(name for name, value in extras.items() if value)
    return found


def targeted_modules(config: PeftLoraConfig, base: BaseModelSpec) -> frozenset[str]:
    """Full names of the base modules the config adapts, PEFT's matching rules applied.

    A listed name must be some module's name or dotted suffix; a string is a regex over
    full names; ``all-linear`` is every linear layer of the decoder.
    """
    names = base.module_names()
    if config.target_modules == ALL_LINEAR:
        chosen = set(names)
    elif isinstance(config.target_modules, str):
        chosen = {n for n in names if _fullmatch(config.target_modules, n)}
        if not chosen:
            raise _unknown(f"the pattern {config.target_modules!r} matches no module", base)
    else:
        if not config.target_modules:
            raise _unknown("target_modules is empty", base)
        unknown = [t for t in config.target_modules if not any(_suffix(t, n) for n in names)]
        if unknown:
            raise _unknown(f"{sorted(unknown)} are not modules of the base model", base)
        chosen = {n for n in names if any(_suffix(t, n) for t in config.target_modules)}
    chosen -= _excluded(config, names)
    return frozenset(n for n in chosen if _in_layers(n, config.layers_to_transform))


def module_rank(config: PeftLoraConfig, module: str) -> int:
    """The rank PEFT gives ``module``: the first matching ``rank_pattern`` key, else ``r``."""
    for key, rank in (config.rank_pattern or {}).items():
        if _fullmatch(key, module, PEFT_KEY_MATCH):
            return rank
    return config.r


def _excluded(config: PeftLoraConfig, names: list[str]) -> set[str]:
    exclude = config.exclude_modules
    if exclude is None:
        return set()
    if isinstance(exclude, str):
        return {n for n in names if _fullmatch(exclude, n)}
    return {n for n in names if any(_suffix(e, n) for e in exclude)}


def _in_layers(name: str, layers: list[int] | int | None) -> bool:
    if layers is None:
        return True
    match = _LAYER_RE.match(name)
    wanted = [layers] if isinstance(layers, int) else layers
    return match is not None and int(match.group(1)) in wanted


def _suffix(target: str, name: str) -> bool:
    return name == target or name.endswith("." + target)


def _fullmatch(pattern: str, name: str, template: str = "{}") -> bool:
    return _module_pattern(pattern, template).fullmatch(name) is not None


@functools.lru_cache(maxsize=256)
def _module_pattern(pattern: str, template: str) -> Any:
    """A module pattern compiled for RE2, which matches in linear time.

    PEFT applies these with Python's backtracking ``re``; here they come from a folder
    anyone may drop into the store, and are matched while the gateway validates, so they
    run on RE2 (no look-arounds or back-references). Patterns that could backtrack
    catastrophically are refused as well: the engine applies them with Python's ``re``.
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise AdapterRejected(
            RejectReason.INVALID_CONFIG,
            f"A module pattern in {CONFIG_FILE} is longer than {MAX_PATTERN_LENGTH} characters; "
            "list the module names instead.",
        )
    try:
        reason = catastrophic_reason(pattern)
        compiled = re2.compile(template.format(pattern), _re2_options())
    except (re.error, re2.error, RecursionError, OverflowError) as exc:
        raise AdapterRejected(
            RejectReason.INVALID_CONFIG,
            f"{CONFIG_FILE} has an invalid module pattern {pattern[:200]!r}: {_reason(exc)}; "
            "module patterns may not use look-arounds or back-references",
        ) from exc
    if reason:
        raise AdapterRejected(
            RejectReason.INVALID_CONFIG,
            f"{CONFIG_FILE} has a module pattern {pattern[:200]!r} that can take exponential "
            f"time to match: {reason}; list the module names instead",
        )
    return compiled


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _RE2_MAX_MEM
    return options


def _reason(exc: BaseException) -> str:
    detail = exc.args[0] if exc.args else exc
    return detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)


def _unknown(detail: str, base: BaseModelSpec) -> AdapterRejected:
    return AdapterRejected(
        RejectReason.UNKNOWN_TARGET_MODULES,
        f"{CONFIG_FILE}: {detail}. The base model's adaptable modules are "
        f"{sorted(base.short_names())} (or use 'all-linear').",
    )


def _invalid(message: str, source: Path | None) -> AdapterRejected:
    return AdapterRejected(RejectReason.INVALID_CONFIG, message, path=source)
