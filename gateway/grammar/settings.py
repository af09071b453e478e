"""The ``structured.grammar_check`` section."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from gateway._sections import Section

XGRAMMAR = "xgrammar"


class GrammarCheckSettings(Section):
    """How grammars are checked before they reach the engine."""

    # Off: grammars reach the engine unchecked, and one schema can stall or exhaust it.
    enabled: bool = True
    # A compile that takes longer, or grows the worker by more memory, is "unavailable".
    time_limit_s: float = Field(2.0, gt=0, le=600)
    memory_limit_mib: int = Field(2048, ge=64)
    # The served model's tokenizer folder (tokenizer.json and config.json). None: the
    # embedded engine's model folder; in remote mode set it (deploy/ mounts one).
    tokenizer: Path | None = None
    # "xgrammar" (the engine's structured-output backend, pinned in the engine's flags), or
    # "module:function" naming a compiler factory with the same signature (a stand-in).
    compiler: str = Field(XGRAMMAR, pattern=r"^(xgrammar|[\w.]+:\w+)$")
    # Threads the compiler may use for one grammar.
    threads: int = Field(1, ge=1, le=16)
    # Verdicts kept, newest first (a verdict is a few hundred bytes).
    max_verdicts: int = Field(10_000, ge=1)
    # Seconds to wait for the worker to load the tokenizer before a verdict says it failed.
    start_timeout_s: float = Field(120.0, gt=0)
    # Start the worker with the gateway (it loads the tokenizer beside the engine's start),
    # so that the first grammar need not wait for it; false: on the first grammar.
    start_early: bool = True
