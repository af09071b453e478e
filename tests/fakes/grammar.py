"""A stand-in for the engine's grammar compiler, loaded by the compile worker in tests.

It compiles nothing. Like xgrammar it refuses JSON that does not parse and regexes that
do not compile, and a grammar holding one of the markers below (in a ``description``, say)
makes it misbehave the way real schemas made vLLM's compiler misbehave: hang, or grow
without end. The gateway under test cannot tell it from a compiler doing real work.
"""

from __future__ import annotations

import json
import re
import threading

from gateway.grammar.worker import Compile
from gateway.structured.grammars import JSON, REGEX, STRUCTURAL_TAG

REFERENCE = "tests.fakes.grammar:compiler"
HANG = "stand-in: the compile hangs"
BALLOON = "stand-in: the compile grows without end"
REFUSE = "stand-in: the compiler refuses this"
_CHUNK = 32 << 20


def compiler(tokenizer: str | None, threads: int) -> Compile:
    def compile_(kind: str, text: str) -> None:
        if HANG in text:
            threading.Event().wait()  # native code ignores signals; only a kill ends this
        if BALLOON in text:
            held = []
            while True:
                held.append(bytearray(_CHUNK))  # zero-filled: resident at once
        if REFUSE in text:
            raise ValueError("the stand-in compiler refuses this grammar")
        if kind in (JSON, STRUCTURAL_TAG):
            json.loads(text)
        elif kind == REGEX:
            re.compile(text)

    return compile_
