from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.inference.capture import CaptureSettings, ExampleCapture, chat_example
from tests.conftest import BASE_MODEL, SettingsFactory, start
from tests.fakes.engine import FakeEngine
from tests.metrics_reader import parse, value

TICKET = '{"category": "billing", "priority": "high", "escalate": true}'
REPORT: dict[str, Any] = {"attempts": 2, "deviations": [{"kind": "not_json"}]}
ANSWER = {"role": "assistant", "content": TICKET}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_examples_go_to_one_file_per_adapter_and_schema(tmp_path: Path) -> None:
    capture = ExampleCapture(CaptureSettings(enabled=True, dir=tmp_path))
    example = chat_example([{"role": "user", "content": "charged twice"}], ANSWER, REPORT)
    capture.record("ticket-router", "ticket", example)
    capture.record("ticket-router", "ticket", example)
    written = _lines(tmp_path / "ticket-router" / "ticket.jsonl")
    assert len(written) == 2
    assert written[0]["messages"][-1] == {"role": "assistant", "content": TICKET}
    assert written[0]["deviations"] == ["not_json"]


def test_personal_data_never_reaches_the_disk_unless_asked(tmp_path: Path) -> None:
    """structured.capture.redact: the user's words and the answer's values alike."""
    contact = '{"name": "Bob", "email": "bob@x.com"}'
    example = chat_example([{"role": "user", "content": "mail bob@x.com"}],
                           {"role": "assistant", "content": contact}, REPORT)
    ExampleCapture(CaptureSettings(enabled=True, dir=tmp_path)).record("base", "c", example)
    raw = (tmp_path / "base" / "c.jsonl").read_text()
    assert "bob@x.com" not in raw and raw.count("@example.invalid") == 2
    kept = ExampleCapture(CaptureSettings(enabled=True, dir=tmp_path / "raw", redact=[]))
    kept.record("base", "c", example)
    assert "bob@x.com" in (tmp_path / "raw" / "base" / "c.jsonl").read_text()


def test_full_files_rotate_and_the_oldest_go(tmp_path: Path) -> None:
    settings = CaptureSettings(enabled=True, dir=tmp_path, max_file_bytes=1024, max_files=2)
    capture = ExampleCapture(settings)
    for index in range(9):  # two examples fill a file
        example = chat_example([{"role": "user", "content": f"{index} " + "x" * 200}], ANSWER,
                               REPORT)
        capture.record("base", "ticket", example)
    folder = tmp_path / "base"
    assert sorted(p.name for p in folder.glob("ticket*")) == ["ticket.jsonl", "ticket.jsonl.1",
                                                        "ticket.jsonl.2"]
    newest = [int(r["messages"][0]["content"].split()[0]) for r in _lines(folder / "ticket.jsonl")]
    rotated = [int(r["messages"][0]["content"].split()[0])
               for r in _lines(folder / "ticket.jsonl.1")]
    assert newest == [8] and rotated == [6, 7]  # 0 to 3 were rotated out
    assert all(p.stat().st_size <= 1024 for p in folder.glob("ticket*"))


def test_a_full_file_takes_no_more_without_rotation(tmp_path: Path) -> None:
    capture = ExampleCapture(CaptureSettings(enabled=True, dir=tmp_path, max_file_bytes=1024,
                                             max_files=0))
    example = chat_example([{"role": "user", "content": "x" * 200}], ANSWER, REPORT)
    for _ in range(10):
        capture.record("base", "ticket", example)
    path = tmp_path / "base" / "ticket.jsonl"
    assert 0 < path.stat().st_size <= 1024
    assert len(_lines(path)) == 2


def test_only_deviations() -> None:
    capture = ExampleCapture(CaptureSettings(enabled=True, only_deviations=True))
    assert capture.wants(deviated=True) and not capture.wants(deviated=False)


@pytest.mark.anyio
async def test_recovered_requests_are_captured(make_settings: SettingsFactory,
                                               fake_engine: FakeEngine, tmp_path: Path) -> None:
    capture = {"enabled": True, "dir": str(tmp_path / "examples")}
    app = create_app(make_settings(structured={"capture": capture}))
    fake_engine.enqueue("Sure, it is billing.")
    fake_engine.enqueue(TICKET)
    body = {"model": BASE_MODEL, "messages": [{"role": "user", "content": "charged twice"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "ticket"}}}
    async for client in start(app):
        response: httpx.Response = await client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200
    [example] = _lines(tmp_path / "examples" / "base" / "ticket.jsonl")
    assert example["messages"] == [{"role": "user", "content": "charged twice"},
                                   {"role": "assistant", "content": TICKET}]
    assert example["attempts"] == 2 and example["deviations"] == ["not_json"]


@pytest.mark.anyio
async def test_a_capture_that_cannot_write_never_costs_the_answer(
    make_settings: SettingsFactory, fake_engine: FakeEngine, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A capture folder that cannot be written (here a file stands where it should be; a
    full disk or a read-only root filesystem go the same way): the answer still goes out,
    the failure is counted and logged once."""
    blocked = tmp_path / "examples"
    blocked.write_text("not a folder")
    app = create_app(make_settings(structured={"capture": {"enabled": True,
                                                           "dir": str(blocked)}}))
    body = {"model": BASE_MODEL, "messages": [{"role": "user", "content": "charged twice"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "ticket"}}}
    async for client in start(app):
        for _ in range(2):
            fake_engine.enqueue(TICKET)
            response = await client.post("/v1/chat/completions", json=body)
            assert response.status_code == 200 and response.json()["structured"]["valid"]
        samples = parse((await client.get("/metrics")).text)
    assert value(samples, "gateway_capture_errors_total", reason="not_a_directory") == 2
    assert len([r for r in caplog.records if "capture: cannot write" in r.message]) == 1


WRITES = 150


def _capture_from_a_process(folder: str, worker: int, failures: Any) -> None:
    settings = CaptureSettings(enabled=True, dir=Path(folder), max_file_bytes=2048,
                               max_files=100)
    capture = ExampleCapture(settings)
    for index in range(WRITES):
        example = chat_example([{"role": "user", "content": f"{worker}-{index} " + "x" * 80}],
                               ANSWER, REPORT)
        if capture.record("base", "ticket", example) is not None:
            failures.put((worker, index))


def test_worker_processes_rotate_the_same_file_without_losing_examples(tmp_path: Path) -> None:
    """server.workers > 1: every worker appends to and rotates one file; an OS-level lock
    keeps each rotation whole, so no write fails and no example is lost."""
    context = multiprocessing.get_context("spawn")
    failures = context.Queue()
    workers = [context.Process(target=_capture_from_a_process,
                               args=(str(tmp_path), w, failures)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    assert failures.empty()
    lines = [line for path in (tmp_path / "base").glob("ticket.jsonl*")
             for line in path.read_text().splitlines()]
    assert len(lines) == 3 * WRITES
    assert all(path.stat().st_size <= 2048 for path in (tmp_path / "base").glob("ticket.*"))
