"""Adapters on the real engine: PEFT files, admin API, the watched store, refusals, memory.

Adapters loaded through the admin API are written under a hidden folder of the store
(``.admin/``), which the watcher ignores: only the API loads them, so no watcher event
races a test.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from benchmarks.bench_adapter_cycles import Cycler, measure
from tests.adapter_factory import CONFIG_FILE, WEIGHTS_FILE, write_adapter, write_manifest
from tests.integration.conftest import MODEL, ROOT, RealGateway

pytestmark = pytest.mark.integration

PROMPT: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Name three colours of the rainbow."}]
BASE_DIR = ROOT / ".cache" / "models" / MODEL
# Large enough (scaling alpha/r = 16) that random weights visibly change greedy answers.
ALPHA = 128
# Growth of gateway + engine memory allowed over 20 load/unload cycles; measured: +0.2 MB.
MEMORY_TOLERANCE_MB = 32.0


def write_admin_adapter(gateway: RealGateway, name: str, *, seed: int = 0,
                        **kw: Any) -> str:
    """An adapter for the real base under ``.admin/``; returns its path relative to the store."""
    relative = f".admin/{name}-{seed}"
    kw.setdefault("alpha", ALPHA)
    write_adapter(gateway.adapters / relative, name=name, seed=seed, **kw)
    return relative


def greedy(gateway: RealGateway, model: str) -> str:
    answer = gateway.sdk().chat.completions.create(
        model=model, messages=PROMPT, max_tokens=12, temperature=0)
    assert answer.model == model
    return answer.choices[0].message.content or ""


def served(gateway: RealGateway) -> list[str]:
    return [m.id for m in gateway.sdk().models.list()]


def wait_for_models(gateway: RealGateway, present: str, *, listed: bool,
                    timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (present in served(gateway)) != listed:
        assert time.monotonic() < deadline, f"{present} listed={not listed} after {timeout} s"
        time.sleep(0.25)


def test_load_serve_list_unload(real_gateway: RealGateway) -> None:
    relative = write_admin_adapter(real_gateway, "colours", seed=1)
    with real_gateway.admin() as admin:
        response = admin.post("/v1/adapters", json={"path": relative})
        assert response.status_code == 201, response.text
        [version] = response.json()["versions"]
        assert version["state"] == "ready"
        assert "colours" in served(real_gateway)
        assert greedy(real_gateway, "colours") != greedy(real_gateway, MODEL)
        listed = [a["name"] for a in admin.get("/v1/adapters").json()["data"]]
        assert "colours" in listed
        assert admin.delete("/v1/adapters/colours").status_code == 200
    assert "colours" not in served(real_gateway)
    with pytest.raises(openai.NotFoundError):
        greedy(real_gateway, "colours")


def save_with_peft(target: str) -> None:
    """Saves a PEFT LoRA (r=8, q/v, non-zero B) of the converted base model to ``target``.

    Run in a child interpreter by the test below, so torch, transformers and PEFT stay
    out of the test process.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(BASE_DIR))
    config = LoraConfig(r=8, lora_alpha=ALPHA, target_modules=["q_proj", "v_proj"],
                        init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(model, config).save_pretrained(target)


def tensor_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor names and shapes from a safetensors header."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header: dict[str, Any] = json.loads(handle.read(length))
    return {name: info["shape"] for name, info in header.items() if name != "__metadata__"}


def test_an_adapter_saved_by_peft(real_gateway: RealGateway, tmp_path: Path) -> None:
    folder = real_gateway.adapters / ".admin" / "peft-made"
    command = ("import sys; from tests.integration.test_adapters import save_with_peft; "
               "save_with_peft(sys.argv[1])")
    subprocess.run([sys.executable, "-c", command, str(folder)], cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    write_manifest(folder, {"name": "peft-made", "version": "1", "base_model": MODEL}, {})
    factory = write_adapter(tmp_path / "factory", name="peft-made", alpha=ALPHA)
    assert tensor_shapes(folder / WEIGHTS_FILE) == tensor_shapes(factory / WEIGHTS_FILE)
    made, written = (json.loads((f / CONFIG_FILE).read_text()) for f in (folder, factory))
    for key in ("peft_type", "r", "lora_alpha", "bias", "use_dora", "fan_in_fan_out"):
        assert made[key] == written[key], key
    assert sorted(made["target_modules"]) == written["target_modules"]
    with real_gateway.admin() as admin:
        response = admin.post("/v1/adapters", json={"path": ".admin/peft-made"})
        assert response.status_code == 201, response.text
        try:
            assert greedy(real_gateway, "peft-made") != greedy(real_gateway, MODEL)
        finally:
            admin.delete("/v1/adapters/peft-made")


def test_a_folder_copied_into_the_store_is_served(real_gateway: RealGateway,
                                                   tmp_path: Path) -> None:
    source = write_adapter(tmp_path / "dropped", name="dropped", seed=2, alpha=ALPHA)
    target = real_gateway.adapters / "dropped"
    shutil.copytree(source, target)
    try:
        wait_for_models(real_gateway, "dropped", listed=True)
        assert greedy(real_gateway, "dropped")
    finally:
        shutil.rmtree(target)
    wait_for_models(real_gateway, "dropped", listed=False)
    with pytest.raises(openai.NotFoundError):
        greedy(real_gateway, "dropped")


def _pickled(gateway: RealGateway) -> str:
    relative = write_admin_adapter(gateway, "pickled")
    folder = gateway.adapters / relative
    (folder / WEIGHTS_FILE).unlink()
    (folder / "adapter_model.bin").write_bytes(b"\x80\x04K\x01.")  # pickle of the int 1
    return relative


@pytest.mark.parametrize(("prepare", "reason"), [
    (_pickled, "pickle_weights"),
    (lambda gateway: "../elsewhere", "path_outside_roots"),
    (lambda gateway: write_admin_adapter(gateway, "huge", rank=32), "rank_too_large"),
])
def test_hostile_loads_are_refused_and_the_engine_keeps_serving(
    real_gateway: RealGateway, prepare: Any, reason: str
) -> None:
    with real_gateway.admin() as admin:
        response = admin.post("/v1/adapters", json={"path": prepare(real_gateway)})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == reason
    assert real_gateway.sdk().chat.completions.create(
        model=MODEL, messages=PROMPT, max_tokens=4).choices


def test_memory_stays_flat_over_load_unload_cycles(real_gateway: RealGateway) -> None:
    with real_gateway.admin() as admin:
        cycler = Cycler(admin, real_gateway.adapters, name="memory-cycles")
        try:
            cycler.run(5)  # the first adapters allocate the engine's LoRA buffers
            before = measure(real_gateway.pid)
            cycler.run(20)
            time.sleep(1.0)
            after = measure(real_gateway.pid)
        finally:
            cycler.close()
    assert after.total_mb - before.total_mb < MEMORY_TOLERANCE_MB, (before, after)


def test_admin_calls_need_the_admin_key(real_gateway: RealGateway) -> None:
    with httpx.Client(base_url=real_gateway.url, timeout=30) as anonymous:
        assert anonymous.get("/v1/adapters").status_code == 401
