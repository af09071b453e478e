"""One-shot scan of the adapter store: every folder, valid or not, none fatal."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.adapters.errors import AdapterRejected, RejectReason
from gateway.adapters.store.paths import resolve_adapter_path
from gateway.adapters.store.validation import AdapterPolicy, AdapterSpec, validate_folder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InvalidAdapter:
    folder: Path
    error: AdapterRejected

    @property
    def reason(self) -> RejectReason:
        return self.error.reason

    @property
    def message(self) -> str:
        return self.error.message


@dataclass(frozen=True)
class ScanResult:
    valid: tuple[AdapterSpec, ...]
    invalid: tuple[InvalidAdapter, ...]


def adapter_folders(roots: Sequence[Path]) -> list[Path]:
    """Candidate adapter folders: non-empty, non-hidden directories right under each root.

    Hidden folders are skipped so that copying into ``.name.tmp`` and renaming it into
    place publishes an adapter in one step; empty ones are a copy that has not started.
    """
    found = []
    for root in roots:
        if not root.is_dir():
            log.warning("adapter root %s does not exist; nothing is loaded from it", root)
            continue
        found.extend(sorted(p for p in _children(root) if _non_empty_dir(p)))
    return found


def check_folder(folder: Path, policy: AdapterPolicy) -> AdapterSpec:
    """Validate one store folder (it may be a symlink; it must lead inside the roots)."""
    resolved = resolve_adapter_path(
        str(folder), policy.roots, max_length=policy.limits.max_path_length
    )
    return validate_folder(resolved, policy)


def scan(policy: AdapterPolicy) -> ScanResult:
    """Validate every adapter folder under the roots; the first folder to claim a name wins."""
    valid: dict[str, AdapterSpec] = {}
    invalid = []
    for folder in adapter_folders(policy.roots):
        try:
            spec = check_folder(folder, policy)
            claim_name(spec, folder, {n: s.path for n, s in valid.items()})
        except AdapterRejected as exc:
            log.warning("adapter folder %s refused (%s): %s", folder, exc.reason, exc.message)
            invalid.append(InvalidAdapter(folder, exc))
            continue
        valid[spec.name] = spec
    return ScanResult(tuple(valid.values()), tuple(invalid))


def claim_name(spec: AdapterSpec, folder: Path, owners: dict[str, Path]) -> None:
    """Refuse ``spec`` when another folder already serves its name."""
    owner = owners.get(spec.name)
    if owner is not None and owner != spec.path:
        raise AdapterRejected(
            RejectReason.DUPLICATE_NAME,
            f"{folder} names its adapter {spec.name!r}, already served from {owner}; "
            "rename one of them (adapter.yaml's name, or the folder when it has no manifest).",
            path=folder,
        )


def _children(root: Path) -> Iterable[Path]:
    with os.scandir(root) as entries:
        return [root / e.name for e in entries if not e.name.startswith(".")]


def _non_empty_dir(path: Path) -> bool:
    try:
        return path.is_dir() and any(path.iterdir())
    except OSError:
        return False
