"""Re-ask: show the model its invalid answer and what was wrong with it.

For chat requests the invalid answer is appended as the assistant's turn,
followed by a user turn that lists the problems and asks for the corrected
JSON only. For ``/v1/completions`` the same text is appended to the prompt.
A long answer (a run-away) is quoted only in part, so a retry does not
spend the context window on it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.structured.deviations import Verdict

MAX_QUOTED_CHARS = 2_000
MAX_SCHEMA_CHARS = 4_000


def feedback(verdict: Verdict, schema: Mapping[str, Any] | None = None) -> str:
    """The user turn that asks for a corrected answer."""
    lines = ["Your previous answer is not valid. Problems:"]
    lines.extend(f"- {message}" for message in verdict.messages or ("unknown problem",))
    lines.append(
        "Reply with only the corrected JSON object: no explanation, no code fences, "
        "no text before or after it."
    )
    if schema is not None:
        text = json.dumps(schema, separators=(",", ":"), ensure_ascii=False)
        if len(text) <= MAX_SCHEMA_CHARS:
            lines.append(f"It must match this JSON Schema: {text}")
    return "\n".join(lines)


def quote(answer: str | None) -> str:
    """The invalid answer as it will be shown again: trailing whitespace dropped, capped."""
    text = (answer or "").rstrip()
    if len(text) > MAX_QUOTED_CHARS:
        return text[:MAX_QUOTED_CHARS] + " …"
    return text


def reask_messages(
    messages: Sequence[Mapping[str, Any]],
    answer: str | None,
    verdict: Verdict,
    schema: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The conversation for the next attempt; ``messages`` is left unchanged."""
    return [
        *(dict(message) for message in messages),
        {"role": "assistant", "content": quote(answer)},
        {"role": "user", "content": feedback(verdict, schema)},
    ]


def reask_prompt(
    prompt: str, answer: str | None, verdict: Verdict, schema: Mapping[str, Any] | None = None
) -> str:
    """The ``/v1/completions`` prompt for the next attempt."""
    return f"{prompt}{quote(answer)}\n\n{feedback(verdict, schema)}\nCorrected JSON:\n"
