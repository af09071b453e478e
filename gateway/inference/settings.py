"""The request path's sections: ``limits`` and ``structured``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from gateway._sections import PROJECT_ROOT, Section
from gateway.grammar.settings import GrammarCheckSettings
from gateway.inference.capture import CaptureSettings
from gateway.structured.bounds import SchemaBounds
from gateway.structured.retry import RetrySettings


class LimitSettings(Section):
    max_n: int = Field(8, ge=1)
    max_tokens: int = Field(4096, ge=1)
    max_messages: int = Field(256, ge=1)
    # Inference requests in flight at once: in all, and per API key (None: no limit).
    max_concurrent: int | None = Field(None, ge=1)
    max_concurrent_per_key: int | None = Field(None, ge=1)


class StructuredSettings(Section):
    schemas_dir: Path = PROJECT_ROOT / "config" / "schemas"
    bounds: SchemaBounds = SchemaBounds()
    retry: RetrySettings = RetrySettings()
    on_exhausted: Literal["error", "flag"] = "error"
    validate_adapter_defaults: bool = True
    capture: CaptureSettings = CaptureSettings()
    # Stream a structured request's first attempt and stop it as soon as it cannot be
    # valid, when a retry would follow (see gateway/structured/early.py).
    fail_fast: bool = True
    # Every grammar compiled first by the engine's compiler, under limits (gateway/grammar).
    grammar_check: GrammarCheckSettings = GrammarCheckSettings()
