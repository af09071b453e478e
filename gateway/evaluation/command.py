"""``adapter-gateway eval``: the command line around the runner and the report."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from gateway.evaluation.dataset import load_dataset
from gateway.evaluation.render import write_report
from gateway.evaluation.report import Report, build_report
from gateway.evaluation.runner import RESULTS, run_eval
from gateway.evaluation.sources import default_plan, from_capture, from_prometheus
from gateway.evaluation.variants import load_plan
from gateway.launcher import local_gateway


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", type=Path, help="JSONL items: messages or input, "
                        "optional expected, id, tags")
    parser.add_argument("--variants", type=Path, help="YAML: the variants, thresholds, prices")
    parser.add_argument("--url", help="a running gateway (default: start the embedded one)")
    parser.add_argument("--api-key-env", default="GATEWAY_API_KEY",
                        help="environment variable holding the gateway's API key, if any")
    parser.add_argument("--out", type=Path, default=Path("var/eval"),
                        help="report folder (results.jsonl there makes a rerun resume)")
    parser.add_argument("--from-capture", type=Path, metavar="DIR",
                        help="evaluate captured examples (structured.capture.dir) instead")
    parser.add_argument("--from-prometheus", metavar="URL",
                        help="evaluate live deviation rates from Prometheus instead")
    parser.add_argument("--window", default="1h", help="with --from-prometheus: the window")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    # One line per request would bury the progress bar.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        report = _report(args)
    except KeyboardInterrupt:
        sys.stderr.write(f"\ninterrupted: the answers so far are kept in "
                         f"{args.out / RESULTS}; run the same command again to resume\n")
        return 130
    except ValueError as exc:  # DatasetError, bad variants, unreachable sources
        sys.stderr.write(f"eval: {exc}\n")
        return 2
    paths = write_report(report, args.out)
    sys.stdout.write(f"recommendation: {report.decision.recommendation}\n")
    for reason in report.decision.reasons:
        sys.stdout.write(f"  - {reason}\n")
    sys.stdout.write("report: " + ", ".join(str(p) for p in paths.values()) + "\n")
    return 0


def _report(args: argparse.Namespace) -> Report:
    plan = load_plan(args.variants) if args.variants else None
    if args.from_capture is not None:
        return from_capture(plan or default_plan(), args.from_capture)
    if args.from_prometheus is not None:
        return from_prometheus(plan or default_plan(), args.from_prometheus, args.window)
    if args.dataset is None or plan is None:
        raise ValueError("give --dataset and --variants (or --from-capture, --from-prometheus)")
    items = load_dataset(args.dataset)
    key = os.environ.get(args.api_key_env) or None
    with local_gateway(args.url, args.out) as url:
        results = asyncio.run(run_eval(url, plan, items, args.out, api_key=key,
                                       progress=not args.quiet))
    return build_report(plan, results, args.dataset.name, len(items))
