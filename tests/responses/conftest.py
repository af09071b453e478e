"""The Responses API in process, in front of the fake engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TICKET_SCHEMA: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "config" / "schemas" / "ticket.json").read_text())
TICKET = '{"category": "billing", "priority": "high", "escalate": true}'
