"""The compile worker: a child process that compiles grammars with the engine's compiler.

A compile cannot be interrupted inside the process that runs it (xgrammar is native code),
and a hostile grammar can take minutes or many gigabytes. So it runs here, in a process of
its own that the gateway kills when a compile outgrows its time or memory limit
(:class:`CompileWorker`); the gateway's own process never compiles anything.

The compiler is a factory ``make(tokenizer, threads) -> compile(kind, text)``:
:func:`xgrammar_compiler` is the engine's (vLLM's xgrammar backend, the same calls and the
same tokenizer), and a ``module:function`` reference names another (a stand-in in tests).
multiprocessing's ``Process`` and ``Pipe`` carry it; a pool library (pebble) would too, but
one compile at a time, a warm tokenizer and a memory watch are all this needs.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from gateway.grammar.settings import XGRAMMAR
from gateway.structured.grammars import (
    CHOICE,
    JSON,
    JSON_OBJECT,
    OBJECT_SCHEMA,
    REGEX,
    STRUCTURAL_TAG,
)

Compile = Callable[[str, str], None]
CompilerFactory = Callable[[str | None, int], Compile]

# vLLM 0.32 refuses JSON schemas nested deeper than this before compiling them
# (sampling_params.MAX_STRUCTURED_OUTPUT_JSON_NESTING), structural tags 16 levels deeper.
ENGINE_MAX_NESTING = 64
STRUCTURAL_TAG_NESTING = 16
# How often the gateway looks at a compiling worker's memory.
_WATCH_INTERVAL_S = 0.02
_LOG_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: ")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class GrammarRefused(Exception):
    """The engine would refuse this grammar before compiling it."""


def xgrammar_compiler(tokenizer: str | None, threads: int) -> Compile:
    """xgrammar, set up as vLLM 0.32's xgrammar backend sets it up, for ``tokenizer``."""
    if tokenizer is None:
        raise ValueError("no tokenizer folder to compile grammars for: set "
                         "structured.grammar_check.tokenizer to the served model's folder")
    import xgrammar as xgr
    from transformers import AutoConfig, AutoTokenizer

    hf_tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    vocab_size = AutoConfig.from_pretrained(tokenizer).vocab_size
    info = xgr.TokenizerInfo.from_huggingface(hf_tokenizer, vocab_size=vocab_size)
    compiler = xgr.GrammarCompiler(info, max_threads=threads, cache_enabled=False)

    def compile_(kind: str, text: str) -> None:
        if kind in (JSON, STRUCTURAL_TAG):
            limit = ENGINE_MAX_NESTING + (STRUCTURAL_TAG_NESTING if kind == STRUCTURAL_TAG else 0)
            if nests_deeper(text, limit):
                raise GrammarRefused(f"the engine refuses grammars nested more than {limit} "
                                     "levels deep")
        if kind == JSON:
            compiler.compile_json_schema(text, any_whitespace=True)
        elif kind == JSON_OBJECT:
            compiler.compile_json_schema(OBJECT_SCHEMA, any_whitespace=True)
        elif kind == STRUCTURAL_TAG:
            tag = json.loads(text)
            if "structures" in tag:  # the older form, as vLLM compiles it
                items = [xgr.StructuralTagItem(begin=s["begin"], schema=json.dumps(s["schema"]),
                                               end=s["end"]) for s in tag["structures"]]
                compiler.compile_structural_tag(items, tag["triggers"])
            else:
                compiler.compile_structural_tag(text)
        elif kind == REGEX:
            compiler.compile_regex(text)
        elif kind == CHOICE:
            compiler.compile_grammar(text)
        else:
            raise GrammarRefused(f"unknown grammar kind {kind!r}")

    return compile_


def nests_deeper(text: str, limit: int) -> bool:
    """Whether a JSON document nests objects and arrays deeper than ``limit`` (as vLLM
    checks it, level by level, without recursion)."""
    try:
        level: list[Any] = [json.loads(text)]
    except RecursionError:
        return True
    except ValueError:
        return False  # the compiler says what is wrong with it
    for _ in range(limit):
        level = [child for node in level if isinstance(node, (dict, list))
                 for child in (node.values() if isinstance(node, dict) else node)
                 if isinstance(child, (dict, list))]
        if not level:
            return False
    return True


def compiler_message(exc: BaseException) -> str:
    """The compiler's own words, without xgrammar's log prefix ("[12:00:01] file.cc:83: ")."""
    lines = str(exc).splitlines() or [type(exc).__name__]
    return _LOG_PREFIX.sub("", lines[0])[:300]


def load_factory(reference: str) -> CompilerFactory:
    if reference == XGRAMMAR:
        return xgrammar_compiler
    module, _, name = reference.partition(":")
    factory: CompilerFactory = getattr(importlib.import_module(module), name)
    return factory


def serve(conn: Connection, compiler: str, tokenizer: str | None, threads: int) -> None:
    """The child's main loop: ("ready" | "failed", detail), then one reply per grammar."""
    try:
        compile_ = load_factory(compiler)(tokenizer, threads)
    except Exception as exc:  # reported to the gateway, which says why in every verdict
        conn.send(("failed", f"{type(exc).__name__}: {str(exc)[:300]}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            kind, text = conn.recv()
        except (EOFError, OSError):
            return
        started = time.perf_counter()
        error: str | None = None
        try:
            compile_(kind, text)
        except MemoryError:
            error = "memory"
        except GrammarRefused as exc:
            error = str(exc)
        except Exception as exc:  # the compiler's refusal, whatever its type
            error = f"the engine's compiler refuses it: {compiler_message(exc)}"
        conn.send(((time.perf_counter() - started) * 1000, error))


@dataclass(frozen=True, slots=True)
class Compiled:
    """What one compile came to: milliseconds, and the problem (None: it compiled)."""

    ms: float
    problem: str | None = None


class CompileWorker:
    """One child process, started on first use, killed when a compile breaks a limit.

    Blocking: the gateway calls it from one thread at a time (``checker``).
    """

    def __init__(self, compiler: str, tokenizer: Path | None, threads: int,
                 start_timeout_s: float) -> None:
        self.compiler = compiler
        self.tokenizer = None if tokenizer is None else str(tokenizer)
        self.threads = threads
        self.start_timeout_s = start_timeout_s
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._ready_now = False
        self.starts = 0
        # Starting and stopping are serialised: a compile thread may start a worker while
        # the gateway closes, and a closed one never starts another.
        self._lock = threading.RLock()
        self._closed = False

    def compile(self, kind: str, text: str, time_limit_s: float, memory_limit: int) -> Compiled:
        """Compiles one grammar, or kills the worker when it takes too long or too much.

        A worker that dies under a compile is replaced and the compile tried once more on
        the new one: a second death is the grammar's doing ("the compiler crashed"), the
        first may have been anything (the worker killed from outside while idle).
        """
        crashed = Compiled(0.0)
        for _ in range(2):
            try:
                return self._compile_once(kind, text, time_limit_s, memory_limit)
            except _Died as died:
                self.stop()
                crashed = Compiled(died.ms, "the compiler crashed (out of memory, or a fault "
                                            "in it)")
        return crashed

    def _compile_once(self, kind: str, text: str, time_limit_s: float,
                      memory_limit: int) -> Compiled:
        conn, process = self._ready()
        started = time.perf_counter()
        try:
            conn.send((kind, text))
            baseline = _rss(process.pid)
            while not conn.poll(_WATCH_INTERVAL_S):
                elapsed = time.perf_counter() - started
                if elapsed > time_limit_s:
                    self.stop()
                    return Compiled(elapsed * 1000,
                                    f"grammar compile exceeded {time_limit_s:g} s")
                if _rss(process.pid) - baseline > memory_limit:
                    self.stop()
                    return Compiled(elapsed * 1000, "grammar compile exceeded "
                                                    f"{memory_limit >> 20} MiB of memory")
                if not process.is_alive():
                    break
            ms, error = conn.recv()
        except (EOFError, OSError) as exc:  # the worker died, or was stopped meanwhile
            raise _Died((time.perf_counter() - started) * 1000) from exc
        if error == "memory":
            self.stop()
            return Compiled(ms, f"grammar compile exceeded {memory_limit >> 20} MiB of memory")
        return Compiled(ms, error)

    @property
    def pid(self) -> int | None:
        """The worker's process id, while one runs."""
        process = self._process
        return None if process is None else process.pid

    @property
    def running(self) -> bool:
        """Whether a started worker is waiting for grammars."""
        process = self._process  # read once: another thread may clear it meanwhile
        return self._ready_now and process is not None and process.is_alive()

    def start(self) -> None:
        """Starts the worker now, unless it runs (blocking: it loads the tokenizer)."""
        self._ready()

    def _ready(self) -> tuple[Connection, multiprocessing.process.BaseProcess]:
        with self._lock:
            if self._closed:
                raise WorkerUnavailable("the compile check is closed")
            return self._ready_locked()

    def _ready_locked(self) -> tuple[Connection, multiprocessing.process.BaseProcess]:
        if self._process is not None and self._conn is not None and self._process.is_alive():
            return self._conn, self._process
        self.stop()
        self._ready_now = False
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=serve, name="grammar-compile-worker", daemon=True,
                                  args=(child, self.compiler, self.tokenizer, self.threads))
        process.start()
        child.close()
        self.starts += 1
        self._process, self._conn = process, parent
        if not parent.poll(self.start_timeout_s):
            self.stop()
            raise WorkerUnavailable(f"the compile worker did not start within "
                                    f"{self.start_timeout_s:g} s")
        try:
            status, detail = parent.recv()
        except (EOFError, OSError):
            status, detail = "failed", "the compile worker died while starting"
        if status != "ready":
            self.stop()
            raise WorkerUnavailable(f"the compile worker cannot start: {detail}")
        self._ready_now = True
        return parent, process

    def close(self) -> None:
        """Stops the worker for good."""
        with self._lock:
            self._closed = True
            self.stop()

    def stop(self) -> None:
        """Kills the child (a compile stuck in native code ignores anything gentler)."""
        with self._lock:
            process, conn = self._process, self._conn
            self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is not None and process.is_alive():
            process.kill()
        if process is not None:
            process.join(timeout=10)


class WorkerUnavailable(Exception):
    """The worker could not be started: no verdict can be made."""


class _Died(Exception):
    """The worker's pipe broke under a compile."""

    def __init__(self, ms: float) -> None:
        super().__init__(f"the worker died after {ms:.0f} ms")
        self.ms = ms


def _rss(pid: int | None) -> int:
    """Resident bytes of a process (Linux /proc; 0 where there is none)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0
