"""Training meets serving: the prompt trained on is the prompt vLLM renders, and a trained
folder is loaded from the store and served by the real engine."""

from __future__ import annotations

import httpx
import pytest
from transformers import AutoTokenizer

from gateway.engine.model_prep import default_model_dir
from gateway.training.encoding import prompt_ids
from tests.integration.conftest import MODEL, USER_KEY, RealGateway
from tests.training.test_train import SYSTEM, run, write_data

pytestmark = pytest.mark.integration

CONVERSATIONS = [
    [{"role": "user", "content": "I was charged twice."}],
    [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "App crashes. Ünïcode ✓"}],
    [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "First"},
     {"role": "assistant", "content": "{}"}, {"role": "user", "content": "Second"}],
]


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_the_training_prompt_is_the_served_prompt(real_gateway: RealGateway,
                                                  messages: list[dict[str, str]]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(default_model_dir())
    served = httpx.post(f"{real_gateway.engine_url()}/tokenize", timeout=60, json={
        "model": MODEL, "messages": messages, "add_generation_prompt": True})
    assert served.status_code == 200, served.text
    assert served.json()["tokens"] == prompt_ids(tokenizer, messages)


def test_a_trained_adapter_is_loaded_and_served(real_gateway: RealGateway) -> None:
    folder = real_gateway.adapters / ".admin" / "tiny-router"
    assert run(write_data(real_gateway.adapters.parent / "train.jsonl"), folder) == 0
    with real_gateway.admin() as admin:
        loaded = admin.post("/v1/adapters", json={"path": ".admin/tiny-router"})
        assert loaded.status_code == 201, loaded.text
        try:
            answer = httpx.post(
                f"{real_gateway.url}/v1/chat/completions", timeout=300,
                headers={"authorization": f"Bearer {USER_KEY}"},
                json={"model": "tiny-router", "max_tokens": 48, "messages": [
                    {"role": "user", "content": "I was charged twice this month."}]})
            # Served with its default schema: a verdict either way (a few training steps
            # do not make a good router; the shipped one is trained for real).
            assert answer.status_code in (200, 422), answer.text
            body = answer.json()
            verdict = body.get("structured") or body["error"]["structured"]
            assert verdict["schema"] == "ticket"
        finally:
            admin.delete("/v1/adapters/tiny-router")
