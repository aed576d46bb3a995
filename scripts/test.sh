#!/usr/bin/env bash
# Sets up everything (see scripts/setup.sh), then runs lint, type checks and every test.
# Models and footage are found through EDGE_AGENT_MODEL_PATH / EDGE_AGENT_MEDIA_PATH
# (or the cache filled by `edge-agent models fetch`). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
# pytest exits 5 when it collected nothing: that is a failure here too.
.venv/bin/python -m pytest -p no:cacheprovider "$@"
