"""The ``engine`` section: where vLLM runs and how the gateway talks to it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from gateway._sections import LOOPBACK, PROJECT_ROOT, Section
from gateway.engine.keeper import RestartSettings
from gateway.engine.model_prep import BUNDLED_CHAT_TEMPLATE, BUNDLED_TOOL_PARSER, default_model_dir


class EngineSettings(Section):
    mode: Literal["embedded", "remote"] = "embedded"
    urls: list[str] = []
    api_key_env: str | None = None
    model: str = "SmolLM2-135M-Instruct"
    model_path: Path | None = None
    base_model_aliases: list[str] = ["HuggingFaceTB/SmolLM2-135M-Instruct"]
    host: str = LOOPBACK
    port: int = Field(0, ge=0, le=65535)
    python: str | None = None
    max_lora_rank: int = Field(16, ge=1, le=512)
    max_loras: int = Field(8, ge=1, le=256)
    max_cpu_loras: int | None = None
    max_model_len: int = Field(2048, ge=128)
    kv_cache_gib: int = Field(2, ge=1)
    # Tool calling (embedded mode): the chat template that renders tools, calls and results,
    # and vLLM's parser for the call format it teaches. Empty chat_template: the model's own.
    # Empty tool_call_parser: requests with tools get the engine's 400.
    chat_template: Path | None = BUNDLED_CHAT_TEMPLATE
    tool_call_parser: str | None = BUNDLED_TOOL_PARSER
    extra_args: list[str] = []
    log_file: Path = PROJECT_ROOT / "var" / "vllm.log"
    startup_timeout_s: float = Field(600.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(300.0, gt=0)
    # The slowest generation speed (tokens/s, one request under load) the timeouts must
    # allow for: read_timeout_s has to cover limits.max_tokens at this speed.
    min_tokens_per_s: float = Field(20.0, gt=0)
    health_interval_s: float = Field(5.0, gt=0)
    # Several servers in urls: one that fails its health check or refuses a connection is
    # ejected at once, one that answers this many 5xx in a row too; it comes back once it
    # answers its health check after a backoff doubling from 1 s up to this.
    eject_after_errors: int = Field(3, ge=1)
    eject_max_backoff_s: float = Field(30.0, gt=0)
    max_connections: int = Field(256, ge=1)
    restart: RestartSettings = RestartSettings()

    @model_validator(mode="after")
    def _remote_needs_urls(self) -> EngineSettings:
        if self.mode == "remote" and not self.urls:
            raise ValueError("engine.mode is 'remote' but engine.urls is empty; list the vLLM URLs")
        return self

    @model_validator(mode="after")
    def _restart_window_holds_restarts(self) -> EngineSettings:
        if self.mode == "embedded" and self.restart.window_s <= self.startup_timeout_s:
            raise ValueError(
                f"engine.restart.window_s ({self.restart.window_s:.0f} s) must be longer than "
                f"engine.startup_timeout_s ({self.startup_timeout_s:.0f} s): a window shorter "
                "than one start can never count more than one restart")
        return self

    @model_validator(mode="after")
    def _template_exists(self) -> EngineSettings:
        if self.mode == "embedded" and self.chat_template is not None and (
            not self.chat_template.is_file()
        ):
            raise ValueError(f"engine.chat_template {self.chat_template} does not exist; give "
                             "the path of a Jinja chat template, or null for the model's own")
        return self

    def model_folder(self) -> Path:
        """The converted model an embedded engine serves: ``model_path``, or the bundled one."""
        return self.model_path or default_model_dir()
