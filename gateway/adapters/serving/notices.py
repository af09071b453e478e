"""Rollout notices: what each replica's rollouts tell replicas that start later.

Every replica keeps its own rollout book and reaches its own verdict. A replica that starts
during a rollout that replaced the store folder finds only the candidate there; without a
word from the others it would serve that unvetted version to all of its traffic. So each
replica leaves, in a folder the replicas share, a notice per adapter (the rollout as its
book has it) and, when a rollout starts, a copy of the stable version
(``<name>--<digest>``, content-addressed, placed only where no intact copy is).

A replica that starts and finds the store folder holding a notice's candidate serves the
notice's stable version: beside its own rollout of the candidate while the notice's rollout
runs, alone once it was rolled back or aborted. A promotion ends that: the folder's version
is vetted, and the stable copy goes. Notices are written whole (a temporary file renamed
over the old one); the last replica to decide writes the last word.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from gateway.adapters.errors import AdapterRejected
from gateway.adapters.serving import staging
from gateway.adapters.store.validation import AdapterSpec
from gateway.rollouts.rollout import Rollout, State

log = logging.getLogger(__name__)


class RolloutNotices:
    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def post(self, rollout: dict[str, Any], stable: AdapterSpec | None = None) -> None:
        """Writes a rollout's notice (``Rollout.as_dict``), with a copy of ``stable`` when
        it starts; meant for a worker thread. A failure is logged: serving goes on."""
        if self.folder is None:
            return
        name = rollout["name"]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            if stable is not None:
                staging.stage_adapter(stable, self.folder)
            self._write(name, rollout)
            if rollout["state"] == State.PROMOTED.value:
                staging.discard(self.folder / f"{name}--{rollout['stable']['digest']}")
        except (OSError, AdapterRejected) as exc:
            log.error("rollout notice of %s not written to %s (%s): a replica that starts "
                      "now may not know of this rollout", name, self.folder, exc)

    def read(self, name: str) -> Rollout | None:
        if self.folder is None:
            return None
        try:
            return Rollout.from_dict(json.loads((self.folder / f"{name}.json").read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("rollout notice of %s in %s is unreadable (%s); ignored", name,
                      self.folder, exc)
            return None

    def _write(self, name: str, rollout: dict[str, Any]) -> None:
        assert self.folder is not None
        handle, scratch = tempfile.mkstemp(prefix=f".{name}-", dir=self.folder)
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(rollout, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(scratch, self.folder / f"{name}.json")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(scratch)
