"""Rolls out two new versions of ``ticket-router`` on the embedded setup: ``make rollout-demo``.

    .venv/bin/python -m loadtests.rollout_demo [--url URL] [--out var/rollout-demo]

1. A good new version (the shipped weights, published as the shipped version + 1) is rolled
   out beside the shipped version: shadow (half the requests copied to it), then canary (half the
   callers answered by it). The gate promotes it once its first-attempt deviation rate
   is shown not to be worse than the shipped version's.
2. A bad new version (the shipped weights with their LoRA update blown up 40 times: it
   no longer writes tickets) is rolled out beside the promoted one. The gate rolls it back
   on its measured deviation rate while it is still in shadow, so no client ever gets an
   answer from it.

Clients send structured ticket requests from ``data/tickets/test.jsonl`` (four at a time,
each with its own ``x-user`` for the sticky canary) until each rollout ends. The rollout
endpoint's state is printed at every change, and written with every client answer to
``--out``. Exit status 0 when the good version was promoted, the bad one rolled back, and
no client request failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import yaml
from safetensors.numpy import load_file, save_file

from gateway.launcher import local_gateway
from loadtests.run import ROOT, adapter_versions

NAME = "ticket-router"
POLICY = {"stages": [{"mode": "shadow", "share": 0.5}, {"mode": "canary", "share": 0.5}],
          "gate": {"min_checks": 20, "deviation_margin": 0.1, "latency_margin": 1.0}}
# Requests per rollout at most: each stops by itself long before (the gate decides).
MAX_REQUESTS = 600
CLIENTS = 4


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.rollout_demo",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running gateway serving ticket-router whose adapter "
                        "roots include --candidates (default: start the embedded one)")
    parser.add_argument("--candidates", type=Path, help="where the new versions are written "
                        "(default: a temporary folder made an adapter root)")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "rollout-demo")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rollout-demo-") as scratch:
        candidates = args.candidates or Path(scratch) / "candidates"
        (good, good_version), (bad, bad_version) = _versions(candidates)
        env = {**os.environ,
               "GATEWAY_ADAPTERS__ROOTS": json.dumps([str(ROOT / "adapters"), str(candidates)]),
               "GATEWAY_ADAPTERS__ROLLOUTS_FILE": str(Path(scratch) / "rollouts.json"),
               "GATEWAY_ADAPTERS__ROLLOUT_STICKY_HEADER": "x-user"}
        with local_gateway(args.url, args.out, env=env) as url:
            first = _roll_out(url, good, f"good version {good_version}",
                              args.out / "good.jsonl")
            second = _roll_out(url, bad, f"bad version {bad_version}", args.out / "bad.jsonl")
    passed = (first["state"] == "promoted" and second["state"] == "rolled_back"
              and first["client_failures"] == second["client_failures"] == 0)
    sys.stdout.write(("PASSED" if passed else "FAILED") + f": version {good_version} "
                     f"{first['state']}, version {bad_version} {second['state']}, "
                     f"{first['client_failures'] + second['client_failures']} failed client "
                     f"requests; details in {args.out}\n")
    return 0 if passed else 1


def _versions(root: Path) -> tuple[tuple[str, str], tuple[str, str]]:
    """A good version (the shipped weights as the shipped version + 1) and a bad one
    (+ 2): each folder with its version."""
    shipped = int(yaml.safe_load((ROOT / "adapters" / NAME / "adapter.yaml").read_text())
                  ["version"])
    versions = [str(shipped + 1), str(shipped + 2)]
    serving = None  # the shipped serving defaults: the ticket schema, validated
    good, bad = adapter_versions(root, NAME, versions, serving=serving)
    spoil(Path(bad))
    return (good, versions[0]), (bad, versions[1])


def spoil(folder: Path, factor: float = 40.0) -> None:
    """Blows up an adapter's LoRA update (W + B·A·scale, B ``factor`` times larger): it
    swamps what the base model knows, and the adapter no longer writes valid tickets."""
    weights = folder / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    save_file({key: (value * factor if "lora_B" in key else value).astype(value.dtype)
               for key, value in tensors.items()}, str(weights))


def _roll_out(url: str, folder: str, label: str, log: Path) -> dict[str, Any]:
    with httpx.Client(base_url=url, timeout=600) as admin:
        started = admin.post(f"/v1/adapters/{NAME}/rollout",
                             json={"path": folder, "policy": POLICY})
        if started.status_code != 201:
            raise SystemExit(f"the rollout of the {label} did not start: {started.text}")
        sys.stdout.write(f"\n== rolling out the {label}: {_line(started.json())}\n")
        failures, versions = _traffic(url, admin, log)
        final = admin.get(f"/v1/adapters/{NAME}/rollout").json()
    for decision in final["decisions"]:
        sys.stdout.write(f"   {decision['action']:9} stage {decision['stage'] + 1}: "
                         f"{decision['reason']}\n")
    sys.stdout.write(f"   clients were answered by versions {dict(versions)}; "
                     f"{failures} client requests failed\n")
    return {"state": final["state"], "client_failures": failures}


def _traffic(url: str, admin: httpx.Client, log: Path) -> tuple[int, Counter[str]]:
    """Ticket requests from four clients until the rollout ends; (failures, versions)."""
    prompts = [json.loads(line)["input"] for line in
               (ROOT / "data" / "tickets" / "test.jsonl").read_text().splitlines()]
    done = threading.Event()
    lock = threading.Lock()
    failures, versions, sent = 0, Counter[str](), 0
    last: tuple[str, int] = ("", -1)

    def client(index: int) -> None:
        nonlocal failures, sent, last
        with httpx.Client(base_url=url, timeout=600) as http, log.open("a") as out:
            while not done.is_set():
                with lock:
                    if sent >= MAX_REQUESTS:
                        return
                    sent += 1
                    number = sent
                body = {"model": NAME, "max_tokens": 64, "messages": [
                    {"role": "user", "content": prompts[number % len(prompts)]}]}
                answer = http.post("/v1/chat/completions", json=body,
                                   headers={"x-user": f"user-{number % 40}"})
                state = admin.get(f"/v1/adapters/{NAME}/rollout").json()
                with lock:
                    versions[answer.headers.get("x-adapter-version", "?")] += 1
                    failures += answer.status_code != 200
                    out.write(json.dumps({"status": answer.status_code,
                                          "version": answer.headers.get("x-adapter-version"),
                                          "rollout": _line(state)}) + "\n")
                    key = (state["state"], state["stage"])
                    if key != last or number % 20 == 0:  # each change, and every 20
                        last = key
                        sys.stdout.write(f"   {time.strftime('%H:%M:%S')} request {number}: "
                                         f"{_line(state)}\n")
                    if state["state"] != "active":
                        done.set()

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client, range(CLIENTS)))
    return failures, versions


def _line(state: dict[str, Any]) -> str:
    if state["state"] != "active":
        return f"{state['state']}"
    stats = state["stats"]
    return (f"stage {state['stage'] + 1} ({state['current']['mode']} "
            f"{state['current']['share']:.0%}): stable {_rate(stats['stable'])}, "
            f"candidate {_rate(stats['candidate'])}")


def _rate(stats: dict[str, Any]) -> str:
    return f"{stats['deviations']}/{stats['checks']} deviated"


if __name__ == "__main__":
    sys.exit(main())
