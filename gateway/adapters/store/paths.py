"""Resolve a caller-supplied adapter path to a folder inside the configured store roots.

The path comes from API callers, so everything is refused unless it ends up, after
following symlinks, strictly inside one of the roots: URLs, hub ids, ``..``
escapes, absolute paths elsewhere, symlinks pointing out, files, NUL bytes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from gateway.adapters.errors import AdapterRejected, RejectReason

MAX_PATH_LENGTH = 1024

_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_roots(roots: Sequence[Path | str]) -> tuple[Path, ...]:
    """The store roots as absolute paths with symlinks resolved, in order."""
    if not roots:
        raise ValueError("at least one adapter root is needed; set adapters.roots")
    return tuple(Path(root).expanduser().resolve() for root in roots)


def root_of(path: Path, roots: Sequence[Path]) -> Path | None:
    """The root that strictly contains ``path`` (both already resolved), if any."""
    for root in roots:
        if path != root and path.is_relative_to(root):
            return root
    return None


def resolve_adapter_path(
    requested: str, roots: Sequence[Path], *, max_length: int = MAX_PATH_LENGTH
) -> Path:
    """Return the resolved adapter folder named by ``requested`` (roots already resolved).

    Relative paths are taken relative to the first root.
    """
    _check_syntax(requested, roots, max_length)
    candidate = Path(requested)
    if not candidate.is_absolute():
        if os.path.normpath(requested).split(os.sep, 1)[0] == os.pardir:
            # Even into another root: a relative path names a folder of the first root.
            raise _outside(requested, roots[0].parent, roots)
        candidate = roots[0] / candidate
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, an unreadable folder
        raise _bad(
            f"Adapter path {requested!r} cannot be resolved ({exc}); fix the folder."
        ) from exc
    if root_of(resolved, roots) is None:
        raise _outside(requested, resolved, roots)
    if not resolved.exists():
        raise _missing(requested, roots)
    if not resolved.is_dir():
        raise AdapterRejected(
            RejectReason.NOT_A_DIRECTORY,
            f"Adapter path {requested!r} is a file; name the adapter's folder (the one holding "
            "adapter_config.json and adapter_model.safetensors).",
            path=resolved,
        )
    return resolved


def _check_syntax(requested: str, roots: Sequence[Path], max_length: int) -> None:
    if not requested.strip():
        raise _bad("Adapter path is empty; give the adapter's folder name under " + _show(roots))
    if "\x00" in requested:
        raise _bad("Adapter path contains a NUL byte; send the plain folder name.")
    if len(requested) > max_length or len(os.fsencode(requested)) > max_length:
        raise _bad(f"Adapter path is longer than {max_length} characters; use a shorter name.")
    if _URL_RE.match(requested):
        raise _bad(
            f"Adapter path {requested!r} is a URL; adapters are never downloaded. Copy the "
            f"adapter folder under {_show(roots)} and pass its folder name."
        )


def _missing(requested: str, roots: Sequence[Path]) -> AdapterRejected:
    if _HUB_ID_RE.fullmatch(requested):
        message = (
            f"No adapter folder {requested!r} under {roots[0]}. It looks like a model hub id, "
            f"but adapters are never downloaded: copy the adapter folder under {_show(roots)}."
        )
    else:
        message = f"No adapter folder {requested!r} under {_show(roots)}; check the name."
    return AdapterRejected(RejectReason.NOT_FOUND, message)


def _outside(requested: str, resolved: Path, roots: Sequence[Path]) -> AdapterRejected:
    if resolved in roots:
        detail = "is the adapter store itself; name one adapter folder inside it"
    else:
        detail = "resolves outside the adapter store (a '..', an absolute path or a symlink)"
    return AdapterRejected(
        RejectReason.PATH_OUTSIDE_ROOTS,
        f"Adapter path {requested!r} {detail}. Adapters must live under {_show(roots)}.",
    )


def _bad(message: str) -> AdapterRejected:
    return AdapterRejected(RejectReason.INVALID_PATH, message)


def _show(roots: Sequence[Path]) -> str:
    return " or ".join(str(root) for root in roots)
