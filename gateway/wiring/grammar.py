"""Builds the compile check for the served model's tokenizer."""

from __future__ import annotations

import logging

from gateway.config import Settings
from gateway.grammar.checker import GrammarChecker
from gateway.grammar.settings import XGRAMMAR
from gateway.metrics import Recorder

log = logging.getLogger(__name__)


def grammar_checker(settings: Settings, recorder: Recorder) -> GrammarChecker | None:
    """The compile check, for the served model's tokenizer (None when it is turned off)."""
    check = settings.structured.grammar_check
    if not check.enabled:
        log.warning("structured.grammar_check is off: grammars reach the engine unchecked")
        return None
    tokenizer = check.tokenizer
    if tokenizer is None and settings.engine.mode == "embedded":
        tokenizer = settings.engine.model_folder()
    if tokenizer is None and check.compiler == XGRAMMAR:
        log.warning("structured.grammar_check.tokenizer is not set: with a remote engine, no "
                    "grammar can be checked, so constrained decoding is unavailable")
    return GrammarChecker(check, tokenizer, recorder)
