"""How fast the gateway refuses hostile schemas, beside a normal request, in one run.

Each hostile schema is sent through the gateway (a separate process, in front of an instant
fake engine); the script prints the median time to the 400 beside a plain chat request.
Target: every hostile schema refused in under 100 ms.

    .venv/bin/python -m benchmarks.bench_hostile_schemas [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import httpx

from benchmarks._procs import MODEL, fake_engine, gateway
from tests.api.test_hostile_schemas import HOSTILE
from tests.servers import free_port


def _request(schema: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    if schema is not None:
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "hostile", "schema": schema}}
    return body


def _median_ms(client: httpx.Client, url: str, body: dict[str, Any], repeat: int,
               status: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.post(url, json=body)
        times.append(time.perf_counter() - started)
        assert response.status_code == status, response.text[:200]
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with fake_engine(free_port()) as engine_url:
        port = free_port()
        with gateway(port, engine_url), httpx.Client(timeout=30) as client:
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            plain = _median_ms(client, url, _request(None), args.repeat, 200)
            print(f"{'plain chat (200)':28} {plain:8.2f} ms")
            for name, schema in HOSTILE.items():
                ms = _median_ms(client, url, _request(schema), args.repeat, 400)
                verdict = "ok" if ms < 100 else "OVER 100 ms"
                print(f"{name + ' (400)':28} {ms:8.2f} ms  {ms / plain:6.1f}x plain  {verdict}")


if __name__ == "__main__":
    main()
