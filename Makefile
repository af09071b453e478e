# Every target sets up .venv first (fast when nothing changed); see scripts/setup.sh.
.PHONY: setup run test lint bench bench-parts eval loadtest rollout-demo ticket-router

setup:
	scripts/setup.sh

run: setup
	.venv/bin/adapter-gateway serve

test:
	scripts/test.sh

lint: setup
	.venv/bin/ruff check gateway tests loadtests benchmarks deploy
	.venv/bin/lint-imports
	.venv/bin/mypy

# The gateway against the engine, side by side (about 25 minutes here): writes
# docs/benchmarks.md, docs/benchmarks.json and docs/benchmarks.png.
bench: setup
	.venv/bin/python -m benchmarks.side_by_side --runs 3

# Smaller benchmarks of single parts (figures in the README).
bench-parts: setup
	.venv/bin/python -m benchmarks.bench_overhead
	.venv/bin/python -m benchmarks.bench_validation
	.venv/bin/python -m benchmarks.bench_hostile_schemas
	.venv/bin/python -m benchmarks.bench_hostile_corpus
	.venv/bin/python -m benchmarks.bench_schema_corpus bench
	.venv/bin/python -m benchmarks.bench_metrics
	.venv/bin/python -m benchmarks.bench_adapter_cycles --start

# One minute of realistic traffic on the embedded setup (vLLM on the bundled model), with a
# hot swap under load; fails when a threshold is missed. Reports in var/loadtest/.
loadtest: setup
	.venv/bin/python -m loadtests.run --users 8 --duration 60s --out var/loadtest

# Two new ticket-router versions rolled out on the embedded setup: a good one promoted by
# the gate, a bad one rolled back (about 5 minutes). Transcript in the README.
rollout-demo: setup
	.venv/bin/python -m loadtests.rollout_demo

# "Should I fine-tune?" on the shipped support tickets (starts the embedded gateway).
eval: setup
	.venv/bin/adapter-gateway eval --dataset data/tickets/eval.jsonl \
		--variants config/eval/tickets.yaml --out var/eval/tickets

# Re-creates the shipped ticket-router adapter from data/tickets (about 10 to 25 minutes on
# two CPU cores); the gateway's watcher picks the new version up if it is running.
TICKET_PROMPT = Route the support ticket. Answer with its JSON only.
ticket-router: setup
	.venv/bin/python data/tickets/generate.py
	.venv/bin/adapter-gateway train --data data/tickets/train.jsonl --name ticket-router \
		--out adapters/ticket-router --version 3 --schema ticket \
		--system-prompt "$(TICKET_PROMPT)" --rank 16 --alpha 32 --epochs 3 \
		--batch-size 8 --learning-rate 3e-4 --seed 0
