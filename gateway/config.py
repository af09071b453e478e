"""Settings: config/gateway.yaml overridden by GATEWAY_* environment variables.

This is the only module that reads the environment. Nested keys are overridden
with ``__``: ``GATEWAY_ENGINE__MODE=remote``, ``GATEWAY_SERVER__PORT=9000``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from gateway.adapters.validation import ValidationLimits
from gateway.structured.bounds import SchemaBounds
from gateway.structured.capture import CaptureSettings
from gateway.structured.retry import RetrySettings

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "gateway.yaml"
CONFIG_ENV = "GATEWAY_CONFIG"
LOOPBACK = "127.0.0.1"

Scope = Literal["user", "admin"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = LOOPBACK
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    log_level: str = "info"


class ApiKey(_Section):
    name: str
    scope: Scope = "user"
    key: SecretStr | None = None
    key_env: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ApiKey:
        if (self.key is None) == (self.key_env is None):
            raise ValueError(f"API key {self.name!r}: give exactly one of 'key' or 'key_env'")
        return self

    def secret(self) -> str:
        if self.key is not None:
            return self.key.get_secret_value()
        value = os.environ.get(self.key_env or "", "")
        if not value:
            raise ValueError(
                f"API key {self.name!r} reads environment variable {self.key_env!r}, "
                "which is unset or empty; export it or remove the key from the configuration"
            )
        return value


class AuthSettings(_Section):
    keys: list[ApiKey] = []
    public_paths: list[str] = ["/health", "/ready", "/metrics", "/metrics/engine"]


class EngineSettings(_Section):
    mode: Literal["embedded", "remote"] = "embedded"
    urls: list[str] = []
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
    extra_args: list[str] = []
    log_file: Path = PROJECT_ROOT / "var" / "vllm.log"
    startup_timeout_s: float = Field(600.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(300.0, gt=0)
    health_interval_s: float = Field(5.0, gt=0)
    max_connections: int = Field(256, ge=1)

    @model_validator(mode="after")
    def _remote_needs_urls(self) -> EngineSettings:
        if self.mode == "remote" and not self.urls:
            raise ValueError("engine.mode is 'remote' but engine.urls is empty; list the vLLM URLs")
        return self


class LimitSettings(_Section):
    max_n: int = Field(8, ge=1)
    max_tokens: int = Field(4096, ge=1)
    max_messages: int = Field(256, ge=1)


class AdapterSettings(_Section):
    roots: list[Path] = Field([PROJECT_ROOT / "adapters"], min_length=1)
    watch: bool = True
    watch_debounce_ms: int = Field(1000, ge=50)
    drain_timeout_s: float = Field(60.0, gt=0)
    staging_dir: Path = PROJECT_ROOT / "var" / "adapter-staging"
    base_model_config: Path | None = None
    limits: ValidationLimits = ValidationLimits()


class StructuredSettings(_Section):
    schemas_dir: Path = PROJECT_ROOT / "config" / "schemas"
    bounds: SchemaBounds = SchemaBounds()
    retry: RetrySettings = RetrySettings()
    on_exhausted: Literal["error", "flag"] = "error"
    validate_adapter_defaults: bool = True
    capture: CaptureSettings = CaptureSettings()


class MetricsSettings(_Section):
    enabled: bool = True
    latency_buckets: list[float] | None = None
    multiprocess_dir: Path | None = None
    engine_metrics_path: str = "/metrics/engine"


class Settings(BaseSettings):
    """Everything the gateway can be told; see config/gateway.yaml for each key."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_nested_delimiter="__", extra="forbid"
    )

    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings()
    engine: EngineSettings = EngineSettings()
    limits: LimitSettings = LimitSettings()
    adapters: AdapterSettings = AdapterSettings()
    structured: StructuredSettings = StructuredSettings()
    metrics: MetricsSettings = MetricsSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        default = DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None
        yaml_file = os.environ.get(CONFIG_ENV) or default
        if yaml_file is not None and not Path(yaml_file).is_file():
            raise ValueError(f"the configuration file {yaml_file} does not exist; "
                             f"check --config or {CONFIG_ENV}")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if yaml_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.auth.keys)

    def bind_host(self) -> str:
        """The address to listen on: loopback only while no API keys are configured."""
        if self.auth_enabled or _is_loopback(self.server.host):
            return self.server.host
        log.warning(
            "no API keys configured: binding to %s instead of %s; "
            "configure auth.keys to listen publicly",
            LOOPBACK,
            self.server.host,
        )
        return LOOPBACK


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(**overrides: Any) -> Settings:
    """Builds the settings once; the app factory receives them."""
    return Settings(**overrides)

