"""Load/unload cycles against a running gateway: does memory come back after each adapter?

Each cycle loads an adapter with new content through the admin API, sends it one short
request (so the engine really applies it), and deletes it. Prints the resident memory of
the gateway process and of the engine (the gateway's child processes) before and after.

    # against a running gateway whose adapter store is DIR:
    .venv/bin/python -m benchmarks.bench_adapter_cycles --url http://127.0.0.1:8000 \\
        --store DIR --admin-key KEY [--cycles 100]
    # or start an embedded gateway (real vLLM, bundled model) in a temporary folder:
    .venv/bin/python -m benchmarks.bench_adapter_cycles --start [--cycles 100]

The adapters are written under ``DIR/.bench-cycles/`` (a hidden folder: the store's
watcher ignores it) and removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

from tests.adapter_factory import write_adapter
from tests.servers import free_port, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
WORK_FOLDER = ".bench-cycles"
ADMIN_KEY_ENV = "GATEWAY_ADMIN_KEY"
MB = 2**20


@dataclass(frozen=True)
class Rss:
    """Resident memory in MB: the gateway process and its child processes (the engine)."""

    gateway_mb: float
    engine_mb: float

    @property
    def total_mb(self) -> float:
        return self.gateway_mb + self.engine_mb


def measure(gateway_pid: int) -> Rss:
    gateway = psutil.Process(gateway_pid)
    engine = 0
    for child in gateway.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            engine += child.memory_info().rss
    return Rss(gateway.memory_info().rss / MB, engine / MB)


def listening_pid(url: str) -> int:
    """The process listening on the URL's port (the gateway)."""
    port = urlsplit(url).port
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.pid and (
            conn.laddr[1] == port
        ):
            return conn.pid
    raise SystemExit(f"no process of this user listens on port {port}; pass --gateway-pid")


class Cycler:
    """Writes adapters under ``store`` and loads, uses and deletes them through ``admin``."""

    def __init__(self, admin: httpx.Client, store: Path, name: str = "bench-cycle") -> None:
        self.admin, self.name, self.store = admin, name, store
        self.work = store / WORK_FOLDER / name
        self._seed = 0

    def cycle(self, requests: int = 1) -> None:
        self._seed += 1
        folder = write_adapter(self.work / str(self._seed), name=self.name,
                               version=str(self._seed), seed=self._seed)
        relative = folder.relative_to(self.store)
        try:
            loaded = self.admin.post("/v1/adapters", json={"path": str(relative)})
            _expect(loaded, 201)
            for _ in range(requests):
                body = {"model": self.name, "max_tokens": 1,
                        "messages": [{"role": "user", "content": "hi"}]}
                _expect(self.admin.post("/v1/chat/completions", json=body), 200)
            _expect(self.admin.delete(f"/v1/adapters/{self.name}"), 200)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def run(self, cycles: int, requests: int = 1) -> float:
        """Runs ``cycles`` cycles; returns their mean duration in seconds."""
        started = time.perf_counter()
        for _ in range(cycles):
            self.cycle(requests)
        return (time.perf_counter() - started) / max(cycles, 1)

    def close(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.work.parent.rmdir()  # unless another run still uses it


def _expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: "
                           f"{response.status_code} {response.text[:500]}")


def report(label: str, rss: Rss) -> None:
    print(f"{label:<22} gateway {rss.gateway_mb:8.1f} MB   engine {rss.engine_mb:8.1f} MB   "
          f"total {rss.total_mb:8.1f} MB")


def benchmark(url: str, store: Path, admin_key: str, gateway_pid: int, cycles: int,
              warmup: int) -> None:
    headers = {"authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as admin:
        cycler = Cycler(admin, store)
        try:
            cycler.run(warmup)
            before = measure(gateway_pid)
            mean_s = cycler.run(cycles)
            time.sleep(1.0)  # let the last unload and the allocator settle
            after = measure(gateway_pid)
        finally:
            cycler.close()
    print(f"cycles: {cycles} (after {warmup} warm-up), one request each, "
          f"mean {mean_s * 1000:.0f} ms per cycle")
    report("before", before)
    report("after", after)
    print(f"{'growth':<22} gateway {after.gateway_mb - before.gateway_mb:+8.1f} MB   "
          f"engine {after.engine_mb - before.engine_mb:+8.1f} MB   "
          f"total {after.total_mb - before.total_mb:+8.1f} MB")


@contextlib.contextmanager
def embedded_gateway() -> Iterator[tuple[str, Path, str, int]]:
    """An embedded gateway (real vLLM) in a temporary folder: (url, store, admin key, pid)."""

    with tempfile.TemporaryDirectory(prefix="bench-cycles-") as tmp:
        base = Path(tmp)
        store, port, key = base / "adapters", free_port(), "bench-admin-key"
        store.mkdir()
        config = {
            "server": {"port": port, "log_level": "warning"},
            "auth": {"keys": [{"name": "bench", "scope": "admin", "key": key}]},
            "engine": {"mode": "embedded", "log_file": str(base / "vllm.log")},
            "adapters": {"roots": [str(store)], "watch": False,
                         "staging_dir": str(base / "staging")},
        }
        (base / "gateway.yaml").write_text(json.dumps(config))
        command = [sys.executable, "-m", "gateway", "serve", "--config", str(base / "gateway.yaml")]
        proc = subprocess.Popen(command, cwd=ROOT)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url, proc)
            yield url, store, key, proc.pid
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 600) -> None:
    try:
        wait_until_up(f"{url}/ready", timeout, proc, interval=1.0)
    except RuntimeError as exc:
        raise SystemExit(f"the gateway did not become ready: {exc}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running gateway")
    parser.add_argument("--store", type=Path, help="that gateway's (first) adapter root")
    parser.add_argument("--admin-key", default=os.environ.get(ADMIN_KEY_ENV, ""),
                        help=f"an admin API key (default: ${ADMIN_KEY_ENV})")
    parser.add_argument("--gateway-pid", type=int, help="default: the port's listener")
    parser.add_argument("--start", action="store_true", help="start an embedded gateway")
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    if args.start:
        with embedded_gateway() as (url, store, key, pid):
            benchmark(url, store, key, pid, args.cycles, args.warmup)
        return
    if not (args.url and args.store):
        parser.error("give --url and --store of a running gateway, or --start")
    pid = args.gateway_pid or listening_pid(args.url)
    benchmark(args.url, args.store, args.admin_key, pid, args.cycles, args.warmup)


if __name__ == "__main__":
    main()
