"""Fine-tunes a LoRA adapter with PEFT and transformers' Trainer; writes a store folder.

CPU (the bundled model): LoRA in full precision. GPU with ``qlora``: the base in 4-bit
(bitsandbytes nf4, bf16 compute), the usual QLoRA recipe.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.adapters.store.folder import content_digest
from gateway.training.data import Example
from gateway.training.encoding import Encoded, collate, encode

log = logging.getLogger(__name__)

CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"
CARD_FILE = "training.json"


@dataclass
class TrainConfig:
    name: str
    base_model_dir: Path
    base_model_name: str
    rank: int = 16
    alpha: int = 32
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    dropout: float = 0.05
    epochs: float = 2.0
    batch_size: int = 8
    learning_rate: float = 2e-4
    max_length: int = 512
    validation_share: float = 0.1
    seed: int = 0
    qlora: bool = False
    version: str = "1"
    system_prompt: str | None = None
    response_schema: str | None = None
    description: str = ""
    # The chat template the engine serves with (--chat-template); None: the model's own.
    chat_template: Path | None = None


@dataclass
class TrainingCard:
    """What produced the adapter, to re-create or judge it."""

    data_file: str
    data_sha256: str
    examples: int
    train_examples: int
    validation_examples: int
    hyperparameters: dict[str, Any]
    losses: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None


class _Examples:
    """A torch-style dataset over encoded examples."""

    def __init__(self, encoded: list[Encoded]) -> None:
        self.encoded = encoded

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        # A mapping with input_ids: what the length-grouped sampler reads lengths from.
        example = self.encoded[index]
        return {"input_ids": example.input_ids, "labels": example.labels}


def train(config: TrainConfig, train_set: list[Example], validation: list[Example],
          out: Path, card: TrainingCard, *, progress: bool = True) -> Path:
    """Trains, then writes the adapter folder at ``out``; checkpoints in ``out``'s sibling
    ``.<name>-checkpoints`` make an interrupted run resume."""
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model

    started = time.monotonic()
    transformers.set_seed(config.seed)
    tokenizer = transformers.AutoTokenizer.from_pretrained(config.base_model_dir)
    if config.chat_template is not None:
        tokenizer.chat_template = config.chat_template.read_text(encoding="utf-8")
    model = _base_model(config)
    model = get_peft_model(model, LoraConfig(
        r=config.rank, lora_alpha=config.alpha, target_modules=list(config.target_modules),
        lora_dropout=config.dropout, task_type="CAUSAL_LM"))
    encoded = [encode(tokenizer, e, config.max_length) for e in train_set]
    held = [encode(tokenizer, e, config.max_length) for e in validation]
    checkpoints = out.parent / f".{out.name}-checkpoints"
    arguments = transformers.TrainingArguments(
        output_dir=str(checkpoints), num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size, learning_rate=config.learning_rate,
        eval_strategy="epoch" if held else "no", save_strategy="epoch", save_total_limit=1,
        # The loss in the progress output about 20 times a run; the card keeps each epoch's.
        logging_strategy="steps", logging_steps=_every(len(encoded), config),
        seed=config.seed, data_seed=config.seed, report_to=[],
        disable_tqdm=not progress, use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0, remove_unused_columns=False,
        # Batches of like length: a tool-call example (its tools rendered in the prompt) is
        # five times as long as a plain one, and would pad a whole batch to its length.
        train_sampling_strategy="group_by_length")
    trainer = transformers.Trainer(
        model=model, args=arguments, train_dataset=_Examples(encoded),
        eval_dataset=_Examples(held) if held else None,
        data_collator=lambda batch: collate([Encoded(**b) for b in batch],
                                            tokenizer.pad_token_id))
    resume = _last_checkpoint(checkpoints)
    if resume:
        log.info("resuming from %s", resume)
    trainer.train(resume_from_checkpoint=resume)
    card.losses = _losses(trainer.state.log_history)
    card.seconds = round(time.monotonic() - started, 1)
    card.versions = {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "peft": _version("peft")}
    _write_folder(config, model, out, card)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return out


def _last_checkpoint(folder: Path) -> str | None:
    """The newest ``checkpoint-N`` that transformers' Trainer left, if any."""
    found = sorted((p for p in folder.glob("checkpoint-*") if p.name[11:].isdigit()),
                   key=lambda p: int(p.name[11:])) if folder.is_dir() else []
    return str(found[-1]) if found else None


def _base_model(config: TrainConfig) -> Any:
    import torch
    import transformers

    if not config.qlora:
        return transformers.AutoModelForCausalLM.from_pretrained(
            config.base_model_dir, dtype=torch.float32)
    if not torch.cuda.is_available():
        raise ValueError("--qlora needs a CUDA GPU (bitsandbytes 4-bit); on CPU train LoRA "
                         "in full precision (leave --qlora out)")
    from peft import prepare_model_for_kbit_training

    quantized = transformers.BitsAndBytesConfig(  # type: ignore[no-untyped-call]
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        config.base_model_dir, quantization_config=quantized, device_map="auto")
    return prepare_model_for_kbit_training(model)  # type: ignore[no-untyped-call]


def _every(examples: int, config: TrainConfig) -> int:
    steps = max(1, int(examples / config.batch_size * config.epochs))
    return max(1, steps // 20)


def _losses(history: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per whole epoch: the last training loss logged in it and the validation loss."""
    by_epoch: dict[float, dict[str, float]] = {}
    for entry in history:
        epoch = float(math.ceil(float(entry.get("epoch", 0.0)) - 1e-9))
        if "loss" in entry:
            by_epoch.setdefault(epoch, {"epoch": epoch})["train_loss"] = float(entry["loss"])
        if "eval_loss" in entry:
            by_epoch.setdefault(epoch, {"epoch": epoch})["validation_loss"] = float(
                entry["eval_loss"])
    return [by_epoch[e] for e in sorted(by_epoch)]


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def _write_folder(config: TrainConfig, model: Any, out: Path, card: TrainingCard) -> None:
    """PEFT files, adapter.yaml with digest and serving defaults, and the training card,
    built beside ``out`` and moved into place at once: the store's watcher never sees a
    half-written folder."""
    scratch = out.parent / f".{out.name}-writing"
    shutil.rmtree(scratch, ignore_errors=True)
    model.save_pretrained(str(scratch))
    (scratch / "README.md").unlink(missing_ok=True)  # PEFT's empty card: training.json is ours
    peft_config = json.loads((scratch / CONFIG_FILE).read_text())
    peft_config["base_model_name_or_path"] = config.base_model_name
    # PEFT writes a set here, in an order that changes with every process's hash seed: sorted,
    # the same training gives the same file, and so the same digest.
    if isinstance(peft_config.get("target_modules"), list):
        peft_config["target_modules"] = sorted(peft_config["target_modules"])
    (scratch / CONFIG_FILE).write_text(json.dumps(peft_config, indent=2) + "\n")
    digest, _ = content_digest({n: scratch / n for n in (CONFIG_FILE, WEIGHTS_FILE)})
    manifest: dict[str, Any] = {
        "name": config.name, "version": config.version, "base_model": config.base_model_name,
        "description": config.description or (
            f"LoRA r={config.rank} on {', '.join(config.target_modules)}, trained by "
            f"adapter-gateway train on {card.train_examples} examples ({CARD_FILE})."),
        "digest": f"sha256:{digest}",
    }
    # min_tokens 1: sampling can never end the answer before it starts (an empty answer).
    serving: dict[str, Any] = {"sampling": {"temperature": 0.0, "min_tokens": 1}}
    if config.system_prompt:
        serving["system_prompt"] = config.system_prompt
    if config.response_schema:
        serving["response_schema"] = config.response_schema
        serving["validate_by_default"] = True
    manifest["serving"] = serving
    (scratch / "adapter.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    (scratch / CARD_FILE).write_text(json.dumps(asdict(card), indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    scratch.rename(out)

