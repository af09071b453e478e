"""Serves the fake engine on a loopback port: ``python -m tests.fakes.serve --port 9001``."""

from __future__ import annotations

import argparse

import uvicorn

from tests.fakes.engine import FakeEngine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="base-model")
    parser.add_argument("--content", default='{"category": "billing", "priority": "high", '
                                             '"escalate": true}')
    args = parser.parse_args()
    fake = FakeEngine(base_model=args.model, default_content=args.content)
    uvicorn.run(fake.app, host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
