"""Admission and the compile check over the corpus of real-world schemas.

    .venv/bin/python -m benchmarks.bench_schema_corpus record   # once: the engine's verdicts
    .venv/bin/python -m benchmarks.bench_schema_corpus bench [--every K]

``record`` compiles the grammar of a constrained retry on every schema of
benchmarks/schemas/corpus.jsonl.gz (benchmarks/schema_corpus.py builds it) with the engine's
compiler (xgrammar, for the bundled model's tokenizer), in the compile check's worker and
under its limits (2 s, 2,048 MiB), and writes benchmarks/schemas/verdicts.json. It takes
minutes: every compile that breaks a limit costs the limit and a new worker.

``bench`` admits every schema as the gateway admits a ``response_format`` schema and
prints, side by side: admitted, constrainable (by the recorded verdicts), refused by
reason, the schemas refused although the engine's compiler takes them (the target: at most
0.5 %), admission p50 and p99, and the recorded compile p50 and p99. ``--every K`` takes
every K-th schema (the test suite runs a subset this way).
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import statistics
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from gateway.engine.model_prep import default_model_dir
from gateway.grammar.settings import GrammarCheckSettings
from gateway.grammar.worker import CompileWorker
from gateway.structured.bounds import SchemaBounds
from gateway.structured.constrained import constrained_fields
from gateway.structured.errors import SchemaRejected
from gateway.structured.grammars import grammar_specs
from gateway.structured.validation import ValidatorCache

SCHEMAS = Path(__file__).resolve().parent / "schemas"
CORPUS = SCHEMAS / "corpus.jsonl.gz"
VERDICTS = SCHEMAS / "verdicts.json"
TARGET = 0.005  # refused although constrainable, at most
# Refusal messages by their opening words (gateway/structured/bounds.py, validation.py).
REASONS = (
    ("bytes as compact JSON", "size"),
    ("levels deep", "depth"),
    ("nests more than", "depth"),
    ("properties in all", "properties"),
    ("values; the limit", "enum"),
    ("references ($ref)", "reference count"),
    ("regular expressions exceed", "pattern length"),
    ("references must point inside", "reference outside the schema"),
    ("look-arounds", "regex the validator cannot run"),
    ("regular expression is too large", "regex the validator cannot run"),
    ("invalid schema at", "not a valid schema"),
    ("unsupported $schema", "unknown draft"),
)


@dataclass(frozen=True)
class Entry:
    id: str
    source: str
    schema: Any


def corpus(path: Path = CORPUS, every: int = 1) -> list[Entry]:
    """The corpus, or every ``every``-th schema of it."""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        entries = [json.loads(line) for line in lines]
    return [Entry(e["id"], e["source"], e["schema"]) for e in entries[::every]]


def verdicts(path: Path = VERDICTS) -> dict[str, dict[str, Any]]:
    recorded: dict[str, dict[str, Any]] = json.loads(path.read_text())["verdicts"]
    return recorded


def admission(schema: Any, cache: ValidatorCache) -> str | None:
    """Why the gateway refuses ``schema`` as a response_format schema (None: admitted)."""
    try:
        cache.compile(schema)
    except SchemaRejected as exc:
        return next((reason for words, reason in REASONS if words in exc.message), "other")
    return None


def constrained_grammar(schema: Any) -> tuple[str, str]:
    """The kind and text of the grammar a constrained retry on ``schema`` sends."""
    [spec] = grammar_specs(constrained_fields(schema), chat=True)
    return spec.kind, spec.text


def record(out: Path, every: int) -> None:
    settings = GrammarCheckSettings()
    worker = CompileWorker(settings.compiler, default_model_dir(), threads=1,
                           start_timeout_s=settings.start_timeout_s)
    made: dict[str, dict[str, Any]] = {}
    try:
        for entry in tqdm(corpus(every=every), desc="compiling", unit="schema"):
            if not isinstance(entry.schema, dict):
                continue
            kind, text = constrained_grammar(entry.schema)
            result = worker.compile(kind, text, settings.time_limit_s,
                                    settings.memory_limit_mib << 20)
            made[entry.id] = {"compilable": result.problem is None,
                              "ms": round(result.ms, 1), "reason": result.problem}
    finally:
        worker.stop()
    import xgrammar  # the version the verdicts were made with

    out.write_text(json.dumps({
        "compiler": f"xgrammar {getattr(xgrammar, '__version__', _version('xgrammar'))}",
        "tokenizer": default_model_dir().name,
        "limits": {"time_s": settings.time_limit_s, "memory_mib": settings.memory_limit_mib},
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "verdicts": made,
    }, indent=1, sort_keys=True) + "\n")
    taken = sum(v["compilable"] for v in made.values())
    print(f"{taken} of {len(made)} grammars compile within the limits; wrote {out}")


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


@dataclass
class Figures:
    total: int
    admitted: int
    refused: Counter[str]
    constrainable: int
    refused_constrainable: list[str]
    admission_ms: list[float]
    compile_ms: list[float]

    @property
    def refused_constrainable_share(self) -> float:
        return len(self.refused_constrainable) / max(self.constrainable, 1)


def measure(entries: Sequence[Entry], recorded: dict[str, dict[str, Any]]) -> Figures:
    refused: Counter[str] = Counter()
    refused_constrainable, admission_ms, compile_ms = [], [], []
    constrainable = 0
    for entry in entries:
        cache = ValidatorCache(SchemaBounds())  # a cold cache: each admission costs in full
        started = time.perf_counter()
        reason = admission(entry.schema, cache)
        admission_ms.append((time.perf_counter() - started) * 1000)
        verdict = recorded.get(entry.id)
        if verdict is not None:
            compile_ms.append(float(verdict["ms"]))
            constrainable += bool(verdict["compilable"])
        if reason is not None:
            refused[reason] += 1
            if verdict is not None and verdict["compilable"]:
                refused_constrainable.append(f"{entry.id} ({reason})")
    return Figures(len(entries), len(entries) - sum(refused.values()), refused, constrainable,
                   refused_constrainable, admission_ms, compile_ms)


def _quantiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (0.0, 0.0)
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98]


def report(figures: Figures) -> Iterator[str]:
    share = figures.refused_constrainable_share
    adm50, adm99 = _quantiles(figures.admission_ms)
    com50, com99 = _quantiles(figures.compile_ms)
    yield f"{'schemas':<44}{figures.total:>8}"
    yield f"{'admitted':<44}{figures.admitted:>8}  {figures.admitted / figures.total:.1%}"
    yield (f"{'constrainable (recorded compile verdicts)':<44}{figures.constrainable:>8}  "
           f"{figures.constrainable / figures.total:.1%}")
    for reason, count in figures.refused.most_common():
        yield f"{'refused: ' + reason:<44}{count:>8}"
    yield (f"{'refused although constrainable':<44}{len(figures.refused_constrainable):>8}  "
           f"{share:.2%} of constrainable (target: at most {TARGET:.1%})")
    for name in figures.refused_constrainable:
        yield f"    {name}"
    yield f"{'admission p50 / p99 (ms, cold cache)':<44}{adm50:>8.2f} / {adm99:.2f}"
    yield f"{'compile check p50 / p99 (ms, recorded)':<44}{com50:>8.1f} / {com99:.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record", help="compile every schema's grammar, once")
    rec.add_argument("--out", type=Path, default=VERDICTS)
    rec.add_argument("--every", type=int, default=1)
    bench = commands.add_parser("bench", help="admission against the recorded verdicts")
    bench.add_argument("--every", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "record":
        record(args.out, args.every)
        return 0
    figures = measure(corpus(every=args.every), verdicts())
    for line in report(figures):
        print(line)
    return 0 if figures.refused_constrainable_share <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
