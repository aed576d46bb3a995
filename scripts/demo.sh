#!/usr/bin/env bash
# Sets up everything (see scripts/setup.sh), then runs the demo: a local mosquitto,
# the agent on a simulated street camera, and a subscriber printing each event.
# Extra arguments go to `edge-agent demo` (e.g. --seconds 60).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/edge-agent demo "$@"
