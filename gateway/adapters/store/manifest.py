"""The ``adapter.yaml`` manifest: identity, base model and serving defaults of an adapter."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.adapters.errors import AdapterRejected, RejectReason
from gateway.rollouts.rollout import RolloutPolicy
from gateway.structured.schemas import NAME_PATTERN as SCHEMA_NAME_PATTERN

MANIFEST_FILE = "adapter.yaml"
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"
DIGEST_PATTERN = r"^(sha256:)?[0-9a-f]{64}$"

_NAME_RE = re.compile(NAME_PATTERN)


class SamplingDefaults(BaseModel):
    """Sampling parameters applied when a request does not set them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    # vLLM's min_tokens: no end-of-answer before this many tokens (1: never an empty answer).
    min_tokens: int | None = Field(None, ge=0)


class ServingDefaults(BaseModel):
    """How requests to this adapter are served unless the request says otherwise."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system_prompt: str | None = Field(None, max_length=16_384)
    # A named schema (config/schemas/<name>.json): schema names follow OpenAI's rule.
    response_schema: str | None = Field(None, pattern=rf"^{SCHEMA_NAME_PATTERN.pattern}$")
    validate_by_default: bool = False
    sampling: SamplingDefaults = SamplingDefaults()


class AdapterManifest(BaseModel):
    """The contents of ``adapter.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    version: str = Field(pattern=VERSION_PATTERN)
    base_model: str = Field(min_length=1, max_length=512)
    description: str = Field("", max_length=4096)
    digest: str | None = Field(None, pattern=DIGEST_PATTERN)
    serving: ServingDefaults = ServingDefaults()
    # How a new version of this adapter reaches traffic: a rollout policy, true (the
    # configured one), false (a hot swap). Absent: the gateway's adapters.rollout.
    rollout: RolloutPolicy | bool | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _integer_version_is_text(cls, value: Any) -> Any:
        # `version: 1` is the natural thing to write in YAML; a float such as 1.10
        # would silently become "1.1", so only integers are converted.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @property
    def digest_hex(self) -> str | None:
        """The stated digest without its ``sha256:`` prefix."""
        return self.digest.removeprefix("sha256:") if self.digest else None


def is_valid_name(name: str) -> bool:
    return _NAME_RE.fullmatch(name) is not None


def check_name(name: str) -> str:
    """Return ``name`` if it can name an adapter, else raise ``invalid_name``."""
    if not is_valid_name(name):
        raise AdapterRejected(
            RejectReason.INVALID_NAME,
            f"Adapter name {name!r} is not allowed: use 1-64 characters of lower-case letters, "
            "digits, '.', '_' or '-', starting with a letter or digit (no '@', no '/').",
        )
    return name


class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses anchors and aliases (no "billion laughs" expansion)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases (*name) are not allowed in adapter.yaml")
        return super().compose_node(parent, index)


def parse_manifest(text: str, *, source: Path | None = None) -> AdapterManifest:
    """Parse manifest text; any problem is an ``invalid_manifest`` rejection."""
    where = str(source) if source else MANIFEST_FILE
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise _invalid(f"{where} is not valid YAML: {exc}", source) from exc
    if not isinstance(data, dict):
        raise _invalid(f"{where} must be a mapping with name, version and base_model", source)
    try:
        return AdapterManifest.model_validate(data)
    except ValidationError as exc:
        raise _invalid(f"{where} is invalid: {_describe(exc)}", source) from exc


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        location = ".".join(str(p) for p in error["loc"]) or "(top level)"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts) + ". See docs/adapters.md for the manifest format."


def _invalid(message: str, source: Path | None) -> AdapterRejected:
    return AdapterRejected(RejectReason.INVALID_MANIFEST, message, path=source)
