"""The ``responses`` section: where stored responses live and how long they are kept."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from gateway._sections import PROJECT_ROOT, Section


class ResponsesSettings(Section):
    # One SQLite file, created on first use. Replicas share it only on a local disk (a
    # shared volume on one node): SQLite on a network file system is not supported.
    store_file: Path = PROJECT_ROOT / "var" / "responses.sqlite3"
    # Retention: responses older than this, beyond this many, or past this size go first.
    max_age_s: float = Field(30 * 24 * 3600, gt=0)
    max_count: int = Field(100_000, ge=1)
    max_bytes: int = Field(1024**3, ge=1024 * 1024)
    # The longest previous_response_id chain followed into one request.
    max_chain: int = Field(100, ge=1)
