"""``adapter-gateway train``: the command line around the data, the trainer and the folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway._sections import PROJECT_ROOT
from gateway.engine.model_prep import (
    BUNDLED_CHAT_TEMPLATE,
    DEFAULT_MODEL_NAME,
    default_model_dir,
    is_prepared,
)
from gateway.structured.validation import CompiledSchema, ValidatorCache
from gateway.training.data import Example, file_digest, load_examples, split
from gateway.training.trainer import TrainConfig, TrainingCard, train

BUNDLED_BASE_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
SCHEMAS = PROJECT_ROOT / "config" / "schemas"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True,
                        help="chat JSONL, the capture's format: messages, the last one the "
                             "assistant's answer")
    parser.add_argument("--name", required=True, help="the adapter's name")
    parser.add_argument("--out", type=Path, help="adapter folder (default adapters/NAME)")
    parser.add_argument("--version", default="1")
    parser.add_argument("--schema", help="a registered schema: answers must match it, and it "
                                         "becomes the adapter's default")
    parser.add_argument("--system-prompt", help="the adapter's default system prompt (also "
                                                "put into examples that have none)")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=int, default=32)
    parser.add_argument("--targets", default="q_proj,v_proj", help="comma-separated modules")
    parser.add_argument("--dropout", type=float, default=0.05)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--max-length", type=int, default=512,
                        help="tokens per example, at most the engine's max_model_len")
    parser.add_argument("--validation", type=float, default=0.1, help="held-out share")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-lora-rank", type=int, default=16,
                        help="the engine's max_lora_rank: higher ranks are refused")
    parser.add_argument("--qlora", action="store_true",
                        help="GPU: the base in 4-bit (bitsandbytes nf4, bf16 compute)")
    parser.add_argument("--base-model", type=Path, help="the base model folder (default: the "
                        "bundled model, converted once)")
    parser.add_argument("--base-model-name", default=BUNDLED_BASE_NAME,
                        help="the base model's name written into the adapter's files")
    parser.add_argument("--chat-template", type=Path,
                        help="the chat template the engine serves with (--chat-template); "
                             "default: the bundled template with tools for the bundled model, "
                             "the model's own otherwise")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    try:
        config, card, parts = _prepare(args)
    except ValueError as exc:  # TrainingDataError, bad options
        sys.stderr.write(f"train: {exc}\n")
        return 2
    out = args.out or PROJECT_ROOT / "adapters" / args.name
    try:
        train(config, *parts, out=out, card=card, progress=not args.quiet)
    except ValueError as exc:
        sys.stderr.write(f"train: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted: the last finished epoch is kept as a checkpoint; "
                         "the same command resumes from it\n")
        return 130
    sys.stdout.write(f"adapter {args.name} written to {out}; the gateway loads it from the "
                     "store (or POST /v1/adapters)\n")
    return 0


def _prepare(
    args: argparse.Namespace,
) -> tuple[TrainConfig, TrainingCard, tuple[list[Example], list[Example]]]:
    if args.rank > args.max_lora_rank:
        raise ValueError(f"--rank {args.rank} is above the engine's max_lora_rank "
                         f"{args.max_lora_rank}; lower it or raise both")
    base = args.base_model or default_model_dir()
    if args.base_model is None and not is_prepared(base):
        raise ValueError(f"the bundled model is not prepared in {base}; run "
                         "`adapter-gateway prepare-model` (or `make setup`) first")
    schema = _schema(args.schema)
    examples = load_examples(args.data, schema, args.system_prompt)
    train_set, validation = split(examples, args.validation, args.seed)
    config = TrainConfig(
        name=args.name, base_model_dir=base, base_model_name=args.base_model_name,
        rank=args.rank, alpha=args.alpha,
        target_modules=tuple(t.strip() for t in args.targets.split(",") if t.strip()),
        dropout=args.dropout, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, max_length=args.max_length,
        validation_share=args.validation, seed=args.seed, qlora=args.qlora,
        version=args.version, system_prompt=args.system_prompt,
        response_schema=args.schema, chat_template=_template(args))
    hyper = {k: v for k, v in vars(config).items() if k not in ("base_model_dir",)}
    hyper["chat_template"] = None if config.chat_template is None else config.chat_template.name
    hyper["target_modules"] = list(config.target_modules)
    card = TrainingCard(
        data_file=str(args.data), data_sha256=file_digest(args.data), examples=len(examples),
        train_examples=len(train_set), validation_examples=len(validation),
        hyperparameters={"base_model": DEFAULT_MODEL_NAME if args.base_model is None
                         else str(base), **hyper})
    return config, card, (train_set, validation)


def _template(args: argparse.Namespace) -> Path | None:
    template: Path | None = args.chat_template
    if template is None and args.base_model is None:
        template = BUNDLED_CHAT_TEMPLATE
    if template is not None and not template.is_file():
        raise ValueError(f"--chat-template {template} does not exist")
    return template


def _schema(name: str | None) -> CompiledSchema | None:
    if name is None:
        return None
    path = SCHEMAS / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"--schema {name!r}: no {path}; name a registered schema")
    import json

    return ValidatorCache().compile(json.loads(path.read_text()))


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--capture", type=Path, default=PROJECT_ROOT / "var" / "examples",
                        help="the capture folder (structured.capture.dir)")
    parser.add_argument("--adapter", required=True, help="whose traffic (or 'base')")
    parser.add_argument("--schema", required=True,
                        help="the registered schema it answered, or 'inline' (the capture's "
                             "file for inline schemas and unregistered functions)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the splits")
    parser.add_argument("--redact", help="module:function applied to every record before "
                        "anything is written (default: e-mail addresses, phone and card "
                        "numbers in every message replaced by pseudonyms of the same shape; "
                        "'none': as captured)")
    parser.add_argument("--validation", type=float, default=0.1)
    parser.add_argument("--test", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)


def export_main(args: argparse.Namespace) -> int:
    from gateway.training.export import export, load_redactor

    try:
        # Inline captures are checked as JSON objects (their schemas vary); tool calls always
        # against the functions each record offered.
        schema = (ValidatorCache().compile({"type": "object"}) if args.schema == "inline"
                  else _schema(args.schema))
        if schema is None:
            raise ValueError("--schema is required")
        summary = export(args.capture, args.adapter, args.schema, schema, args.out,
                         load_redactor(args.redact), (args.validation, args.test), args.seed)
    except ValueError as exc:
        sys.stderr.write(f"dataset export: {exc}\n")
        return 2
    counts = {name: sum(labels.values()) for name, labels in summary.splits.items()}
    sys.stdout.write(
        f"{summary.read} captured, {summary.duplicates} duplicates, {len(summary.invalid)} "
        f"invalid, {summary.redacted_away} dropped by redaction, {summary.recovered} "
        f"recovered by retry; train {counts['train']}, validation {counts['validation']}, "
        f"test {counts['test']} in {args.out}\n")
    return 0
