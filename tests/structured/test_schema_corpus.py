"""The shipped corpus of real-world schemas, a subset of it: admission refuses none that the
engine's compiler takes within the limits (recorded by `bench_schema_corpus record`).

The whole corpus: `.venv/bin/python -m benchmarks.bench_schema_corpus bench`.
"""

from __future__ import annotations

from benchmarks.bench_schema_corpus import TARGET, corpus, measure, report, verdicts

EVERY = 8  # about 80 of the 655 schemas, a few seconds


def test_admission_refuses_no_schema_the_engine_compiles_in_a_subset_of_the_corpus() -> None:
    entries = corpus(every=EVERY)
    recorded = verdicts()
    assert {e.source for e in entries} == {"schemastore", "kubernetes", "bfcl", "openai-api",
                                           "json-schema-meta"}
    assert all(e.id in recorded for e in entries if isinstance(e.schema, dict))
    figures = measure(entries, recorded)
    lines = "\n".join(report(figures))
    assert figures.refused_constrainable_share <= TARGET, lines
    assert figures.admitted >= 0.9 * figures.total, lines


def test_the_corpus_carries_its_licences() -> None:
    from benchmarks.bench_schema_corpus import SCHEMAS

    licences = (SCHEMAS / "LICENSES.md").read_text()
    for source in ("schemastore", "kubernetes", "bfcl", "openai-api", "json-schema-meta"):
        assert source in licences
        assert any((SCHEMAS / "licenses" / source).iterdir())
