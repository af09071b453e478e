"""Gateway overhead against an instant fake engine, measured side by side in one run.

Prints the median latency of a non-streaming chat request sent to the engine directly
and through the gateway (one client, requests interleaved), the difference, and the
gateway's resident memory. Target: at most 1 ms added at the median, RSS under 200 MB.

    .venv/bin/python -m benchmarks.bench_overhead [--requests 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx
import psutil

from benchmarks._procs import MODEL, fake_engine, gateway
from tests.servers import free_port

BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Route this ticket."}],
        "max_tokens": 32}


def _timed(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    response = client.post(url, json=BODY)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with fake_engine(free_port()) as engine_url:
        port = free_port()
        with gateway(port, engine_url) as proc, httpx.Client() as client:
            direct_url = f"{engine_url}/v1/chat/completions"
            via_url = f"http://127.0.0.1:{port}/v1/chat/completions"
            for _ in range(200):
                _timed(client, direct_url)
                _timed(client, via_url)
            direct, via = [], []
            for _ in range(args.requests):
                direct.append(_timed(client, direct_url))
                via.append(_timed(client, via_url))
            rss_mb = psutil.Process(proc.pid).memory_info().rss / 2**20
    d_ms, v_ms = statistics.median(direct) * 1000, statistics.median(via) * 1000
    print(f"requests per path:        {args.requests}")
    print(f"median direct to engine:  {d_ms:.3f} ms")
    print(f"median through gateway:   {v_ms:.3f} ms")
    print(f"added by the gateway:     {v_ms - d_ms:.3f} ms  (target <= 1 ms)"
          f"  ratio {v_ms / d_ms:.2f}x")
    print(f"gateway RSS:              {rss_mb:.1f} MB  (target < 200 MB)")


if __name__ == "__main__":
    main()
