"""How fast the gateway refuses the hostile corpus, and how /health fares meanwhile.

Runs every case of tests/hostile_corpus.py (schemas, regexes, side-door fields, adapter
folders, costly answers, engine faults) through the gateway over loopback, in front of
the fake engine, several times; each case is sent with a /health probe beside it. Prints,
per kind, the median and the slowest time to the answer, the slowest case overall and the
slowest probe. Targets: the slowest refusal under 100 ms on an idle machine; /health
always under 250 ms.

    .venv/bin/python -m benchmarks.bench_hostile_corpus [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

from gateway.app import create_app
from gateway.config import Settings
from gateway.engine.model_prep import default_model_dir
from gateway.wiring.store import BUNDLED_BASE_CONFIG
from tests.fakes.engine import FakeEngine
from tests.hostile_corpus import MODEL, Outcome, run_corpus
from tests.servers import serving

REFUSAL_TARGET_MS = 100.0
HEALTH_TARGET_MS = 250.0


async def _one_run(base: Path) -> tuple[list[Outcome], list[float]]:
    store, outside = base / "adapters", base / "outside"
    store.mkdir(parents=True)
    outside.mkdir()
    fake = FakeEngine(base_model=MODEL)
    async with serving(fake.app) as engine_url:
        settings = Settings.model_validate({
            "engine": {"mode": "remote", "urls": [engine_url], "model": MODEL,
                       "health_interval_s": 0.2},
            "adapters": {"roots": [str(store)], "watch": False,
                         "staging_dir": str(base / "staging"),
                         "base_model_config": str(BUNDLED_BASE_CONFIG)},
            # The compile check with the engine's compiler and the bundled tokenizer.
            "structured": {"grammar_check": {"tokenizer": str(default_model_dir())}},
            "responses": {"store_file": str(base / "responses.sqlite3")}})
        app = create_app(settings)
        async with serving(app) as url:
            while not app.state.monitor.ready:
                await asyncio.sleep(0.01)
            run = await run_corpus(url, fake, store, outside)
    assert not run.unexpected, run.unexpected
    return run.outcomes, run.health_seconds


async def main(runs: int) -> None:
    by_case: dict[str, list[float]] = defaultdict(list)
    kinds: dict[str, str] = {}
    statuses: dict[str, int] = {}
    health: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-corpus-") as tmp:
        for index in range(runs):
            outcomes, probes = await _one_run(Path(tmp) / str(index))
            health += probes
            for outcome in outcomes:
                by_case[outcome.case.name].append(outcome.seconds * 1000)
                kinds[outcome.case.name] = outcome.case.kind
                statuses[outcome.case.name] = outcome.status
    print(f"hostile corpus: {len(by_case)} cases x {runs} runs")
    print(f"{'kind':<10} {'cases':>5} {'median ms':>10} {'slowest ms':>11}")
    for kind in sorted(set(kinds.values())):
        times = [t for name, ts in by_case.items() if kinds[name] == kind for t in ts]
        count = sum(1 for k in kinds.values() if k == kind)
        print(f"{kind:<10} {count:>5} {statistics.median(times):>10.1f} {max(times):>11.1f}")
    # An admitted schema's 422 is an answer (every attempt deviated), not a refusal.
    refusals = {n: statistics.median(ts) for n, ts in by_case.items()
                if 400 <= statuses[n] < 500 and kinds[n] != "admitted schema"}
    slowest = max(refusals, key=refusals.__getitem__)
    verdict = "meets" if refusals[slowest] < REFUSAL_TARGET_MS else "misses"
    print(f"slowest refusal (median of {runs}): {refusals[slowest]:.1f} ms, {slowest!r} "
          f"(target {REFUSAL_TARGET_MS:.0f} ms: {verdict})")
    worst = max(health) * 1000
    verdict = "meets" if worst < HEALTH_TARGET_MS else "misses"
    print(f"/health beside each case: median {statistics.median(health) * 1000:.1f} ms, "
          f"slowest {worst:.1f} ms (target {HEALTH_TARGET_MS:.0f} ms: {verdict})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))
