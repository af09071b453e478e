"""The variants file (YAML): how each variant asks, what it costs, when to fine-tune."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway._sections import PROJECT_ROOT


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Variant(_Strict):
    """One way of asking: model or adapter, prompt, schema, sampling, gateway features."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    model: str
    system_prompt: str | None = None
    # A schema registered with the gateway (its name) or an inline JSON Schema.
    schema_: str | dict[str, Any] = Field(alias="schema")
    temperature: float = Field(0.0, ge=0, le=2)
    seed: int | None = None
    max_tokens: int = Field(128, ge=1)
    # retries: the gateway's retry policy; off: one attempt, the model's own adherence.
    retries: bool = False
    # constrained: the engine constrains every token to the schema from the first one.
    constrained: bool = False
    # Ask for the schema as a call to a function of this name (its parameters: the schema),
    # as Instructor, pydantic-ai and LangChain do, instead of response_format.
    tool: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # With `tool`: how the call is asked for (named: tool_choice names the function).
    tool_choice: Literal["named", "required", "auto"] = "named"
    repetitions: int = Field(1, ge=1, le=100)

    @model_validator(mode="after")
    def _one_mode(self) -> Variant:
        if self.retries and self.constrained:
            raise ValueError(f"variant {self.name!r}: choose retries or constrained, not both")
        if self.tool is not None and self.constrained:
            raise ValueError(f"variant {self.name!r}: a tool variant is checked by the gateway; "
                             "use retries instead of constrained")
        return self

    @property
    def schema_name(self) -> str:
        return self.schema_ if isinstance(self.schema_, str) else "inline"


class Thresholds(_Strict):
    """When a format deviation rate is fine (acceptable) and when it calls for fine-tuning."""

    acceptable: float = Field(0.01, ge=0, le=1)
    fine_tune: float = Field(0.15, ge=0, le=1)
    # Above this share of wrong values (in valid answers), content needs fixing first.
    content: float = Field(0.10, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.acceptable >= self.fine_tune:
            raise ValueError("thresholds.acceptable must be below thresholds.fine_tune")
        return self


class Economics(_Strict):
    """Prices: per token, or per GPU hour with the measured throughput; a fine-tune's cost."""

    prompt_usd_per_1k_tokens: float | None = Field(None, ge=0)
    completion_usd_per_1k_tokens: float | None = Field(None, ge=0)
    gpu_hour_usd: float | None = Field(2.0, ge=0)
    fine_tune_compute_usd: float = Field(100.0, ge=0)
    annotation_usd_per_example: float = Field(2.0, ge=0)
    examples: int = Field(1000, ge=0)
    retrains_per_year: float = Field(4.0, ge=0)

    @property
    def fine_tune_usd_per_year(self) -> float:
        once = self.fine_tune_compute_usd + self.annotation_usd_per_example * self.examples
        return once * max(self.retrains_per_year, 1.0)


class EvalPlan(_Strict):
    variants: list[Variant] = Field(min_length=1)
    schemas_dir: Path = PROJECT_ROOT / "config" / "schemas"
    concurrency: int = Field(4, ge=1, le=64)
    thresholds: Thresholds = Thresholds()
    economics: Economics = Economics()

    @model_validator(mode="after")
    def _unique(self) -> EvalPlan:
        names = [v.name for v in self.variants]
        if len(names) != len(set(names)):
            raise ValueError(f"variant names must be unique: {names}")
        return self

    def schema_of(self, variant: Variant) -> dict[str, Any]:
        """The variant's JSON Schema (a named one is read from ``schemas_dir``)."""
        if isinstance(variant.schema_, dict):
            return variant.schema_
        path = self.schemas_dir / f"{variant.schema_}.json"
        if not path.is_file():
            raise ValueError(f"variant {variant.name!r} names schema {variant.schema_!r}, but "
                             f"{path} does not exist; set schemas_dir or inline the schema")
        loaded: dict[str, Any] = json.loads(path.read_text())
        return loaded


def load_plan(path: Path) -> EvalPlan:
    """The variants file; a ValueError says what is wrong and where."""
    if not path.is_file():
        raise ValueError(f"the variants file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a mapping with a 'variants' list")
    base = path.parent
    if "schemas_dir" in raw and not Path(raw["schemas_dir"]).is_absolute():
        raw["schemas_dir"] = str((base / raw["schemas_dir"]).resolve())
    try:
        plan = EvalPlan.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{path}: {where}: {first['msg']}") from exc
    for variant in plan.variants:
        plan.schema_of(variant)  # a missing named schema is found now, not mid-run
    return plan
