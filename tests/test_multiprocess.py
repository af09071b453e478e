"""``adapter-gateway serve`` with several workers: one /metrics for all, one engine for all.

The gateway runs as a real command (``python -m gateway serve``) with two uvicorn workers,
in front of the fake engine served by its own process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import multiprocess

from gateway.engine.model_prep import MARKER
from gateway.wiring.store import BUNDLED_BASE_CONFIG
from tests.metrics_reader import parse, value
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
MODEL = "base-model"
WORKERS = 2
REQUESTS = 40
START_TIMEOUT_S = 60.0
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Route this ticket."}]}

# Stands in for `python` in the engine's command line: notes that it was started, then serves
# the fake engine on the port the gateway chose, for the served model name it was given.
FAKE_PYTHON = """#!{python}
import os, sys
args = sys.argv[1:]
# Beside the model folder: the engine inherits no test variables (an allow-list).
with open(os.path.join(args[args.index("--model") + 1], os.pardir, "engine-starts"), "a") as starts:
    starts.write(f"{{os.getpid()}}\\n")
os.execv(sys.executable, [sys.executable, "-m", "tests.fakes.serve",
         "--port", args[args.index("--port") + 1],
         "--model", args[args.index("--served-model-name") + 1]])
"""


@contextmanager
def _process(args: list[str], log: Path, env: dict[str, str] | None = None,
             ) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})
    try:
        yield proc
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _wait_ok(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer 200 (exit {proc.poll()}):\n{log.read_text()}")


@contextmanager
def _fake_engine(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "engine.log"
    with _process([sys.executable, "-m", "tests.fakes.serve", "--port", str(port),
                   "--model", MODEL], log) as proc:
        url = f"http://127.0.0.1:{port}"
        _wait_ok(f"{url}/health", proc, log)
        yield url


@contextmanager
def _gateway(tmp_path: Path, engine: dict[str, Any], metrics: dict[str, Any],
             env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    config = {"server": {"port": port, "workers": WORKERS, "log_level": "warning"},
              "engine": {"model": MODEL, "health_interval_s": 0.2, **engine},
              "adapters": {"roots": [str(tmp_path / "adapters")], "watch": False,
                           "staging_dir": str(tmp_path / "staging"),
                           "base_model_config": str(BUNDLED_BASE_CONFIG)},
              "metrics": metrics}
    (tmp_path / "adapters").mkdir()
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(json.dumps(config))
    log = tmp_path / "gateway.log"
    with _process([sys.executable, "-m", "gateway", "serve", "--config", str(config_file)],
                  log, env) as proc:
        url = f"http://127.0.0.1:{port}"
        _wait_ok(f"{url}/ready", proc, log)
        yield url, proc


def _send(url: str, count: int) -> list[int]:
    """``count`` chat requests, 8 at a time, each on a connection of its own."""
    def one(_: int) -> int:
        return httpx.post(f"{url}/v1/chat/completions", json=BODY, timeout=10.0).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(count)))


def _requests_total(url: str, expected: float) -> float:
    """gateway_requests_total once it reaches ``expected`` (a worker records after answering)."""
    deadline = time.monotonic() + 5.0
    while True:
        total = value(parse(httpx.get(f"{url}/metrics").text), "gateway_requests_total")
        if total >= expected or time.monotonic() > deadline:
            return total
        time.sleep(0.05)


def _requests_by_worker(directory: Path) -> dict[int, float]:
    """gateway_requests_total of each worker, read from that worker's own file."""
    counts = {}
    for file in directory.glob("counter_*.db"):
        families = multiprocess.MultiProcessCollector.merge([str(file)])  # type: ignore[no-untyped-call]
        counts[int(file.stem.rpartition("_")[2])] = sum(
            s.value for f in families for s in f.samples if s.name == "gateway_requests_total")
    return counts


def _stale_counter(directory: Path) -> None:
    """What an earlier run leaves behind: 1000 requests counted by a process now gone."""
    directory.mkdir(parents=True)
    code = ("import sys; from pathlib import Path; from gateway.metrics import GatewayMetrics; "
            "GatewayMetrics(multiprocess_dir=Path(sys.argv[1]))"
            ".requests.labels('base', 'chat', '200').inc(1000)")
    subprocess.run([sys.executable, "-c", code, str(directory)], cwd=ROOT, check=True,
                   env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)})
    assert list(directory.glob("counter_*.db"))


def _serving_workers(directory: Path) -> int:
    return sum(1 for count in _requests_by_worker(directory).values() if count > 0)


def test_metrics_of_every_worker_add_up(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    _stale_counter(directory)
    with _fake_engine(tmp_path) as engine_url, _gateway(
        tmp_path, {"mode": "remote", "urls": [engine_url]}, {"multiprocess_dir": str(directory)}
    ) as (url, _):
        sent = 0
        # The kernel hands each connection to whichever worker accepts first, so one worker
        # may take a whole round; a few rounds reach both.
        while sent == 0 or (_serving_workers(directory) < WORKERS and sent < 10 * REQUESTS):
            assert _send(url, REQUESTS) == [200] * REQUESTS
            sent += REQUESTS
        assert _requests_total(url, sent) == sent
        samples = parse(httpx.get(f"{url}/metrics").text)
        by_worker = _requests_by_worker(directory)
    assert value(samples, "gateway_requests_total", adapter="base", status="200") == sent
    assert value(samples, "gateway_request_duration_seconds_count") == sent
    # Both workers report the engine ready: the gauge takes the maximum, not the sum.
    assert value(samples, "gateway_engine_ready") == 1
    assert sorted(count > 0 for count in by_worker.values()) == [True] * WORKERS, by_worker
    assert sum(by_worker.values()) == sent


def test_an_embedded_engine_is_started_once_for_all_workers(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / MARKER).write_text("{}")
    fake_python = tmp_path / "python"
    fake_python.write_text(FAKE_PYTHON.format(python=sys.executable))
    fake_python.chmod(0o755)
    starts = tmp_path / "engine-starts"
    engine = {"mode": "embedded", "model_path": str(model), "python": str(fake_python),
              "log_file": str(tmp_path / "vllm.log")}
    with _gateway(tmp_path, engine, {}) as (url, proc):
        assert _send(url, REQUESTS) == [200] * REQUESTS
        assert _requests_total(url, REQUESTS) == REQUESTS
        engine_pid = int(starts.read_text())
        _stop(proc)
        assert proc.returncode == 0
    assert starts.read_text().split() == [str(engine_pid)]
    with pytest.raises(ProcessLookupError):
        os.kill(engine_pid, 0)  # stopped with the gateway
