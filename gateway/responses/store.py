"""Stored responses in one SQLite file: private to the key that made them, bounded in age,
count and size, and durable across restarts.

SQLite (the standard library's driver) rather than files: one atomic transaction per
write, readers never see half a response, and several worker processes share the file in
WAL mode with a busy timeout. Each call opens its own connection, in a worker thread.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any

from gateway.errors import GatewayError, InvalidRequest, NotFound
from gateway.responses.settings import ResponsesSettings

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at REAL NOT NULL,
    previous_id TEXT,
    input TEXT NOT NULL,
    response TEXT NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_by_age ON responses (created_at);
"""
_BUSY_TIMEOUT_S = 10.0


class ResponseStoreUnavailable(GatewayError):
    status_code = 503
    error_type = "api_error"
    default_code = "response_store_unavailable"
    default_public = ("Stored responses are unavailable right now; requests with "
                      "store: false are still served.")


@dataclass(frozen=True)
class Stored:
    input: list[dict[str, Any]]
    response: dict[str, Any]


class ResponseStore:
    def __init__(self, settings: ResponsesSettings) -> None:
        self.settings = settings
        self.path = settings.store_file
        self._ready = False  # the file has WAL mode and the table (set up once)

    def check(self) -> None:
        """Raises ResponseStoreUnavailable unless the database opens (created if missing)."""
        with self._connection():
            pass

    def put(self, owner: str, response: dict[str, Any], items: list[dict[str, Any]]) -> None:
        """Keeps one response and its input items, then applies the retention limits."""
        stored_input, stored_response = json.dumps(items), json.dumps(response)
        size = len(stored_input) + len(stored_response)
        with self._connection() as db:
            db.execute("INSERT INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (response["id"], owner, time.time(), response.get("previous_response_id"),
                        stored_input, stored_response, size))
            self._retain(db)

    def get(self, owner: str, response_id: str) -> Stored:
        """The response ``response_id`` made with ``owner``'s key; 404 for anyone else's."""
        with self._connection() as db:
            found = self._row(db, owner, response_id)
        if found is None:
            raise NotFound(f"No response with id {response_id!r} is stored for this key: it "
                           "was made with store: false, deleted, expired, or never existed.",
                           param="response_id", code="response_not_found")
        return found

    def _row(self, db: sqlite3.Connection, owner: str, response_id: str) -> Stored | None:
        row = db.execute("SELECT input, response FROM responses WHERE id = ? AND owner = ? "
                         "AND created_at >= ?", (response_id, owner, self._oldest())).fetchone()
        return None if row is None else Stored(json.loads(row[0]), json.loads(row[1]))

    def delete(self, owner: str, response_id: str) -> None:
        with self._connection() as db:
            gone = db.execute("DELETE FROM responses WHERE id = ? AND owner = ?",
                              (response_id, owner)).rowcount
        if not gone:
            raise NotFound(f"No response with id {response_id!r} is stored for this key.",
                           param="response_id", code="response_not_found")

    def conversation(self, owner: str, response_id: str) -> list[Stored]:
        """The chain that ends with ``response_id``, oldest first (``max_chain`` at most),
        read in one transaction."""
        chain: list[Stored] = []
        current: str | None = response_id
        with self._connection() as db:
            while current is not None and len(chain) < self.settings.max_chain:
                turn = self._row(db, owner, current)
                if turn is None:
                    break  # an older turn has expired: the conversation starts after it
                chain.append(turn)
                current = turn.response.get("previous_response_id")
        if not chain:
            raise InvalidRequest(
                f"previous_response_id {response_id!r} is not stored for this key: it was "
                "made with store: false, deleted, expired, or never existed",
                param="previous_response_id", code="previous_response_not_found")
        return chain[::-1]

    def _retain(self, db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM responses WHERE created_at < ?", (self._oldest(),))
        count, size = db.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM responses"
                                 ).fetchone()
        excess = max(0, count - self.settings.max_count)
        while size > self.settings.max_bytes and excess < count:
            # The oldest go first, in steps of a tenth, until the size fits.
            excess += max(1, count // 10)
            size = db.execute("SELECT COALESCE(SUM(bytes), 0) FROM (SELECT bytes FROM "
                              "responses ORDER BY created_at DESC LIMIT ?)",
                              (max(0, count - excess),)).fetchone()[0]
        if excess:
            db.execute("DELETE FROM responses WHERE id IN (SELECT id FROM responses "
                       "ORDER BY created_at ASC LIMIT ?)", (excess,))

    def _oldest(self) -> float:
        return time.time() - self.settings.max_age_s

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S)) as db:
                if not self._ready:
                    db.execute("PRAGMA journal_mode=WAL")  # kept in the file itself
                    db.executescript(_SCHEMA)
                    self._ready = True
                with db:
                    yield db
        except (sqlite3.Error, OSError) as exc:
            self._ready = False  # a file replaced or removed meanwhile is set up again
            log.error("stored responses: %s is unusable (%s); store: false still works",
                      self.path, exc)
            raise ResponseStoreUnavailable(
                f"The stored responses database {self.path} cannot be used ({exc}). Move the "
                "file aside to start an empty one, or fix its folder's permissions; requests "
                "with store: false are served meanwhile.") from exc
