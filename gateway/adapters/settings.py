"""The ``adapters`` section: the store's folders, the watcher, staging and drains."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from gateway._sections import PROJECT_ROOT, Section
from gateway.adapters.store.validation import ValidationLimits
from gateway.rollouts.rollout import RolloutPolicy


class ResolverSettings(Section):
    """Where ``publish: resolver`` writes adapters for vLLM's filesystem LoRA resolver."""

    # Shared by every engine server as VLLM_LORA_RESOLVER_CACHE_DIR (a ReadWriteMany
    # volume, or a folder synced from object storage; docs/deploy.md).
    dir: Path = PROJECT_ROOT / "var" / "lora-resolver"
    # The engines' --model argument, exactly as given (a path or a hub id, not the served
    # name): the resolver loads only adapters whose config names it. Embedded: the model
    # folder the gateway starts vLLM with.
    base_model: str | None = None
    # Ask an engine for one token of each new version, so that a version the engines
    # cannot load fails its load, not a client's request.
    probe: bool = True


class AdapterSettings(Section):
    roots: list[Path] = Field([PROJECT_ROOT / "adapters"], min_length=1)
    watch: bool = True
    watch_debounce_ms: int = Field(1000, ge=50)
    # How long a replaced, rolled-back or removed version may finish the requests running
    # on it; past it they end with an error (503 adapter_version_retired) and it leaves.
    # Nothing new enters a draining version. None: the longest answer the limits allow
    # (limits.max_tokens at engine.min_tokens_per_s), so in normal operation nothing is cut.
    drain_timeout_s: float | None = Field(None, gt=0)
    # A request for an adapter whose only version is still loading (a worker that has just
    # started, an adapter that has just appeared) waits this long for the load before it
    # is told to retry (503). 0: answer 503 at once.
    load_wait_s: float = Field(10.0, ge=0)
    staging_dir: Path = PROJECT_ROOT / "var" / "adapter-staging"
    base_model_config: Path | None = None
    limits: ValidationLimits = ValidationLimits()
    # How a new version of a served adapter reaches traffic: None, a hot swap; a policy,
    # a rollout (shadow, canary, promoted or rolled back by the gate). Adapters may say
    # otherwise in their manifest, and an admin load per call.
    rollout: RolloutPolicy | None = None
    rollouts_file: Path = PROJECT_ROOT / "var" / "rollouts.json"
    # Where each replica leaves a notice of its rollouts, with a copy of the stable version,
    # for replicas that start while one runs (docs/deploy.md). Empty: resolver.dir/.rollouts
    # when publishing to a resolver (replicas share it), else none (one replica).
    rollout_notices_dir: Path | None = None
    # The request header whose value keeps a canary caller on one version (else the API
    # key's name, else nothing sticks: each request is placed on its own).
    rollout_sticky_header: str | None = None
    # How versions reach the engines. runtime: the gateway loads each one into every
    # server in engine.urls. resolver: it writes each one into resolver.dir, from which
    # every engine server loads it on first use (a pool, behind a router or not).
    publish: Literal["runtime", "resolver"] = "runtime"
    resolver: ResolverSettings = ResolverSettings()
    # Where each gateway process (workers, replicas) says which versions it still uses,
    # so that none is unloaded while another process sends requests to it. Empty:
    # resolver.dir/.claims when publishing to a resolver, else adapter-claims beside
    # staging_dir. Replicas on several machines need a shared folder.
    claims_dir: Path | None = None
    claims_refresh_s: float = Field(10.0, gt=0)

    def notices_folder(self) -> Path | None:
        if self.rollout_notices_dir is not None or self.publish != "resolver":
            return self.rollout_notices_dir
        return self.resolver.dir / ".rollouts"

    def claims_folder(self) -> Path:
        if self.claims_dir is not None:
            return self.claims_dir
        if self.publish == "resolver":
            return self.resolver.dir / ".claims"
        return self.staging_dir.parent / "adapter-claims"
