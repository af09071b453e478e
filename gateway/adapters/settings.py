"""The ``adapters`` section: the store's folders, the watcher, staging and drains."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from gateway._sections import PROJECT_ROOT, Section
from gateway.adapters.rollout import RolloutPolicy
from gateway.adapters.validation import ValidationLimits


class AdapterSettings(Section):
    roots: list[Path] = Field([PROJECT_ROOT / "adapters"], min_length=1)
    watch: bool = True
    watch_debounce_ms: int = Field(1000, ge=50)
    drain_timeout_s: float = Field(60.0, gt=0)
    staging_dir: Path = PROJECT_ROOT / "var" / "adapter-staging"
    base_model_config: Path | None = None
    limits: ValidationLimits = ValidationLimits()
    # How a new version of a served adapter reaches traffic: None, a hot swap; a policy,
    # a rollout (shadow, canary, promoted or rolled back by the gate). Adapters may say
    # otherwise in their manifest, and an admin load per call.
    rollout: RolloutPolicy | None = None
    rollouts_file: Path = PROJECT_ROOT / "var" / "rollouts.json"
    # The request header whose value keeps a canary caller on one version (else the API
    # key's name, else nothing sticks: each request is placed on its own).
    rollout_sticky_header: str | None = None
