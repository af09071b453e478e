#!/usr/bin/env bash
# The test command: set up (with Prometheus and Chromium), then lint, check the layers, type-check and run
# the tests.
#
#   scripts/test.sh                      everything, including the real-vLLM tier
#   scripts/test.sh -m "not integration" extra arguments go to pytest
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh --with-prometheus --with-browser

echo "==> ruff"
.venv/bin/ruff check gateway tests loadtests benchmarks deploy
echo "==> import-linter (the layers of docs/architecture.md)"
.venv/bin/lint-imports
echo "==> mypy"
.venv/bin/mypy
echo "==> pytest"
.venv/bin/python -m pytest --durations=15 "$@"
