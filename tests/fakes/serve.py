"""Serves the fake engine on a loopback port: ``python -m tests.fakes.serve --port 9001``.

It also takes vLLM's own command line (``--served-model-name``, ``--host``, ``--port``;
the rest is ignored) and ``VLLM_API_KEY``, so that an embedded-mode gateway can run it in
place of vLLM (see ``fake_vllm_python``).
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path

import uvicorn

from tests.fakes.engine import FakeEngine

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--model", default="base-model")
    parser.add_argument("--served-model-name", dest="served")
    parser.add_argument("--content", default='{"category": "billing", "priority": "high", '
                                             '"escalate": true}')
    parser.add_argument("--delay", type=float, default=0.0,
                        help="seconds each answer takes (requests overlap, as under load)")
    args, _ = parser.parse_known_args()
    resolver = os.environ.get("VLLM_LORA_RESOLVER_CACHE_DIR")
    fake = FakeEngine(base_model=args.served or args.model, default_content=args.content,
                      api_key=os.environ.get("VLLM_API_KEY") or None,
                      resolver_dir=Path(resolver) if resolver else None,
                      resolver_base=args.model, default_delay=args.delay)
    uvicorn.run(fake.app, host=args.host, port=args.port, log_level="warning",
                access_log=False)


def fake_vllm_python(folder: Path) -> Path:
    """An executable to give as ``engine.python``: runs this fake where vLLM would run."""
    script = folder / "fake-vllm-python"
    script.write_text(f"#!/bin/sh\n# drops '-m vllm.entrypoints.openai.api_server'\nshift 2\n"
                      f"cd {ROOT}\nexec {sys.executable} -m tests.fakes.serve \"$@\"\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


if __name__ == "__main__":
    main()
