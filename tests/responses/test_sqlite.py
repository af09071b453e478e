"""The response store on its own: several processes writing one file, bounded size."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

from gateway.responses.settings import ResponsesSettings
from gateway.responses.store import ResponseStore

WRITES = 40


def _writer(path: str, worker: int) -> None:
    store = ResponseStore(ResponsesSettings(store_file=Path(path)))
    for index in range(WRITES):
        store.put("key", {"id": f"resp_{worker}_{index}", "output": []}, [])


def test_worker_processes_share_the_file(tmp_path: Path) -> None:
    """server.workers > 1: every write of every process lands (WAL, busy timeout)."""
    path = str(tmp_path / "responses.sqlite3")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(path, w)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 3 * WRITES
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_size_limit_drops_the_oldest(tmp_path: Path) -> None:
    settings = ResponsesSettings(store_file=tmp_path / "r.sqlite3", max_bytes=1024 * 1024)
    store = ResponseStore(settings)
    big = "x" * 100_000
    for index in range(30):
        store.put("key", {"id": f"resp_{index}", "output": [], "text": big}, [])
    with sqlite3.connect(settings.store_file) as db:
        kept, size = db.execute("SELECT COUNT(*), SUM(bytes) FROM responses").fetchone()
        newest = db.execute("SELECT id FROM responses ORDER BY created_at DESC").fetchone()[0]
    assert size <= settings.max_bytes and 0 < kept < 30
    assert newest == "resp_29"
