"""Typed errors of the adapter store and registry.

Every refusal of an adapter carries a :class:`RejectReason`: a bounded set, so
it can label metrics (``gateway_adapter_load_failures_total{reason=...}``) and
clients can branch on the envelope's ``code`` without parsing messages.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from gateway.errors import AdapterNotFound, Conflict, GatewayError, InvalidRequest

__all__ = [
    "AdapterConflict",
    "AdapterNotFound",
    "AdapterRejected",
    "AdapterStateError",
    "AdapterVersionCut",
    "AdapterUnavailable",
    "RejectReason",
]


class RejectReason(StrEnum):
    """Why an adapter folder was refused; a bounded set usable as a metric label."""

    INVALID_PATH = "invalid_path"
    PATH_OUTSIDE_ROOTS = "path_outside_roots"
    NOT_FOUND = "not_found"
    NOT_A_DIRECTORY = "not_a_directory"
    INVALID_NAME = "invalid_name"
    INVALID_MANIFEST = "invalid_manifest"
    INVALID_CONFIG = "invalid_config"
    UNSUPPORTED_FEATURE = "unsupported_feature"
    MISSING_FILES = "missing_files"
    PICKLE_WEIGHTS = "pickle_weights"
    FILE_TOO_LARGE = "file_too_large"
    CORRUPT_WEIGHTS = "corrupt_weights"
    BASE_MODEL_MISMATCH = "base_model_mismatch"
    RANK_TOO_LARGE = "rank_too_large"
    UNKNOWN_TARGET_MODULES = "unknown_target_modules"
    TENSOR_MISMATCH = "tensor_mismatch"
    CONFIG_MISMATCH = "config_mismatch"
    DIGEST_MISMATCH = "digest_mismatch"
    DUPLICATE_NAME = "duplicate_name"


class AdapterRejected(InvalidRequest):
    """An adapter folder (or the path naming it) failed validation; nothing reached the engine."""

    def __init__(self, reason: RejectReason, message: str, *, path: Path | None = None) -> None:
        super().__init__(message, param="path", code=reason.value, extra={"reason": reason.value})
        self.reason = reason
        self.path = path


class AdapterConflict(Conflict):
    """The name is taken by an adapter with other content and no replacement was asked for."""

    default_code = "adapter_conflict"


class AdapterUnavailable(GatewayError):
    """The adapter exists but has no version able to serve yet (it is still loading)."""

    status_code = 503
    error_type = "api_error"
    default_code = "adapter_unavailable"


class AdapterVersionCut(GatewayError):
    """A request still running on a version past its drain deadline, ended."""

    status_code = 503
    error_type = "api_error"
    default_code = "adapter_version_retired"

    def __init__(self, name: str, version: str) -> None:
        super().__init__(
            f"Adapter {name!r} version {version!r} was replaced or removed, and this request "
            "was still running at the end of its drain (adapters.drain_timeout_s); send it "
            "again to get the current version.", headers={"Retry-After": "1"})


class AdapterStateError(GatewayError):
    """A registry operation was called in a state that does not allow it (a caller bug)."""

    status_code = 500
    error_type = "api_error"
    default_code = "adapter_state_error"


# Loads the engine refused after the gateway accepted the folder: the engine client's error
# codes (gateway/errors.py), next to the gateway's own RejectReason values. Together they are
# the bounded label set of ``gateway_adapter_load_failures_total{reason}``.
ENGINE_LOAD_FAILURE_REASONS: tuple[str, ...] = ("engine_error", "engine_unavailable",
                                                "engine_timeout")
LOAD_FAILURE_REASONS: tuple[str, ...] = (*(r.value for r in RejectReason),
                                         *ENGINE_LOAD_FAILURE_REASONS)
