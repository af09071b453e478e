# Every target sets up .venv first (fast when nothing changed); see scripts/setup.sh.
.PHONY: setup run test lint bench eval

setup:
	scripts/setup.sh

run: setup
	.venv/bin/adapter-gateway serve

test:
	scripts/test.sh

lint: setup
	.venv/bin/ruff check gateway tests loadtests benchmarks
	.venv/bin/lint-imports
	.venv/bin/mypy

bench: setup
	.venv/bin/python -m benchmarks.bench_overhead
	.venv/bin/python -m benchmarks.bench_validation
	.venv/bin/python -m benchmarks.bench_hostile_schemas
	.venv/bin/python -m benchmarks.bench_hostile_corpus
	.venv/bin/python -m benchmarks.bench_metrics
	.venv/bin/python -m benchmarks.bench_adapter_cycles --start

# "Should I fine-tune?" on the shipped support tickets (starts the embedded gateway).
eval: setup
	.venv/bin/adapter-gateway eval --dataset data/tickets/eval.jsonl \
		--variants config/eval/tickets.yaml --out var/eval/tickets
