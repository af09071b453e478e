"""Validate an adapter folder before anything reaches the engine.

:func:`validate_adapter` takes a caller's path string; :func:`validate_folder` an
already-resolved folder (the watcher's). Both return an :class:`AdapterSpec` or raise
:class:`AdapterRejected` with a reason code. Pickle files are refused by name and
never opened; the weights are checked by reading the safetensors header only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.adapters.errors import AdapterRejected, RejectReason
from gateway.adapters.store import folder as files
from gateway.adapters.store.base_model import BaseModelSpec
from gateway.adapters.store.manifest import (
    MANIFEST_FILE,
    AdapterManifest,
    ServingDefaults,
    check_name,
    parse_manifest,
)
from gateway.adapters.store.paths import resolve_adapter_path, resolve_roots
from gateway.adapters.store.peft_config import (
    CONFIG_FILE,
    PeftLoraConfig,
    parse_peft_config,
    targeted_modules,
    unsupported_features,
)
from gateway.adapters.store.safetensors_header import read_header
from gateway.adapters.store.weights import WEIGHTS_FILE, WeightsSummary, check_tensors
from gateway.rollouts.rollout import RolloutPolicy

DIGEST_FILES = (CONFIG_FILE, WEIGHTS_FILE)
DIGEST_VERSION_LENGTH = 12


class ValidationLimits(BaseModel):
    """Size bounds on what an adapter folder may hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_config_bytes: int = Field(64 * 1024, ge=1024)
    max_manifest_bytes: int = Field(64 * 1024, ge=1024)
    max_weights_bytes: int = Field(512 * 1024 * 1024, ge=1024)
    max_header_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    max_path_length: int = Field(1024, ge=16, le=4096)


@dataclass(frozen=True)
class AdapterPolicy:
    """Everything validation compares an adapter against; roots must be resolved."""

    roots: tuple[Path, ...]
    base: BaseModelSpec
    max_lora_rank: int
    limits: ValidationLimits = ValidationLimits()

    @classmethod
    def build(
        cls,
        roots: Sequence[Path | str],
        base: BaseModelSpec,
        max_lora_rank: int,
        limits: ValidationLimits | None = None,
    ) -> AdapterPolicy:
        """A policy over ``roots`` as configured (relative, with symlinks): resolved here."""
        return cls(resolve_roots(roots), base, max_lora_rank, limits or ValidationLimits())


@dataclass(frozen=True)
class AdapterSpec:
    """A validated adapter, ready to be handed to the engine."""

    name: str
    version: str
    path: Path
    digest: str
    fingerprint: str
    base_model: str | None
    rank: int
    max_rank: int
    alpha: float
    target_modules: tuple[str, ...]
    dtypes: tuple[str, ...]
    weights_bytes: int
    manifest: AdapterManifest | None
    description: str = ""
    serving: ServingDefaults = ServingDefaults()

    @property
    def rollout(self) -> RolloutPolicy | bool | None:
        """The manifest's rollout choice (None: the gateway's)."""
        return self.manifest.rollout if self.manifest else None

    @property
    def short_digest(self) -> str:
        return self.digest[:DIGEST_VERSION_LENGTH]


def validate_adapter(
    requested: str, policy: AdapterPolicy, *, name: str | None = None
) -> AdapterSpec:
    """Validate the folder a caller named (relative paths are under the first root)."""
    folder = resolve_adapter_path(requested, policy.roots, max_length=policy.limits.max_path_length)
    return validate_folder(folder, policy, name=name)


def validate_folder(folder: Path, policy: AdapterPolicy, *, name: str | None = None) -> AdapterSpec:
    """Validate a resolved adapter folder; ``name`` is the caller's name for it, if any."""
    try:
        return _validate(folder, policy, name)
    except FileNotFoundError as exc:
        raise AdapterRejected(
            RejectReason.MISSING_FILES,
            f"{folder.name} changed while it was being read ({exc}); let the copy finish.",
            path=folder,
        ) from exc
    except OSError as exc:
        raise AdapterRejected(
            RejectReason.INVALID_PATH,
            f"{folder.name} cannot be read ({exc}); check its permissions.",
            path=folder,
        ) from exc


def _validate(folder: Path, policy: AdapterPolicy, name: str | None) -> AdapterSpec:
    limits = policy.limits
    files.check_no_pickles(folder)
    found = files.locate(folder, (*DIGEST_FILES, MANIFEST_FILE), policy.roots)
    files.require(found, DIGEST_FILES, folder)
    weights_bytes = files.check_size(found[WEIGHTS_FILE], limits.max_weights_bytes)
    manifest = _manifest(found, limits)
    adapter_name = _name(folder, manifest, name, policy.base)
    raw_config = files.read_bounded(found[CONFIG_FILE], limits.max_config_bytes)
    config = parse_peft_config(raw_config, source=found[CONFIG_FILE])
    base_model = _check_config(config, manifest, policy)
    # The digest is of the very bytes checked (config as parsed, weights as read with their
    # header): staging copies the files and loads the copy only if its digest matches, so
    # the engine loads exactly what was validated, whatever happens to the folder meanwhile.
    weights_hash = hashlib.sha256()
    summary, read_bytes = _check_weights(found[WEIGHTS_FILE], config, policy, weights_hash)
    hashes = {CONFIG_FILE: hashlib.sha256(raw_config).hexdigest(),
              WEIGHTS_FILE: weights_hash.hexdigest()}
    digest = _digest(hashes, manifest, weights_bytes, read_bytes)
    return AdapterSpec(
        name=adapter_name,
        version=manifest.version if manifest else digest[:DIGEST_VERSION_LENGTH],
        path=folder,
        digest=digest,
        fingerprint=_fingerprint(digest, manifest),
        base_model=base_model,
        rank=config.r,
        max_rank=config.max_rank,
        alpha=config.lora_alpha,
        target_modules=tuple(sorted({m.rsplit(".", 1)[-1] for m in summary.modules})),
        dtypes=tuple(sorted(summary.dtypes)),
        weights_bytes=weights_bytes,
        manifest=manifest,
        description=manifest.description if manifest else "",
        serving=manifest.serving if manifest else ServingDefaults(),
    )


def _manifest(found: dict[str, Path], limits: ValidationLimits) -> AdapterManifest | None:
    path = found.get(MANIFEST_FILE)
    if path is None:
        return None
    raw = files.read_bounded(path, limits.max_manifest_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AdapterRejected(
            RejectReason.INVALID_MANIFEST, f"{MANIFEST_FILE} is not UTF-8 text", path=path
        ) from exc
    return parse_manifest(text, source=path)


def _name(
    folder: Path, manifest: AdapterManifest | None, requested: str | None, base: BaseModelSpec
) -> str:
    name = requested or (manifest.name if manifest else folder.name)
    check_name(name)
    if manifest and manifest.name != name:
        raise AdapterRejected(
            RejectReason.CONFIG_MISMATCH,
            f"The adapter was asked to load as {name!r} but its {MANIFEST_FILE} names it "
            f"{manifest.name!r}; use the manifest's name or edit the manifest.",
            path=folder,
        )
    if name in base.names:
        raise AdapterRejected(
            RejectReason.INVALID_NAME,
            f"Adapter name {name!r} is the base model's name; choose another name.",
            path=folder,
        )
    return name


def _check_config(
    config: PeftLoraConfig, manifest: AdapterManifest | None, policy: AdapterPolicy
) -> str | None:
    """Check what the config alone decides; return the base model the adapter cites."""
    unsupported = unsupported_features(config)
    if unsupported:
        raise AdapterRejected(
            RejectReason.UNSUPPORTED_FEATURE,
            f"The engine cannot serve {', '.join(unsupported)}; retrain or convert the adapter "
            "to a plain LoRA on the attention/MLP projections.",
        )
    cited = _check_base(config.base_model_name_or_path or None, manifest, policy.base)
    if config.max_rank > policy.max_lora_rank:
        raise AdapterRejected(
            RejectReason.RANK_TOO_LARGE,
            f"The adapter's rank {config.max_rank} exceeds the engine's max_lora_rank "
            f"{policy.max_lora_rank}; raise engine.max_lora_rank (costs memory) or retrain "
            "with a smaller r.",
        )
    return cited


def _check_base(
    from_config: str | None, manifest: AdapterManifest | None, base: BaseModelSpec
) -> str | None:
    accepted = sorted(base.names)
    if manifest is not None and not base.accepts(manifest.base_model):
        raise AdapterRejected(
            RejectReason.BASE_MODEL_MISMATCH,
            f"{MANIFEST_FILE} says base_model {manifest.base_model!r}, but the gateway serves "
            f"{accepted}; the adapter only works on the base it was trained on.",
        )
    if from_config is not None and not base.accepts(from_config):
        reason = RejectReason.CONFIG_MISMATCH if manifest else RejectReason.BASE_MODEL_MISMATCH
        raise AdapterRejected(
            reason,
            f"{CONFIG_FILE} says base_model_name_or_path {from_config!r}, but the gateway serves "
            f"{accepted}; fix the config if it was trained on this base (any of those names "
            "or a path ending in one of them is accepted).",
        )
    return manifest.base_model if manifest else from_config


def _check_weights(
    path: Path, config: PeftLoraConfig, policy: AdapterPolicy, hasher: Any
) -> tuple[WeightsSummary, int]:
    """What the weights adapt, and how many bytes of them were read (and hashed)."""
    targeted = targeted_modules(config, policy.base)
    header = read_header(path, max_header_bytes=policy.limits.max_header_bytes, hasher=hasher)
    return check_tensors(header, config, policy.base, targeted), header.file_bytes


def _digest(
    hashes: dict[str, str], manifest: AdapterManifest | None, weights_bytes: int, read_bytes: int
) -> str:
    digest = files.listing_digest(hashes)
    if read_bytes != weights_bytes:
        raise AdapterRejected(
            RejectReason.CORRUPT_WEIGHTS,
            f"{WEIGHTS_FILE} changed while it was being checked; let the copy finish.",
        )
    stated = manifest.digest_hex if manifest else None
    if stated is not None and stated != digest:
        raise AdapterRejected(
            RejectReason.DIGEST_MISMATCH,
            f"The files' digest is sha256:{digest} but {MANIFEST_FILE} states sha256:{stated}; "
            "the files differ from what was published. Copy them again, or update the "
            "manifest's digest if the change is intended.",
        )
    return digest


def _fingerprint(digest: str, manifest: AdapterManifest | None) -> str:
    """Identifies content and manifest together, so a manifest-only edit is still a change."""
    described = manifest.model_dump_json(exclude={"digest"}) if manifest else ""
    return hashlib.sha256(f"{digest}\n{described}".encode()).hexdigest()
