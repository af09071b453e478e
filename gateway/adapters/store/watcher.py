"""Watch the adapter roots and report adapter folders that appear, change or disappear.

A folder is only looked at once it is stable: its files' names, sizes and mtimes are
the same twice ``settle_s`` apart. Each stable state is validated once and reported
once, so a half-copied folder yields at most one refusal (usually none) and never a
retry loop; the completed copy is reported when it lands. File events make this
prompt; a full comparison every ``rescan_ms`` catches anything the events missed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from watchfiles import awatch

from gateway.adapters.errors import AdapterRejected
from gateway.adapters.store.scan import ScanResult, adapter_folders, check_folder, claim_name, scan
from gateway.adapters.store.validation import AdapterPolicy, AdapterSpec

log = logging.getLogger(__name__)

Signature = tuple[tuple[str, int, int], ...]


class AdapterEventKind(StrEnum):
    ADDED = "added"
    CHANGED = "changed"
    REMOVED = "removed"


@dataclass(frozen=True)
class AdapterEvent:
    """A folder's new state: ``spec`` when valid, ``error`` when refused, neither if removed.

    ``previous_name`` is the name the folder last served under (None if it never
    validated): on ``removed``, or on ``changed`` when the manifest renamed it.
    """

    kind: AdapterEventKind
    folder: Path
    spec: AdapterSpec | None = None
    error: AdapterRejected | None = None
    previous_name: str | None = None


EventCallback = Callable[[AdapterEvent], Awaitable[None]]


@dataclass(frozen=True)
class _Seen:
    signature: Signature
    outcome: str  # the spec's fingerprint or the refusal, to report only real changes
    name: str | None  # the name it last served under, kept while it is refused


class AdapterWatcher:
    """Turns file changes under the roots into :class:`AdapterEvent` callbacks."""

    def __init__(
        self,
        policy: AdapterPolicy,
        *,
        debounce_ms: int = 1000,
        step_ms: int = 200,
        settle_s: float = 0.5,
        rescan_ms: int = 5000,
    ) -> None:
        self._policy = policy
        self._debounce_ms, self._step_ms = debounce_ms, step_ms
        self._settle_s, self._rescan_ms = settle_s, rescan_ms
        self._seen: dict[Path, _Seen] = {}

    def initial_scan(self) -> ScanResult:
        """Scan once (start-up) and remember the result, so ``run`` reports only later changes."""
        result = scan(self._policy)
        invalid = {item.folder: item.error for item in result.invalid}
        by_path = {spec.path: spec for spec in result.valid}
        for folder in adapter_folders(self._policy.roots):
            spec = by_path.get(folder.resolve())
            self._seen[folder] = _seen(_signature(folder), spec, invalid.get(folder))
        return result

    async def run(self, on_event: EventCallback, stop_event: asyncio.Event | None = None) -> None:
        """Report changes until cancelled or ``stop_event`` is set."""
        roots = [root for root in self._policy.roots if root.is_dir()]
        if not roots:
            log.warning("no adapter root exists; the adapter watcher is idle")
            return
        await self.refresh(on_event)
        async for _ in awatch(
            *roots,
            debounce=self._debounce_ms,
            step=self._step_ms,
            stop_event=stop_event,
            rust_timeout=self._rescan_ms,
            yield_on_timeout=True,
            ignore_permission_denied=True,
        ):
            await self.refresh(on_event)

    async def refresh(self, on_event: EventCallback) -> list[AdapterEvent]:
        """Compare the store with what was last reported; report stable differences."""
        current = {folder: _signature(folder) for folder in adapter_folders(self._policy.roots)}
        events = [self._removed(folder) for folder in list(self._seen) if folder not in current]
        moved = [
            f for f, sig in current.items() if f not in self._seen or self._seen[f].signature != sig
        ]
        for folder in await self._stable(moved, current):
            event = await self._examine(folder, current[folder])
            if event is not None:
                events.append(event)
        for event in events:
            await _deliver(on_event, event)
        return events

    async def _stable(self, folders: list[Path], before: dict[Path, Signature]) -> list[Path]:
        if not folders:
            return []
        await asyncio.sleep(self._settle_s)
        # Still changing: left for the file event or rescan that follows the next write.
        return [f for f in folders if _signature(f) == before[f]]

    async def _examine(self, folder: Path, signature: Signature) -> AdapterEvent | None:
        previous = self._seen.get(folder)
        spec, error = await asyncio.to_thread(self._validate, folder)
        seen = _seen(signature, spec, error, previous.name if previous else None)
        self._seen[folder] = seen
        if previous is not None and previous.outcome == seen.outcome:
            return None  # touched, or rewritten with identical content
        kind = AdapterEventKind.ADDED if previous is None else AdapterEventKind.CHANGED
        last_name = previous.name if previous else None
        return AdapterEvent(kind, folder, spec, error, last_name)

    def _validate(self, folder: Path) -> tuple[AdapterSpec | None, AdapterRejected | None]:
        try:
            spec = check_folder(folder, self._policy)
            owners = {s.name: f for f, s in self._seen.items() if s.name and f != folder}
            claim_name(spec, folder, {name: f.resolve() for name, f in owners.items()})
        except AdapterRejected as exc:
            return None, exc
        return spec, None

    def _removed(self, folder: Path) -> AdapterEvent:
        seen = self._seen.pop(folder)
        return AdapterEvent(AdapterEventKind.REMOVED, folder, previous_name=seen.name)


def _seen(
    signature: Signature,
    spec: AdapterSpec | None,
    error: AdapterRejected | None,
    last_name: str | None = None,
) -> _Seen:
    """What was reported for a folder; a refused folder keeps the name it last served under."""
    if spec is not None:
        return _Seen(signature, spec.fingerprint, spec.name)
    outcome = f"{error.reason}: {error.message}" if error else "unknown"
    return _Seen(signature, outcome, last_name)


def _signature(folder: Path) -> Signature:
    """Names, sizes and mtimes of the folder's files (following symlinks); cheap to compare."""
    entries = []
    try:
        with os.scandir(folder) as scan_entries:
            for entry in scan_entries:
                try:
                    info = entry.stat()
                except OSError:
                    continue
                entries.append((entry.name, info.st_size, info.st_mtime_ns))
    except OSError:
        return ()
    return tuple(sorted(entries))


async def _deliver(on_event: EventCallback, event: AdapterEvent) -> None:
    try:
        await on_event(event)
    except Exception:
        # One failing handler must not stop the watcher; the next change is still reported.
        log.exception("adapter event handler failed for %s %s", event.kind, event.folder)
