"""What the gateway's metrics cost: throughput with metrics on and off, and one scrape.

Throughput: two gateways (``metrics.enabled`` true and false) in front of one instant fake
engine, each a separate process, measured in alternating rounds with concurrent clients on
keep-alive connections; prints the median requests per second of each, the gateway
process's CPU time per request, and the on/off ratios (median over back-to-back pairs of
rounds, each round with a fresh pair of gateway processes), and the time recording one
request's metrics takes in process. Target: metrics on costs at most 3 %. On a shared
machine the requests per second swing by tens of percent between rounds; the CPU time per
request and the in-process recording time are the steadier figures.

Scrape: the median time of ``render()`` on a GatewayMetrics holding the series of 20 adapters
(every endpoint, status, histogram, schema, deviation kind and retry strategy they can
produce). Target: under 10 ms.

    .venv/bin/python -m benchmarks.bench_metrics [--rounds 10] [--requests 2000] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import timeit
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil

from benchmarks._procs import MODEL, fake_engine, gateway
from gateway.metrics import BASE, GatewayMetrics, render
from gateway.structured.deviations import DeviationKind
from gateway.structured.retry import Strategy
from gateway.wiring.metrics import gateway_metrics
from tests.servers import free_port

BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Route this ticket."}],
        "max_tokens": 32}
ADAPTERS = 20
SCHEMAS = ("ticket", "contact", "sentiment")
SCRAPES = 200


@dataclass(frozen=True)
class Round:
    """One round against one gateway."""

    per_second: float
    cpu_us: float  # the gateway process's CPU time per request


async def _send(url: str, requests: int, clients: int) -> float:
    """Requests per second for ``requests`` requests sent by ``clients`` concurrent clients."""
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(jobs: Iterator[int]) -> None:
            for _ in jobs:
                async with session.post(url, json=BODY) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url} answered {response.status}")

        warm_up = iter(range(clients * 4))  # opens every connection before the clock starts
        await asyncio.gather(*(client(warm_up) for _ in range(clients)))
        jobs = iter(range(requests))
        started = time.perf_counter()
        await asyncio.gather(*(client(jobs) for _ in range(clients)))
        return requests / (time.perf_counter() - started)


def _round(url: str, process: psutil.Process, requests: int, clients: int) -> Round:
    before = process.cpu_times()
    per_second = asyncio.run(_send(url, requests, clients))
    after = process.cpu_times()
    cpu = (after.user - before.user) + (after.system - before.system)
    # The CPU time includes the warm-up requests.
    return Round(per_second, cpu / (requests + clients * 4) * 1e6)


@contextmanager
def _engine_and_store() -> Iterator[tuple[str, dict[str, object]]]:
    """The fake engine's URL, and adapter settings naming an empty store."""
    with tempfile.TemporaryDirectory() as folder, fake_engine(free_port()) as engine_url:
        store = Path(folder)
        yield engine_url, {"watch": False, "roots": [str(store)],
                           "staging_dir": str(store / "staged")}


@contextmanager
def _gateways(engine_url: str, adapters: dict[str, object], order: tuple[str, str],
              ) -> Iterator[dict[str, tuple[str, psutil.Process]]]:
    """Chat URL and process of a fresh gateway with metrics on and of one with them off."""
    with ExitStack() as stack:
        found = {}
        for name in order:
            port = free_port()
            proc = stack.enter_context(gateway(port, engine_url, adapters=adapters,
                                               metrics={"enabled": name == "on"}))
            found[name] = (f"http://127.0.0.1:{port}/v1/chat/completions",
                           psutil.Process(proc.pid))
        yield found


def throughput(rounds: int, requests: int, clients: int) -> dict[str, list[Round]]:
    """Each round starts a fresh pair of gateways: two processes of the same program differ
    by several percent in speed (memory layout, hash seeds), more than metrics cost."""
    results: dict[str, list[Round]] = {"on": [], "off": []}
    with _engine_and_store() as (engine_url, adapters):
        for index in range(rounds):
            # Alternate which starts and goes first, so neither position favours one side.
            order = ("on", "off") if index % 2 == 0 else ("off", "on")
            with _gateways(engine_url, adapters, order) as gateways:
                for name in order:
                    results[name].append(_round(*gateways[name], requests, clients))
    return results


def recording_us(metrics: GatewayMetrics, repeat: int = 20_000) -> float:
    """Microseconds the metrics of one non-streaming request take to record, in process."""
    recorder = metrics.record

    def record() -> None:  # as the target lease, the inference service and the middleware do
        in_flight = recorder.in_flight(BASE)
        in_flight.inc()
        recorder.upstream(BASE, "chat", 0.0008)
        recorder.tokens(BASE, 10, 20)
        in_flight.dec()
        recorder.request_finished("chat", BASE, 200, 0.0012, 0.0008)

    return min(timeit.repeat(record, number=repeat, repeat=5)) / repeat * 1e6


def _paired_ratio(on: list[float], off: list[float]) -> float:
    """Median over rounds of on / off: rounds run back to back share the machine's load."""
    return statistics.median(a / b for a, b in zip(on, off, strict=True))


def populated(adapters: int = ADAPTERS) -> GatewayMetrics:
    """Metrics holding every series ``adapters`` adapters in full use produce."""
    metrics = gateway_metrics()
    for schema in SCHEMAS:
        metrics.schemas.add(schema)
    for index in range(adapters):
        name = f"adapter-{index:02d}"
        metrics.adapters.add(name)
        _traffic(metrics, metrics.adapter_label(name))
    return metrics


def _traffic(metrics: GatewayMetrics, adapter: str) -> None:
    for endpoint in ("chat", "completions"):
        for status in ("200", "400", "422", "500"):
            metrics.requests.labels(adapter, endpoint, status).inc()
        metrics.request_duration.labels(adapter, endpoint).observe(0.3)
        metrics.upstream_duration.labels(adapter, endpoint).observe(0.29)
        metrics.overhead.labels(endpoint).observe(0.0004)
    metrics.in_flight.labels(adapter).set(1)
    metrics.time_to_first_token.labels(adapter).observe(0.05)
    metrics.inter_token_latency.labels(adapter).observe(0.01)
    metrics.prompt_tokens.labels(adapter).inc(10)
    metrics.completion_tokens.labels(adapter).inc(20)
    metrics.adapter_loads.labels(adapter, "success").inc()
    metrics.adapter_load_duration.labels(adapter).observe(1.5)
    for schema in SCHEMAS:
        label = metrics.schema_label(schema)
        metrics.ensure_structured_series(adapter, label)
        metrics.structured_checks.labels(adapter, label).inc(10)
        for kind in DeviationKind:
            metrics.structured_deviations.labels(adapter, label, kind.value).inc()
        for strategy in Strategy:
            metrics.structured_retries.labels(adapter, label, strategy.value).inc()


def scrape_ms(metrics: GatewayMetrics, scrapes: int = SCRAPES) -> tuple[float, int, int]:
    """Median milliseconds of one render(), the exposition's size in bytes and samples."""
    timings = []
    for _ in range(scrapes):
        started = time.perf_counter()
        text = render(metrics)
        timings.append(time.perf_counter() - started)
    samples = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    return statistics.median(timings) * 1000, len(text), samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=2000, help="requests per round")
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    ms, size, samples = scrape_ms(populated())
    recording = recording_us(gateway_metrics())
    results = throughput(args.rounds, args.requests, args.clients)
    rates = {name: [r.per_second for r in rounds] for name, rounds in results.items()}
    cpu = {name: [r.cpu_us for r in rounds] for name, rounds in results.items()}
    print(f"rounds x requests:     {args.rounds} x {args.requests}, {args.clients} clients")
    for name in ("on", "off"):
        print(f"metrics {name + ':':<5}         median {statistics.median(rates[name]):6.0f} req/s"
              f"  {statistics.median(cpu[name]):6.1f} us gateway CPU per request"
              f"   (req/s by round: {' '.join(f'{r:.0f}' for r in rates[name])})")
    rate_ratio = _paired_ratio(rates["on"], rates["off"])
    cpu_ratio = _paired_ratio(cpu["on"], cpu["off"])
    print(f"on / off, req/s:       {rate_ratio:.3f}  (cost {100 * (1 - rate_ratio):+.1f} %, "
          "target <= 3 %)")
    print(f"on / off, CPU/request: {cpu_ratio:.3f}  (cost {100 * (cpu_ratio - 1):+.1f} %)")
    off_cpu = statistics.median(cpu["off"])
    print(f"recording, in process: {recording:.1f} us per request "
          f"({100 * recording / off_cpu:.1f} % of the gateway's CPU per request)")
    print(f"scrape, {ADAPTERS} adapters:    {ms:.2f} ms median over {SCRAPES} renders "
          f"({samples} samples, {size / 1024:.0f} KiB; target < 10 ms)")


if __name__ == "__main__":
    main()
