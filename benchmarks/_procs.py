"""Starts the fake engine and the gateway as separate processes for benchmarks."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from gateway.engine.model_prep import default_model_dir
from gateway.wiring.store import BUNDLED_BASE_CONFIG
from tests.servers import wait_until_up

ROOT = Path(__file__).resolve().parent.parent
MODEL = "base-model"


def wait_for(url: str, timeout: float = 30.0) -> None:
    wait_until_up(url, timeout, interval=0.1)


@contextlib.contextmanager
def process(
    args: list[str], env: dict[str, str] | None = None, quiet: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """Runs a server; ``quiet`` sends its output (e.g. the access log) to /dev/null."""
    out = subprocess.DEVNULL if quiet else None
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out,
                            stderr=out)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@contextlib.contextmanager
def fake_engine(port: int) -> Iterator[str]:
    with process([sys.executable, "-m", "tests.fakes.serve", "--port", str(port),
                  "--model", MODEL]):
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/health")
        yield url


@contextlib.contextmanager
def gateway(port: int, engine_url: str, **settings: object) -> Iterator[subprocess.Popen[bytes]]:
    roots = tempfile.mkdtemp(prefix="bench-adapters-")
    # The compile check runs the engine's compiler for the bundled model's tokenizer, as an
    # embedded engine's would.
    structured = dict(settings.pop("structured", {}))  # type: ignore[call-overload]
    structured["grammar_check"] = {"tokenizer": str(default_model_dir()),
                                   **structured.get("grammar_check", {})}
    config = {"server": {"port": port, "log_level": "info"},
              "engine": {"mode": "remote", "urls": [engine_url], "model": MODEL},
              "adapters": {"watch": False, "roots": [roots],
                           "base_model_config": str(BUNDLED_BASE_CONFIG)},
              "structured": structured, **settings}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        json.dump(config, handle)
    try:
        command = [sys.executable, "-m", "gateway", "serve", "--config", handle.name]
        # Logging at info, as in production: the access log's cost is part of the overhead.
        with process(command, quiet=True) as proc:
            wait_for(f"http://127.0.0.1:{port}/ready")
            yield proc
    finally:
        os.unlink(handle.name)
        os.rmdir(roots)
