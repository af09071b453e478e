"""Every case of the hostile corpus gets its 4xx (or its bounded answer, or its exact fault)
while a concurrent /health probe keeps answering within 250 ms.

A blocked event loop shows as whole seconds, so the bound holds on a busy machine too.
How long each refusal takes is measured by benchmarks/bench_hostile_corpus.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.app import create_app
from tests.conftest import SettingsFactory
from tests.fakes.engine import FakeEngine
from tests.hostile_corpus import corpus, run_corpus
from tests.servers import serving

pytestmark = pytest.mark.anyio

HEALTH_BOUND_S = 0.25


def test_the_corpus_is_large_and_varied() -> None:
    cases = corpus()
    assert len(cases) >= 60
    assert {c.kind for c in cases} == {"schema", "admitted schema", "side door", "answer",
                                       "adapter", "fault"}


async def test_hostile_inputs_are_refused_while_health_stays_fast(
    make_settings: SettingsFactory, fake_engine: FakeEngine, tmp_path: Path
) -> None:
    store, outside = tmp_path / "adapters", tmp_path / "outside"  # make_settings' root
    store.mkdir()
    outside.mkdir()
    app = create_app(make_settings())
    async with serving(app) as url:
        async with asyncio.timeout(30):
            while not app.state.monitor.ready:
                await asyncio.sleep(0.01)
        run = await run_corpus(url, fake_engine, store, outside)
    assert run.unexpected == {}
    assert len(run.health_seconds) == len(run.outcomes)  # one probe beside each case
    assert max(run.health_seconds) < HEALTH_BOUND_S
    assert not (outside / "unpickled").exists()
    assert [call for call, _ in fake_engine.lora_calls] == []  # no hostile adapter loaded
