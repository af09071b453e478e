"""The rollouts of every adapter, kept in a JSON file so that they survive a restart.

The file (``adapters.rollouts_file``, beside the store's staging folder by default) is
written whole on every decision and every few answers: to a temporary file, flushed, then
renamed over the old one, so a crash leaves either the old or the new state, never half.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from gateway.rollouts.rollout import Rollout

log = logging.getLogger(__name__)

# Answers recorded between two writes of the numbers (decisions are written at once).
SAVE_EVERY = 20


class RolloutBook:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._rollouts: dict[str, Rollout] = {}
        self._unsaved = 0
        self._dirty = False
        self.shadows_in_flight: dict[str, int] = {}
        if path is not None and path.exists():
            self._read(path)

    def _read(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
            for item in data.get("rollouts", []):
                rollout = Rollout.from_dict(item)
                self._rollouts[rollout.name] = rollout
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Never fatal: the adapters themselves are in the store; only the rollouts'
            # numbers are lost, and the file is kept aside for a look.
            aside = path.with_suffix(".unreadable")
            log.error("rollouts file %s is unreadable (%s); starting without rollouts, the "
                      "file is kept as %s", path, exc, aside)
            self._rollouts.clear()
            path.replace(aside)

    def get(self, name: str) -> Rollout | None:
        return self._rollouts.get(name)

    def active(self, name: str) -> Rollout | None:
        rollout = self._rollouts.get(name)
        return rollout if rollout is not None and rollout.active else None

    def all_active(self) -> list[Rollout]:
        return [r for r in self._rollouts.values() if r.active]

    def put(self, rollout: Rollout) -> None:
        self._rollouts[rollout.name] = rollout
        self._dirty = True
        self.save()

    def counted(self) -> None:
        """One more answer recorded: saved every ``SAVE_EVERY``."""
        self._unsaved += 1
        self._dirty = True
        if self._unsaved >= SAVE_EVERY:
            self.save()

    def save(self) -> None:
        """Writes the rollouts, if anything changed since the last write."""
        self._unsaved = 0
        if self.path is None or not self._dirty:
            return
        self._dirty = False
        payload = json.dumps({"rollouts": [r.as_dict() for r in self._rollouts.values()]},
                             indent=2)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, scratch = tempfile.mkstemp(prefix=".rollouts-", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w") as out:
                out.write(payload)
                out.flush()
                os.fsync(out.fileno())
            os.replace(scratch, self.path)
        except OSError as exc:
            log.error("could not write the rollouts file %s: %s", self.path, exc)
            Path(scratch).unlink(missing_ok=True)
