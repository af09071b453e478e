"""Console entry points: ``adapter-gateway serve`` and ``adapter-gateway prepare-model``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from gateway.middleware import RequestIdFilter

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="adapter-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the gateway (and the embedded engine)")
    serve.add_argument("--config", help="YAML configuration file (default config/gateway.yaml)")
    serve.add_argument("--host", help="address to listen on (overrides server.host)")
    serve.add_argument("--port", type=int, help="port to listen on (overrides server.port)")
    prepare = commands.add_parser("prepare-model", help="convert the bundled model once")
    prepare.add_argument("--target", help="folder to write the converted model to")
    args = parser.parse_args(argv)
    _configure_logging()
    if args.command == "serve":
        return _serve(args)
    return _prepare(args)


def _configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def _serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from gateway.app import create_app
    from gateway.config import CONFIG_ENV, load_settings

    if args.config:
        os.environ[CONFIG_ENV] = args.config
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = load_settings()
    if overrides:
        settings.server = settings.server.model_copy(update=overrides)
    _configure_logging(settings.server.log_level)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.bind_host(),
        port=settings.server.port,
        log_level=settings.server.log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gateway.engine.model_prep import default_model_dir, prepare_model

    target = Path(args.target) if args.target else default_model_dir()
    prepare_model(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
