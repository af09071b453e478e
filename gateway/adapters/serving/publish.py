"""How a validated adapter version reaches the engines, and how it leaves them.

``runtime`` (one engine server, or a few the gateway reaches directly): the gateway
posts ``/v1/load_lora_adapter`` to every server in ``engine.urls`` and unloads the
same way after a drain.

``resolver`` (a pool of servers, behind a router or not): the gateway writes the
version into a shared folder under its content-addressed engine id (``name--digest12``)
that vLLM's filesystem LoRA resolver reads (``VLLM_PLUGINS=lora_filesystem_resolver``,
``VLLM_LORA_RESOLVER_CACHE_DIR``). Any server, including one that starts later, loads
it on its first request for that id; nothing is broadcast. The resolver loads a folder
only when its ``adapter_config.json`` names, as ``base_model_name_or_path``, exactly
the engines' ``--model`` argument, so the published copy has that one field rewritten;
the version keeps the store's digest (of the files as validated), and the published
copy records it beside its own.

Both read the staged copy (see :mod:`gateway.adapters.serving.staging`), so the engines read
exactly the bytes that were validated.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

from gateway.adapters.serving.staging import discard, place, sweep
from gateway.adapters.store import folder as files
from gateway.adapters.store.peft_config import CONFIG_FILE
from gateway.adapters.store.validation import DIGEST_FILES
from gateway.adapters.store.weights import WEIGHTS_FILE
from gateway.engine.client import EngineClient
from gateway.errors import GatewayError, UpstreamError

log = logging.getLogger(__name__)

_ALREADY_LOADED = "already been loaded"
# Beside the published files: the store's digest and the published copy's own.
PUBLISHED_RECORD = "published.json"


class Publisher(Protocol):
    # True: the engines load on first use, so an engine restart needs no reload.
    lazy: bool

    async def publish(self, engine_id: str, staged: Path) -> None:
        """Makes ``engine_id`` servable from the staged folder; raises when it cannot be."""

    async def withdraw(self, engine_id: str) -> None:
        """Takes ``engine_id`` away (no process uses it any more); logs what fails."""


class RuntimePublisher:
    """Runtime-API loads and unloads, sent to every engine server."""

    lazy = False

    def __init__(self, engine: EngineClient) -> None:
        self.engine = engine

    async def publish(self, engine_id: str, staged: Path) -> None:
        body = {"lora_name": engine_id, "lora_path": str(staged)}
        for answer in await self.engine.broadcast("/v1/load_lora_adapter", body):
            # After a gateway restart the engine may still hold this exact content.
            if answer.status != 200 and _ALREADY_LOADED not in answer.text():
                raise UpstreamError(f"the engine refused the adapter: {answer.text()[:500]}",
                                    code="adapter_load_failed")

    async def withdraw(self, engine_id: str) -> None:
        try:
            answers = await self.engine.broadcast("/v1/unload_lora_adapter",
                                                  {"lora_name": engine_id})
        except GatewayError as exc:
            log.error("could not unload %s from the engine: %s", engine_id, exc.message)
            return
        for answer in answers:
            if answer.status not in (200, 404):
                log.error("the engine refused to unload %s: %s", engine_id, answer.text()[:300])


class ResolverPublisher:
    """Publishes into the folder the engines' filesystem LoRA resolver reads."""

    lazy = True

    def __init__(self, engine: EngineClient, folder: Path, base_model: str,
                 *, probe: bool = True) -> None:
        self.engine = engine
        self.folder = folder
        self.base_model = base_model
        # Ask one engine server for one token of the new id, so that an adapter the
        # engines cannot load fails its load here, not on a client's first request.
        self.probe = probe

    async def publish(self, engine_id: str, staged: Path) -> None:
        await asyncio.to_thread(self._write, engine_id, staged)
        if not self.probe:
            return
        body = {"model": engine_id, "prompt": "ok", "max_tokens": 1, "temperature": 0}
        try:
            await self.engine.post("/v1/completions", body)
        except GatewayError as exc:
            # The folder stays: another replica may serve this very id (it is content
            # addressed). The service withdraws it once no process claims it.
            raise UpstreamError(
                f"the engine could not load the published adapter {engine_id!r} from "
                f"{self.folder} ({exc.message}); check that every engine server runs with "
                "VLLM_PLUGINS=lora_filesystem_resolver, VLLM_ALLOW_RUNTIME_LORA_UPDATING=True "
                f"and VLLM_LORA_RESOLVER_CACHE_DIR={self.folder}, and --model "
                f"{self.base_model!r} (adapters.resolver.base_model)",
                code="adapter_load_failed") from exc

    async def withdraw(self, engine_id: str) -> None:
        # The engines keep what they loaded until their LoRA cache evicts it; the folder
        # is what a server that has not loaded it yet would read.
        await asyncio.to_thread(self._remove, engine_id)

    def published(self, engine_id: str) -> Path:
        return self.folder / engine_id

    def _write(self, engine_id: str, staged: Path) -> None:
        """Writes the published copy under a temporary name, then renames it into place."""
        target = self.published(engine_id)
        store_digest = files.content_digest({n: staged / n for n in DIGEST_FILES})[0]
        if self._intact(target, store_digest):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".publishing-", dir=self.folder))
        try:
            config = json.loads((staged / CONFIG_FILE).read_text())
            config["base_model_name_or_path"] = self.base_model
            (scratch / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
            shutil.copyfile(staged / WEIGHTS_FILE, scratch / WEIGHTS_FILE)
            own = files.content_digest({n: scratch / n for n in DIGEST_FILES})[0]
            record = {"engine_id": engine_id, "store_digest": store_digest,
                      "published_digest": own, "base_model": self.base_model}
            (scratch / PUBLISHED_RECORD).write_text(json.dumps(record, indent=2) + "\n")
            for path in scratch.iterdir():
                os.chmod(path, 0o644)
            os.chmod(scratch, 0o755)
            place(scratch, target, lambda folder: self._intact(folder, store_digest))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _intact(self, target: Path, store_digest: str) -> bool:
        try:
            record = json.loads((target / PUBLISHED_RECORD).read_text())
            own = files.content_digest({n: target / n for n in DIGEST_FILES})[0]
        except (OSError, ValueError):
            return False
        return bool(record.get("store_digest") == store_digest
                    and record.get("published_digest") == own
                    and record.get("base_model") == self.base_model)

    def _remove(self, engine_id: str) -> None:
        target = self.published(engine_id)
        if target.parent.resolve() != self.folder.resolve():
            log.warning("not deleting %s: it is not a published adapter in %s", target,
                        self.folder)
            return
        # Renamed away first, so that a server never reads a half-deleted folder; what an
        # earlier withdraw of this id left behind (a crash mid-way) goes too.
        discard(target)
        sweep(self.folder, engine_id)
