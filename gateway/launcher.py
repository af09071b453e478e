"""Starts a gateway as a child process for a tool's run (eval, load tests, benchmarks).

The tools talk to the gateway over HTTP like any client; this only runs
``adapter-gateway serve`` with the options given, waits until it is ready, and stops it.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from gateway.engine.supervisor import free_port

READY_TIMEOUT_S = 900


@contextlib.contextmanager
def local_gateway(
    url: str | None,
    out: Path,
    *,
    config: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """``url``, or a gateway started for the run (and stopped after it); yields its URL.

    ``config`` is the gateway's config file (default: the embedded setup); its log goes to
    ``out/gateway.log``.
    """
    if url is not None:
        yield url.rstrip("/")
        return
    port = free_port()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "gateway.log"
    command = [sys.executable, "-m", "gateway", "serve", "--port", str(port)]
    if config is not None:
        command += ["--config", str(config)]
    sys.stderr.write(f"starting the gateway on port {port} (log: {log}); an embedded engine "
                     "takes a minute or two to load\n")
    with log.open("ab") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT,
                                env=None if env is None else dict(env))
    local = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(local, proc, log)
        yield local
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ValueError(f"the gateway exited with status {proc.returncode}; see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                return
        time.sleep(1)
    raise ValueError(f"the gateway was not ready after {READY_TIMEOUT_S} s; see {log}")
