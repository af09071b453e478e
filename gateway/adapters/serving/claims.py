"""Which adapter versions each gateway process still uses, shared through a folder.

Every worker process and every replica keeps its own registry, and each one drains a
replaced version on its own clock: the one whose watcher saw the change first would
otherwise unload (or delete) a version another process still sends requests to. So each
process writes the engine ids it uses, loading, serving or draining, to
``<folder>/<owner>.json`` (atomically, on every change and every ``refresh_s``), and a
version leaves the engines, the resolver store or staging only when no other live
process claims it.

A claim is stale, and ignored, once its file was not rewritten for ``stale_after_s``
(six refreshes by default: a replica that died without cleaning up) or when it was
written on this host by a process that no longer exists. Its age is read by the shared
folder's own clock, file modification times, compared with the time of this process's
own claim file, so replicas whose clocks disagree still agree on what is fresh.
Hand-written: this is a few files and a clock, which no library covers
without a coordination service this project does not otherwise need.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".json"


class ClaimBoard:
    """This process's claims, and a view of the others'."""

    def __init__(self, folder: Path, *, refresh_s: float = 10.0,
                 stale_after_s: float | None = None) -> None:
        self.folder = folder
        self.refresh_s = refresh_s
        self.stale_after_s = stale_after_s or 6 * refresh_s
        self.host = socket.gethostname()
        self.owner = f"{self.host}-{os.getpid()}-{secrets.token_hex(3)}"
        self._claimed: frozenset[str] = frozenset()
        self._written_at = 0.0

    @property
    def path(self) -> Path:
        return self.folder / f"{self.owner}{SUFFIX}"

    def claim(self, ids: Iterable[str]) -> None:
        """Replaces this process's claims (written only when they changed)."""
        claimed = frozenset(ids)
        if claimed != self._claimed or not self._written_at:
            self._claimed = claimed
            self._write()

    def refresh(self) -> None:
        """Rewrites the claims so that they stay fresh (call every ``refresh_s``)."""
        self._write()

    def claimed_elsewhere(self, engine_id: str) -> bool:
        """Whether another live process claims ``engine_id`` (or, given a prefix, any id
        that starts with it followed by nothing or a ``-`` suffix)."""
        return any(_matches(claimed, engine_id) for claimed in self._others())

    def withdraw(self) -> None:
        """Removes this process's claims (at shutdown)."""
        with contextlib.suppress(OSError):
            self.path.unlink()
        self._claimed, self._written_at = frozenset(), 0.0

    def _write(self) -> None:
        data = {"owner": self.owner, "host": self.host, "pid": os.getpid(),
                "written_at": time.time(), "ids": sorted(self._claimed)}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, scratch = tempfile.mkstemp(prefix=".claim-", dir=self.folder)
            with os.fdopen(handle, "w") as out:
                json.dump(data, out)
            os.replace(scratch, self.path)
            self._written_at = time.time()
        except OSError as exc:
            # Without a claim file the others may retire a version this process uses:
            # loud, but serving goes on.
            log.error("could not write adapter claims to %s: %s", self.folder, exc)

    def _others(self) -> set[str]:
        claimed: set[str] = set()
        now = self._folder_now()
        try:
            files = [p for p in self.folder.iterdir()
                     if p.suffix == SUFFIX and p.name != self.path.name]
        except OSError:
            return claimed
        for path in files:
            try:
                written_at = path.stat().st_mtime
                data = json.loads(path.read_text())
                ids = data["ids"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # being replaced, or not ours: ignored
            if now - written_at > self.stale_after_s or self._dead_here(data):
                continue
            claimed.update(str(i) for i in ids if isinstance(i, str))
        return claimed

    def _folder_now(self) -> float:
        """Now, by the clock that stamps files in the shared folder: the modification time
        of this process's own claim file (rewritten at least every ``refresh_s``, so at
        most that far behind, which only makes the others' claims look fresher)."""
        try:
            return self.path.stat().st_mtime
        except OSError:
            self._write()
        try:
            return self.path.stat().st_mtime
        except OSError:
            return time.time()

    def _dead_here(self, data: dict[str, object]) -> bool:
        if data.get("host") != self.host or not isinstance(data.get("pid"), int):
            return False
        try:
            os.kill(int(data["pid"]), 0)  # type: ignore[call-overload]
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def _matches(claimed: str, wanted: str) -> bool:
    return claimed == wanted or claimed.startswith(wanted + "-")
