"""A real Prometheus server for tests: started on a free loopback port, queried over its HTTP
API, stopped cleanly.

`shipped_config` turns config/prometheus/prometheus.yml into one that scrapes a test target
every second, so the tests exercise the shipped jobs, paths and rules rather than a copy.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.monitoring.contract import PROMETHEUS_CONFIG, PROMETHEUS_DIR, load_yaml
from tests.servers import free_port

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class PrometheusError(RuntimeError):
    """Prometheus did not start, or answered a query with an error."""


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector."""

    labels: dict[str, str]
    value: float


def shipped_config(target: str, interval_s: float = 1.0) -> dict[str, Any]:
    """The shipped prometheus.yml, pointed at `target` (host:port) and sped up for tests."""
    config = load_yaml(PROMETHEUS_CONFIG)
    interval = f"{int(interval_s * 1000)}ms"
    config["global"].update(
        scrape_interval=interval, scrape_timeout=interval, evaluation_interval=interval
    )
    config["rule_files"] = [str(PROMETHEUS_DIR / path) for path in config["rule_files"]]
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [target]}]
    return config


@dataclass(frozen=True)
class PrometheusServer:
    """A running server and a client for its HTTP API."""

    url: str
    client: httpx.Client

    def query(self, expr: str) -> list[Sample]:
        """The instant vector `expr` evaluates to now."""
        response = self.client.get(f"{self.url}/api/v1/query", params={"query": expr})
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(f"query {expr!r} failed: {response.status_code} {body}")
        if body["data"]["resultType"] != "vector":
            raise PrometheusError(f"query {expr!r} is not an instant vector")
        return [
            Sample(item["metric"], float(item["value"][1])) for item in body["data"]["result"]
        ]

    def wait_for(
        self,
        expr: str,
        until: Callable[[list[Sample]], bool] = bool,
        timeout_s: float = 30.0,
    ) -> list[Sample]:
        """Queries `expr` until `until` accepts the result; the last result on timeout."""
        deadline = time.monotonic() + timeout_s
        result = self.query(expr)
        while not until(result) and time.monotonic() < deadline:
            time.sleep(0.25)
            result = self.query(expr)
        return result


@contextmanager
def running_prometheus(
    binary: Path, config: dict[str, Any], workdir: Path
) -> Iterator[PrometheusServer]:
    """Starts Prometheus with `config`, waits until it is ready, and stops it on exit."""
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{free_port()}"
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(binary),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={url.removeprefix('http://')}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            with httpx.Client(timeout=httpx.Timeout(5.0, connect=1.0)) as client:
                _wait_ready(client, url, process, log_path)
                yield PrometheusServer(url, client)
        finally:
            _stop(process)


def _wait_ready(
    client: httpx.Client, url: str, process: subprocess.Popen[bytes], log_path: Path
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if client.get(f"{url}/-/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.1)
    tail = log_path.read_text(errors="replace")[-3000:]
    raise PrometheusError(
        f"Prometheus at {url} was not ready within {READY_TIMEOUT_S:.0f}s "
        f"(exit code {process.poll()}); its log ends with:\n{tail}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)
