"""What every settings section shares: unknown keys refused, paths from the project root.

Each domain declares its own section (``gateway.engine.settings``, ...); only the
assembly code (``gateway.config`` and ``gateway.wiring``) puts them together.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
