"""Copy a validated adapter into a content-addressed staging folder for the engine to load.

The engine reads the files itself, after validation. Loading from a private copy
whose digest was re-checked means it reads exactly what was validated, even if the
store folder is edited (or swapped for a pickle) in between.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from gateway.adapters.errors import AdapterRejected, RejectReason
from gateway.adapters.store import folder as files
from gateway.adapters.store.validation import DIGEST_FILES, AdapterSpec

log = logging.getLogger(__name__)


def staged_path(spec: AdapterSpec, staging_root: Path) -> Path:
    return staging_root / f"{spec.name}--{spec.digest}"


def stage_adapter(spec: AdapterSpec, staging_root: Path) -> Path:
    """The staged copy of ``spec``'s files (made now unless an intact one exists)."""
    target = staged_path(spec, staging_root)
    if _intact(target, spec.digest):
        return target
    staging_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".staging-", dir=staging_root))
    try:
        for name in DIGEST_FILES:
            shutil.copyfile(spec.path / name, scratch / name)
            os.chmod(scratch / name, 0o644)
        if not _intact(scratch, spec.digest):
            raise AdapterRejected(
                RejectReason.DIGEST_MISMATCH,
                f"Adapter {spec.name!r} changed on disk after it was validated; load it again "
                "once its files stop changing.",
                path=spec.path,
            )
        _install(scratch, target, spec.digest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def discard_staged(path: Path, staging_root: Path) -> None:
    """Delete a staged copy once the engine has unloaded it."""
    if path.parent.resolve() == staging_root.resolve():
        shutil.rmtree(path, ignore_errors=True)
    else:
        log.warning("not deleting %s: it is not a staged adapter under %s", path, staging_root)


def _install(scratch: Path, target: Path, digest: str) -> None:
    if target.exists():  # a broken earlier copy; an intact one returned before
        shutil.rmtree(target, ignore_errors=True)
    try:
        scratch.rename(target)
    except OSError:
        # Another thread staged the same content first; keep theirs if it is intact.
        if not _intact(target, digest):
            raise


def _intact(folder: Path, digest: str) -> bool:
    paths = {name: folder / name for name in DIGEST_FILES}
    if not all(path.is_file() for path in paths.values()):
        return False
    return files.content_digest(paths)[0] == digest
