"""Safe access to the files of one adapter folder: no pickles opened, sizes bounded."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from gateway.adapters.errors import AdapterRejected, RejectReason
from gateway.adapters.store.paths import root_of

# Files torch.load or pickle would read: refused on sight and never opened.
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib"})
_CHUNK = 1024 * 1024


def check_no_pickles(folder: Path) -> None:
    """Refuse a folder holding pickle-format files (the engine would fall back to them)."""
    with os.scandir(folder) as entries:
        pickles = sorted(e.name for e in entries if Path(e.name).suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise AdapterRejected(
            RejectReason.PICKLE_WEIGHTS,
            f"{folder.name} holds pickle-format files {pickles}, which can run code when loaded "
            "and are never read. Convert the weights to adapter_model.safetensors (PEFT: "
            "save_pretrained(..., safe_serialization=True)) and delete the pickle files.",
            path=folder,
        )


def locate(folder: Path, names: Sequence[str], roots: Sequence[Path]) -> dict[str, Path]:
    """Resolved paths of those ``names`` present in ``folder``; each must stay inside the roots."""
    found = {}
    for name in names:
        path = folder / name
        if not os.path.lexists(path):
            continue
        try:
            resolved = path.resolve()
        except RuntimeError as exc:  # a symlink loop (Python 3.13+ raises OSError instead)
            raise OSError(f"{folder.name}/{name} is a symlink loop") from exc
        if root_of(resolved, roots) is None:
            raise AdapterRejected(
                RejectReason.PATH_OUTSIDE_ROOTS,
                f"{folder.name}/{name} is a symlink leading outside the adapter store; copy the "
                "file into the adapter folder instead.",
                path=folder,
            )
        if not resolved.is_file():
            raise AdapterRejected(
                RejectReason.MISSING_FILES,
                f"{folder.name}/{name} is not a regular file; replace it with the real file.",
                path=folder,
            )
        found[name] = resolved
    return found


def require(found: Mapping[str, Path], names: Sequence[str], folder: Path) -> None:
    missing = [name for name in names if name not in found]
    if missing:
        raise AdapterRejected(
            RejectReason.MISSING_FILES,
            f"{folder.name} lacks {missing}; an adapter folder needs adapter_config.json and "
            "adapter_model.safetensors as PEFT's save_pretrained writes them (if it is being "
            "copied, it is picked up once complete).",
            path=folder,
        )


def check_size(path: Path, limit: int) -> int:
    size = path.stat().st_size
    if size > limit:
        raise _too_large(path, size, limit)
    return size


def read_bounded(path: Path, limit: int) -> bytes:
    """The whole file, refused with ``file_too_large`` past ``limit`` bytes."""
    check_size(path, limit)
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:  # it grew after the size check
        raise _too_large(path, len(data), limit)
    return data


def _too_large(path: Path, size: int, limit: int) -> AdapterRejected:
    return AdapterRejected(
        RejectReason.FILE_TOO_LARGE,
        f"{path.name} has {size} bytes or more, over the {limit} allowed; raise "
        "adapters.limits in the gateway config if this adapter is genuine.",
        path=path,
    )


def content_digest(files: Mapping[str, Path]) -> tuple[str, dict[str, int]]:
    """The adapter's content digest and the byte count hashed per file.

    Defined like ``sha256sum`` piped into itself: the SHA-256 of the lines
    ``"<sha256 of file>  <file name>\\n"``, files sorted by name.
    """
    hashes, sizes = {}, {}
    for name in files:
        hashes[name], sizes[name] = _hash_file(files[name])
    return listing_digest(hashes), sizes


def listing_digest(hashes: Mapping[str, str]) -> str:
    """The adapter's content digest from each file's sha256 (see :func:`content_digest`)."""
    listing = hashlib.sha256()
    for name in sorted(hashes):
        listing.update(f"{hashes[name]}  {name}\n".encode())
    return listing.hexdigest()


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
