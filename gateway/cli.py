"""Console entry points: ``adapter-gateway serve``, ``prepare-model``, ``eval``, ``train``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.evaluation import command as eval_command
from gateway.middleware import RequestIdFilter
from gateway.training import command as train_command

if TYPE_CHECKING:
    from fastapi import FastAPI

    from gateway.config import Settings

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
WORKER_APP = "gateway.cli:worker_app"
# Exported to the worker processes (GATEWAY_* are settings, see gateway/config.py).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_DIR_ENV = "GATEWAY_METRICS__MULTIPROCESS_DIR"
ENGINE_MODE_ENV = "GATEWAY_ENGINE__MODE"
ENGINE_URLS_ENV = "GATEWAY_ENGINE__URLS"
ENGINE_KEY_ENV_ENV = "GATEWAY_ENGINE__API_KEY_ENV"
RESOLVER_BASE_ENV = "GATEWAY_ADAPTERS__RESOLVER__BASE_MODEL"
# Holds the shared embedded engine's key for the workers (never passed to the engine).
WORKER_ENGINE_KEY = "ADAPTER_GATEWAY_ENGINE_KEY"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="adapter-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the gateway (and the embedded engine)")
    serve.add_argument("--config", help="YAML configuration file (default config/gateway.yaml)")
    serve.add_argument("--host", help="address to listen on (overrides server.host)")
    serve.add_argument("--port", type=int, help="port to listen on (overrides server.port)")
    prepare = commands.add_parser("prepare-model", help="convert the bundled model once")
    prepare.add_argument("--target", help="folder to write the converted model to")
    evaluate = commands.add_parser(
        "eval", help="should I fine-tune? measure format deviation by failure type and decide",
        description="Sends a dataset through a gateway under several variants and writes a "
                    "report (Markdown, JSON, HTML, PNG charts) with a recommendation.")
    eval_command.add_arguments(evaluate)
    trainer = commands.add_parser(
        "train", help="fine-tune a LoRA adapter (PEFT) from chat examples into the store",
        description="Fine-tunes a LoRA adapter on the served base model from chat JSONL and "
                    "writes a complete adapter folder the gateway validates and hot-loads.")
    train_command.add_arguments(trainer)
    dataset = commands.add_parser("dataset", help="training data from captured traffic")
    dataset_commands = dataset.add_subparsers(dest="dataset_command", required=True)
    exporter = dataset_commands.add_parser(
        "export", help="captured examples to train/validation/test JSONL",
        description="Deduplicates, re-validates, redacts and splits the examples the gateway "
                    "captured (structured.capture) into a dataset for `train`.")
    train_command.add_export_arguments(exporter)
    args = parser.parse_args(argv)
    _configure_logging()
    if args.command == "eval":
        return eval_command.main(args)
    if args.command == "train":
        return train_command.main(args)
    if args.command == "dataset":
        return train_command.export_main(args)
    try:
        if args.command == "serve":
            return _serve(args)
        return _prepare(args)
    except ValueError as exc:  # pydantic's ValidationError is one: a bad configuration
        log.error("cannot start: %s", exc)
        return 2


def _configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.config import CONFIG_ENV, load_settings

    if args.config:
        os.environ[CONFIG_ENV] = args.config
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = load_settings()
    if overrides:
        settings.server = settings.server.model_copy(update=overrides)
    _configure_logging(settings.server.log_level)
    if settings.server.workers > 1:
        return _serve_workers(settings)
    from gateway.app import create_app

    uvicorn.run(create_app(settings), **_uvicorn_options(settings))
    return 0


def worker_app() -> FastAPI:
    """One worker's app: uvicorn imports ``gateway.cli:worker_app`` as a factory in each worker.

    The worker reads its settings like the parent did (the configuration file and the
    environment), plus what the parent exported for it: the shared metrics directory and,
    for an embedded engine, the engine's URL.
    """
    from uvicorn.config import STARTUP_FAILURE

    from gateway.app import create_app
    from gateway.config import load_settings

    try:
        settings = load_settings()
        _configure_logging(settings.server.log_level)
        return create_app(settings)
    except Exception:
        # Any other exit status makes uvicorn start the worker again, forever; this one
        # makes it stop every worker and exit.
        log.exception("the worker could not build the gateway; stopping")
        sys.exit(STARTUP_FAILURE)


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "host": settings.bind_host(),
        "port": settings.server.port,
        "log_level": settings.server.log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 30,
    }


def _serve_workers(settings: Settings) -> int:
    """Several worker processes on one socket: metrics aggregated, the engine started once."""
    import uvicorn

    # The engine starts first: vLLM uses prometheus_client too, and must not inherit the
    # workers' directory (its series would show up in the gateway's /metrics).
    with _shared_engine(settings), _metrics_directory(settings.metrics.multiprocess_dir) as path:
        # Read by prometheus_client when a worker imports it, and by the workers' settings.
        os.environ[MULTIPROC_ENV] = str(path)
        os.environ[METRICS_DIR_ENV] = str(path)
        uvicorn.run(WORKER_APP, factory=True, workers=settings.server.workers,
                    **_uvicorn_options(settings))
    return 0


@contextlib.contextmanager
def _metrics_directory(configured: Path | None) -> Iterator[Path]:
    """The workers' metrics directory, emptied: values of an earlier run must not add up."""
    if configured is None:
        with tempfile.TemporaryDirectory(prefix="gateway-metrics-") as created:
            yield Path(created)
        return
    configured.mkdir(parents=True, exist_ok=True)
    for stale in configured.glob("*.db"):
        stale.unlink()
    yield configured


@contextlib.contextmanager
def _shared_engine(settings: Settings) -> Iterator[None]:
    """Starts an embedded engine here, once, and hands it to the workers as a remote one."""
    if settings.engine.mode != "embedded":
        yield
        return
    import asyncio

    from gateway.engine.model_prep import is_prepared, prepare_model
    from gateway.engine.supervisor import VllmSupervisor
    from gateway.wiring.engine import new_engine_key, resolver_env, spec_from

    model = settings.engine.model_folder()
    if not is_prepared(model):
        log.info("preparing the bundled model in %s (once; about a minute)", model)
        prepare_model(model)
    key = new_engine_key()
    supervisor = VllmSupervisor(spec_from(settings.engine, model, key,
                                          resolver_env(settings.adapters)))
    if settings.adapters.publish == "resolver" and settings.adapters.resolver.base_model is None:
        # The workers see a remote engine: they are told its --model.
        os.environ[RESOLVER_BASE_ENV] = str(model)
    # The loop only runs to start and to stop the engine; the workers' monitors track it.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(supervisor.start())
        try:
            os.environ[ENGINE_MODE_ENV] = "remote"
            os.environ[ENGINE_URLS_ENV] = json.dumps([supervisor.base_url])
            os.environ[WORKER_ENGINE_KEY] = key
            os.environ[ENGINE_KEY_ENV_ENV] = WORKER_ENGINE_KEY
            log.info("engine for %d workers at %s (log: %s)", settings.server.workers,
                     supervisor.base_url, supervisor.log_file)
            yield
        finally:
            loop.run_until_complete(supervisor.stop())
    finally:
        loop.close()


def _prepare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gateway.engine.model_prep import default_model_dir, prepare_model

    target = Path(args.target) if args.target else default_model_dir()
    prepare_model(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
