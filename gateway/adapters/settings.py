"""The ``adapters`` section: the store's folders, the watcher, staging and drains."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from gateway._sections import PROJECT_ROOT, Section
from gateway.adapters.validation import ValidationLimits


class AdapterSettings(Section):
    roots: list[Path] = Field([PROJECT_ROOT / "adapters"], min_length=1)
    watch: bool = True
    watch_debounce_ms: int = Field(1000, ge=50)
    drain_timeout_s: float = Field(60.0, gt=0)
    staging_dir: Path = PROJECT_ROOT / "var" / "adapter-staging"
    base_model_config: Path | None = None
    limits: ValidationLimits = ValidationLimits()
