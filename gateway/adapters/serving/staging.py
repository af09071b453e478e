"""Copy a validated adapter into a content-addressed staging folder for the engine to load.

The engine reads the files itself, after validation. Loading from a private copy
whose digest was re-checked means it reads exactly what was validated, even if the
store folder is edited (or swapped for a pickle) in between.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from gateway.adapters.errors import AdapterRejected, RejectReason
from gateway.adapters.store import folder as files
from gateway.adapters.store.validation import DIGEST_FILES, AdapterSpec

log = logging.getLogger(__name__)

# The prefix of a folder being deleted (see discard).
WITHDRAWN = ".withdrawn-"


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


def stage_checked(spec: AdapterSpec, staging_root: Path) -> Path:
    """:func:`stage_adapter`, with files that vanish meanwhile as a typed refusal."""
    try:
        return stage_adapter(spec, staging_root)
    except OSError as exc:
        raise AdapterRejected(
            RejectReason.MISSING_FILES,
            f"the files of adapter {spec.name!r} changed or vanished while being staged "
            f"({exc.strerror or exc}); load it again once its folder is complete",
            path=spec.path,
        ) from exc


def discard_staged(path: Path, staging_root: Path) -> None:
    """Delete a staged copy once the engine has unloaded it."""
    if path.parent.resolve() == staging_root.resolve():
        shutil.rmtree(path, ignore_errors=True)
    else:
        log.warning("not deleting %s: it is not a staged adapter under %s", path, staging_root)


def _install(scratch: Path, target: Path, digest: str) -> None:
    place(scratch, target, lambda folder: _intact(folder, digest))


def place(scratch: Path, target: Path, intact: Callable[[Path], bool]) -> None:
    """Renames ``scratch`` to ``target`` only where no intact copy is.

    Another process (a worker, a replica) sharing the folder may have placed the same
    content first, and engines may already read it: an intact copy stays, never deleted.
    A broken or outdated one is renamed aside whole (so nothing reads it half deleted),
    then replaced.
    """
    for _ in range(3):
        try:
            scratch.rename(target)
            return
        except OSError:
            if intact(target):
                return
        discard(target)
    raise OSError(f"could not place {target}: it keeps changing under this process")


def discard(target: Path) -> None:
    """Renames ``target`` to a unique hidden name beside it, then deletes it; a crash
    between the two leaves only a hidden folder, swept by :func:`sweep`."""
    doomed = target.parent / f"{WITHDRAWN}{target.name}-{secrets.token_hex(4)}"
    with contextlib.suppress(FileNotFoundError):
        target.rename(doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def sweep(folder: Path, name: str) -> None:
    """Deletes what an earlier :func:`discard` of ``name`` left behind."""
    for leftover in [folder / f"{WITHDRAWN}{name}", *folder.glob(f"{WITHDRAWN}{name}-*")]:
        shutil.rmtree(leftover, ignore_errors=True)


def _intact(folder: Path, digest: str) -> bool:
    paths = {name: folder / name for name in DIGEST_FILES}
    if not all(path.is_file() for path in paths.values()):
        return False
    return files.content_digest(paths)[0] == digest
