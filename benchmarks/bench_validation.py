"""Cost of checking one structured answer: cached validator vs plain ``jsonschema.validate``.

Run: ``.venv/bin/python benchmarks/bench_validation.py [--repeat N]``

Prints the median cost per call of ``classify`` (parse + validate + classify)
on a small valid ticket answer with the validator from ``ValidatorCache``,
beside ``jsonschema.validate`` on the already-parsed document, which checks
the schema against its metaschema and builds a validator on every call.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

import jsonschema

from gateway.structured.deviations import classify
from gateway.structured.validation import ValidatorCache

ROOT = Path(__file__).resolve().parents[1]
ANSWER = '{"category": "billing", "priority": "high", "escalate": true}'
INVALID = '{"category": "refunds", "priority": "high"}'
TARGET_US = 50.0


def median_us(call: Callable[[], object], repeat: int) -> float:
    """Median seconds per call over ``repeat`` runs, in microseconds."""
    timer = timeit.Timer(call)
    loops, _ = timer.autorange()
    runs = timer.repeat(repeat=repeat, number=loops)
    return statistics.median(runs) / loops * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="timing runs (default 9)")
    args = parser.parse_args(argv)

    schema = json.loads((ROOT / "config" / "schemas" / "ticket.json").read_text())
    cache = ValidatorCache()
    compiled = cache.compile(schema)
    document = json.loads(ANSWER)
    assert classify(ANSWER, "stop", compiled).valid

    cached = median_us(lambda: classify(ANSWER, "stop", compiled), args.repeat)
    cached_invalid = median_us(lambda: classify(INVALID, "stop", compiled), args.repeat)
    lookup = median_us(lambda: cache.compile(schema), args.repeat)
    uncached = median_us(lambda: jsonschema.validate(document, schema), args.repeat)

    out = sys.stdout
    out.write(f"classify, cached validator, valid answer:      {cached:9.1f} µs\n")
    out.write(f"classify, cached validator, invalid answer:    {cached_invalid:9.1f} µs\n")
    out.write(f"ValidatorCache.compile on a hit (inline):      {lookup:9.1f} µs\n")
    out.write(f"jsonschema.validate, uncached, valid answer:   {uncached:9.1f} µs\n")
    out.write(f"ratio uncached / cached:                       {uncached / cached:9.1f} x\n")
    verdict = "meets" if cached < TARGET_US else "MISSES"
    out.write(f"target {TARGET_US:.0f} µs for the cached path: {verdict}\n")
    return 0 if cached < TARGET_US else 1


if __name__ == "__main__":
    sys.exit(main())
