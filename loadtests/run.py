"""Runs a bounded, headless locust load test and fails when a threshold is missed.

    .venv/bin/python -m loadtests.run                         # the embedded setup (vLLM)
    .venv/bin/python -m loadtests.run --engine fake           # an instant fake engine
    .venv/bin/python -m loadtests.run --url http://127.0.0.1:8000

It starts the gateway (unless ``--url`` names a running one on loopback), prepares a
hot swap (two versions of an adapter that an operator user loads in turn while clients
use it), runs locust for ``--duration`` with ``--users``, and writes to ``--out``:
locust's CSV files and HTML report, the gateway's ``/metrics`` before and after, and
``summary.json`` / ``summary.md``. The exit status is 1 when any threshold is missed
(error ratio, p95 latency, p95 time to first token, deviation rate, exhausted ratio),
2 on a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.launcher import local_gateway
from gateway.wiring.store import BUNDLED_BASE_CONFIG

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
SWAP_SOURCE = ROOT / "adapters" / "ticket-router"
SWAP_NAME = "ticket-router-swap"
# Entries the locustfile records beside the HTTP requests, and its entry names.
EXTRA_ENTRIES = ("TTFT", "ITL", "VERDICT")
SWAP_CLIENTS, SWAP_OPERATOR = "hot-swapped adapter", "hot swap (admin load)"
SAMPLES = "samples.json"


@dataclass(frozen=True)
class Thresholds:
    max_error_ratio: float
    max_p95_ms: float
    max_ttft_p95_ms: float
    max_deviation_rate: float
    max_exhausted_ratio: float


@dataclass
class Summary:
    requests: int
    failures: int
    error_ratio: float
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    ttft_p95_ms: float | None
    itl_p50_ms: float | None
    verdicts: dict[str, int]
    structured_requests: float
    structured_checks: float
    deviations: float
    deviation_rate: float | None
    exhausted: float
    exhausted_ratio: float | None
    stopped_early: float
    hot_swaps: int
    hot_swap_failures: int
    missed: list[str]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _check_loopback(args.url)
        _seconds(args.duration)
        thresholds = Thresholds(args.max_error_ratio, args.max_p95_ms, args.max_ttft_p95_ms,
                                args.max_deviation_rate, args.max_exhausted_ratio)
        summary = run(args, thresholds)
    except ValueError as exc:
        sys.stderr.write(f"loadtest: {exc}\n")
        return 2
    except httpx.HTTPError as exc:
        sys.stderr.write(f"loadtest: the gateway did not answer: {exc!r}\n")
        return 2
    _print(summary, args.out)
    return 1 if summary.missed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtests.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--url", help="a running gateway on loopback (default: start one)")
    target.add_argument("--engine", choices=("embedded", "fake"), default="embedded",
                        help="the engine of the gateway started for the run")
    parser.add_argument("--config", type=Path, default=ROOT / "loadtests" / "config.yaml",
                        help="the traffic mix (loadtests/config.yaml)")
    parser.add_argument("--users", type=int, default=8, help="concurrent users")
    parser.add_argument("--spawn-rate", type=float, default=4.0, help="users started per second")
    parser.add_argument("--duration", default="60s", help="run time: 30s, 2m, ...")
    parser.add_argument("--no-hot-swap", action="store_true",
                        help="no operator publishing adapter versions during the run")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "loadtest",
                        help="reports folder")
    thresholds = parser.add_argument_group("thresholds (the run fails when one is missed)")
    thresholds.add_argument("--max-error-ratio", type=float, default=0.0)
    thresholds.add_argument("--max-p95-ms", type=float, default=15_000)
    thresholds.add_argument("--max-ttft-p95-ms", type=float, default=5_000)
    thresholds.add_argument("--max-deviation-rate", type=float, default=0.05,
                            help="first-attempt deviations per structured check")
    thresholds.add_argument("--max-exhausted-ratio", type=float, default=0.0,
                            help="structured requests with no valid answer")
    return parser


def _check_loopback(url: str | None) -> None:
    """Load goes to this machine only: a load test is not a way to flood another host."""
    if url is None:
        return
    host = urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError as exc:
        raise ValueError(f"cannot resolve {host!r}: {exc}") from exc
    if not addresses or not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        raise ValueError(f"{url} is not on loopback; load tests target this machine only")


def run(args: argparse.Namespace, thresholds: Thresholds) -> Summary:
    args.out.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(args.config.read_text()) or {}
    with tempfile.TemporaryDirectory(prefix="loadtest-") as scratch, \
            _setup(args, config, Path(scratch)) as (url, swap):
        if swap is not None:
            config["hot_swap"] = swap
            _load(url, swap["folders"][0], swap["name"])
        mix = Path(scratch) / "config.yaml"
        mix.write_text(yaml.safe_dump(config))
        before = _metrics(url)
        _locust(args, url, mix)
        after = _metrics(url)
    (args.out / "metrics-before.txt").write_text(before)
    (args.out / "metrics-after.txt").write_text(after)
    summary = _summarize(args.out, _totals(before), _totals(after), thresholds)
    (args.out / "summary.json").write_text(json.dumps(asdict(summary), indent=2) + "\n")
    (args.out / "summary.md").write_text(_markdown(summary, args))
    return summary


@contextlib.contextmanager
def _setup(
    args: argparse.Namespace, config: dict[str, Any], scratch: Path
) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """The gateway's URL, and the hot swap prepared for it (None when there is none)."""
    if args.url is not None:
        yield args.url.rstrip("/"), None if args.no_hot_swap else config.get("hot_swap")
        return
    swap_root = scratch / "swap-store"
    swap = None if args.no_hot_swap else {
        "name": SWAP_NAME, "folders": adapter_versions(swap_root, SWAP_NAME, ["a", "b"]),
        "every_s": 3}
    env = {**os.environ,
           "GATEWAY_ADAPTERS__ROOTS": json.dumps([str(ROOT / "adapters"), str(swap_root)])}
    with contextlib.ExitStack() as stack:
        if args.engine == "fake":
            engine_url = stack.enter_context(_fake_engine(str(config.get("model",
                                                                       "SmolLM2-135M-Instruct"))))
            env.update({"GATEWAY_ENGINE__MODE": "remote",
                        "GATEWAY_ENGINE__URLS": json.dumps([engine_url]),
                        "GATEWAY_ADAPTERS__BASE_MODEL_CONFIG": str(BUNDLED_BASE_CONFIG)})
        url = stack.enter_context(local_gateway(None, args.out, env=env))
        yield url, swap


def adapter_versions(root: Path, name: str, versions: list[str], *, flat: bool = False,
                     serving: dict[str, Any] | None = None) -> list[str]:
    """Copies of the shipped ticket router as adapter ``name``, one folder per version.

    Each version differs in content (so in digest, and the engine loads it as a new
    adapter) but not in weights. Folders are ``root/name/version``, or ``root/name`` with
    ``flat`` (one version, at a store root). ``serving`` replaces the manifest's serving
    defaults (the ticket router's make every answer a validated ticket).
    """
    folders = []
    for version in versions:
        folder = root / name if flat else root / name / version
        shutil.copytree(SWAP_SOURCE, folder)
        manifest = yaml.safe_load((folder / "adapter.yaml").read_text())
        manifest.pop("digest", None)
        manifest.update(name=name, version=version)
        if serving is not None:
            manifest["serving"] = serving
        (folder / "adapter.yaml").write_text(yaml.safe_dump(manifest))
        peft = json.loads((folder / "adapter_config.json").read_text())
        peft["revision"] = f"{name}-{version}"  # unused by serving; changes the digest
        (folder / "adapter_config.json").write_text(json.dumps(peft, indent=2))
        folders.append(str(folder))
    return folders


@contextlib.contextmanager
def _fake_engine(model: str) -> Iterator[str]:
    from gateway.engine.supervisor import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.serve", "--port", str(port),
                             "--model", model], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ValueError("the fake engine did not start")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _admin() -> dict[str, str]:
    """An admin key from the environment, if any (with keys, /metrics needs one too)."""
    key = os.environ.get("GATEWAY_ADMIN_KEY") or os.environ.get("GATEWAY_API_KEY")
    return {"authorization": f"Bearer {key}"} if key else {}


def _load(url: str, folder: str, name: str) -> None:
    headers = _admin()
    response = httpx.post(f"{url}/v1/adapters", json={"path": folder, "name": name,
                                                      "replace": True},
                          headers=headers, timeout=300)
    if response.status_code >= 400:
        raise ValueError(f"loading the hot-swap adapter failed: {response.text[:300]}")


def _locust(args: argparse.Namespace, url: str, mix: Path) -> None:
    seconds = _seconds(args.duration)
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
               "--host", url, "-u", str(args.users), "-r", str(args.spawn_rate),
               "-t", args.duration, "--stop-timeout", "30", "--only-summary",
               "--csv", str(args.out / "locust"), "--html", str(args.out / "report.html"),
               "--exit-code-on-error", "0"]
    env = {**os.environ, "LOADTEST_CONFIG": str(mix),
           "LOADTEST_SAMPLES": str(args.out / SAMPLES)}
    sys.stderr.write(f"locust: {args.users} users for {args.duration} against {url}\n")
    # Bounded twice: locust stops itself after the run time; this stops locust.
    try:
        subprocess.run(command, cwd=ROOT, env=env, check=True, timeout=seconds + 120)
    except subprocess.TimeoutExpired as exc:
        raise ValueError(f"locust did not stop within {seconds + 120:.0f} s") from exc
    except subprocess.CalledProcessError as exc:
        raise ValueError(f"locust failed with status {exc.returncode}") from exc


def _seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if duration[-1] in units:
            return float(duration[:-1]) * units[duration[-1]]
        return float(duration)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"--duration {duration!r}: expected e.g. 30s, 2m") from exc


def _metrics(url: str) -> str:
    response = httpx.get(f"{url}/metrics", headers=_admin(), timeout=30)
    response.raise_for_status()
    return response.text


def _totals(exposition: str) -> dict[str, float]:
    """Each gateway counter summed over its labels (``_total`` samples)."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name.startswith("gateway_") and sample.name.endswith("_total"):
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def _summarize(out: Path, before: dict[str, float], after: dict[str, float],
               thresholds: Thresholds) -> Summary:
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    samples = [Sample(*row) for row in json.loads((out / SAMPLES).read_text())]
    http = [x for x in samples if x.kind not in EXTRA_ENTRIES]
    requests, failures = len(http), sum(x.failed for x in http)
    span = (max(x.at for x in http) - min(x.at for x in http)) if len(http) > 1 else 0.0
    latency = [x.ms for x in http if not x.failed]
    swap_clients = [x for x in http if x.name in (SWAP_CLIENTS, SWAP_OPERATOR)]
    checks, deviations = delta("gateway_structured_checks_total"), delta(
        "gateway_structured_deviations_total")
    structured, exhausted = delta("gateway_structured_requests_total"), delta(
        "gateway_structured_exhausted_total")
    summary = Summary(
        requests=requests, failures=failures,
        error_ratio=failures / requests if requests else 1.0,
        requests_per_s=requests / span if span else 0.0,
        p50_ms=_percentile(latency, 50) or 0.0, p95_ms=_percentile(latency, 95) or 0.0,
        p99_ms=_percentile(latency, 99) or 0.0,
        ttft_p95_ms=_percentile([x.ms for x in samples if x.kind == "TTFT"], 95),
        itl_p50_ms=_percentile([x.ms for x in samples if x.kind == "ITL"], 50),
        verdicts=dict(Counter(x.name for x in samples if x.kind == "VERDICT")),
        structured_requests=structured, structured_checks=checks,
        deviations=deviations, deviation_rate=deviations / checks if checks else None,
        exhausted=exhausted, exhausted_ratio=exhausted / structured if structured else None,
        stopped_early=delta("gateway_structured_stopped_early_total"),
        hot_swaps=sum(x.name == SWAP_OPERATOR for x in http),
        hot_swap_failures=sum(x.failed for x in swap_clients),
        missed=[])
    summary.missed = _missed(summary, thresholds)
    return summary


@dataclass(frozen=True)
class Sample:
    """One locust entry, as the locustfile writes them (LOADTEST_SAMPLES)."""

    at: float
    kind: str
    name: str
    ms: float
    failed: bool


def _percentile(values: list[float], q: float) -> float | None:
    return float(numpy.percentile(values, q)) if values else None


def _missed(s: Summary, t: Thresholds) -> list[str]:
    missed = []
    if s.requests == 0:
        missed.append("no request was answered")
    if s.error_ratio > t.max_error_ratio:
        missed.append(f"error ratio {s.error_ratio:.4f} > {t.max_error_ratio}")
    if s.p95_ms > t.max_p95_ms:
        missed.append(f"p95 latency {s.p95_ms:.0f} ms > {t.max_p95_ms:.0f} ms")
    if s.ttft_p95_ms is not None and s.ttft_p95_ms > t.max_ttft_p95_ms:
        missed.append(f"p95 time to first token {s.ttft_p95_ms:.0f} ms > "
                      f"{t.max_ttft_p95_ms:.0f} ms")
    if s.deviation_rate is not None and s.deviation_rate > t.max_deviation_rate:
        missed.append(f"deviation rate {s.deviation_rate:.4f} > {t.max_deviation_rate}")
    if s.exhausted_ratio is not None and s.exhausted_ratio > t.max_exhausted_ratio:
        missed.append(f"exhausted ratio {s.exhausted_ratio:.4f} > {t.max_exhausted_ratio}")
    return missed


def _markdown(s: Summary, args: argparse.Namespace) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} ms"

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.2%}"

    target = args.url or f"embedded gateway ({args.engine} engine)"
    lines = [
        "# Load test", "",
        f"{args.users} users for {args.duration} against {target}; "
        f"{time.strftime('%Y-%m-%d %H:%M', time.localtime())}.", "",
        "| measure | value |", "|---|---|",
        f"| requests (failed) | {s.requests} ({s.failures}) |",
        f"| error ratio | {ratio(s.error_ratio)} |",
        f"| throughput | {s.requests_per_s:.2f} requests/s |",
        f"| latency p50 / p95 / p99 | {ms(s.p50_ms)} / {ms(s.p95_ms)} / {ms(s.p99_ms)} |",
        f"| time to first token p95 | {ms(s.ttft_p95_ms)} |",
        f"| inter-token latency p50 | {ms(s.itl_p50_ms)} |",
        # Two sources: the gateway counts every structured request (any user whose adapter
        # has a schema); the verdicts are those the ticket-routing users read.
        f"| structured requests, all users (gateway) | {s.structured_requests:.0f} |",
        f"| ticket-routing verdicts (valid / recovered / exhausted) | "
        f"{s.verdicts.get('valid', 0)} / {s.verdicts.get('recovered', 0)} / "
        f"{s.verdicts.get('exhausted', 0)} |",
        f"| deviation rate (per check) | {ratio(s.deviation_rate)} |",
        f"| exhausted ratio | {ratio(s.exhausted_ratio)} |",
        f"| first attempts stopped early | {s.stopped_early:.0f} |",
        f"| hot swaps (failed requests across them) | {s.hot_swaps} ({s.hot_swap_failures}) |",
        "", "**" + ("PASSED" if not s.missed else "FAILED: " + "; ".join(s.missed)) + "**", "",
        "Locust's own report: `report.html`, `locust_stats.csv`.", "",
    ]
    return "\n".join(lines)


def _print(summary: Summary, out: Path) -> None:
    sys.stdout.write((out / "summary.md").read_text())
    sys.stdout.write(f"reports in {out}\n")


if __name__ == "__main__":
    sys.exit(main())
