"""Settings: config/gateway.yaml overridden by GATEWAY_* environment variables.

This is the only module that reads the environment. Nested keys are overridden
with ``__``: ``GATEWAY_ENGINE__MODE=remote``, ``GATEWAY_SERVER__PORT=9000``.
Each domain declares its own section (``gateway.engine.settings``, ...); this module
puts them together, and only the assembly code (``app``, ``cli``, ``wiring``) imports it.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from gateway._sections import LOOPBACK, PROJECT_ROOT, Section
from gateway.adapters.settings import AdapterSettings
from gateway.auth import Principal, Scope
from gateway.engine.settings import EngineSettings
from gateway.inference.settings import LimitSettings, StructuredSettings
from gateway.metrics import MetricsSettings
from gateway.responses.settings import ResponsesSettings

log = logging.getLogger(__name__)

DEFAULT_CONFIG = PROJECT_ROOT / "config" / "gateway.yaml"
CONFIG_ENV = "GATEWAY_CONFIG"

__all__ = ["LOOPBACK", "AdapterSettings", "EngineSettings", "LimitSettings", "MetricsSettings",
           "Settings", "StructuredSettings", "load_settings"]


class ServerSettings(Section):
    host: str = LOOPBACK
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    log_level: str = "info"
    api_docs: Literal["auto", "on", "off"] = "auto"


class ApiKey(Section):
    name: str
    scope: Scope = "user"
    key: SecretStr | None = None
    key_env: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ApiKey:
        if (self.key is None) == (self.key_env is None):
            raise ValueError(f"API key {self.name!r}: give exactly one of 'key' or 'key_env'")
        return self

    def principal(self) -> Principal:
        return Principal(self.name, self.scope)

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


class AuthSettings(Section):
    keys: list[ApiKey] = []
    # /metrics and /metrics/engine need a `metrics` (or `admin`) key unless listed here.
    public_paths: list[str] = ["/health", "/ready"]


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
    responses: ResponsesSettings = ResponsesSettings()

    @model_validator(mode="after")
    def _timeout_covers_the_longest_answer(self) -> Settings:
        # A non-streaming answer arrives in one piece, after the whole generation.
        needed = self.limits.max_tokens / self.engine.min_tokens_per_s
        if self.engine.read_timeout_s < needed:
            raise ValueError(
                f"engine.read_timeout_s is {self.engine.read_timeout_s:g} s, but an answer of "
                f"limits.max_tokens={self.limits.max_tokens} tokens at "
                f"engine.min_tokens_per_s={self.engine.min_tokens_per_s:g} takes {needed:.0f} s: "
                f"raise read_timeout_s to at least {needed:.0f}, or lower max_tokens")
        return self

    def drain_deadline_s(self) -> float:
        """``adapters.drain_timeout_s``, else the longest answer the limits allow."""
        if self.adapters.drain_timeout_s is not None:
            return self.adapters.drain_timeout_s
        return float(math.ceil(self.limits.max_tokens / self.engine.min_tokens_per_s))

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

    def api_keys(self) -> list[tuple[Principal, str]]:
        """Every configured key with its secret; a key whose variable is unset is an error."""
        return [(key.principal(), key.secret()) for key in self.auth.keys]

    def api_docs(self) -> bool:
        """Whether /docs, /redoc and /openapi.json are served (``auto``: without keys)."""
        return self.server.api_docs == "on" or (
            self.server.api_docs == "auto" and not self.auth_enabled)

    def engine_api_key(self) -> str | None:
        """The remote engine's API key, read from ``engine.api_key_env``."""
        name = self.engine.api_key_env
        if name is None:
            return None
        value = os.environ.get(name, "")
        if not value:
            raise ValueError(f"engine.api_key_env names {name!r}, which is unset or empty; "
                             "export the vLLM servers' API key there or unset engine.api_key_env")
        return value

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

