#!/usr/bin/env bash
# Installs what edge_agent needs on Debian/Ubuntu/Raspberry Pi OS, idempotently:
# system packages (mosquitto, python3-venv) where missing, a virtualenv in .venv, and the
# agent, the simulator and the development tools inside it. With --tests (scripts/test.sh)
# also what only the test suite needs: Chromium and its driver (the page's browser tests),
# RabbitMQ (the second MQTT broker of the delivery tests) and the AsyncAPI parser (Node.js).
# Safe to run again; only does what is missing.
# Used by scripts/test.sh and scripts/demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

is_raspberry_pi() { grep -qs "Raspberry Pi" /proc/device-tree/model; }

# --tests: also what only the test suite needs (a headless Chromium for the page's browser
# tests, Node.js for the AsyncAPI parser); the demo and a device do without them.
for_tests=""
if [ "${1:-}" = "--tests" ]; then for_tests=1; fi

apt_missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || apt_missing+=(mosquitto)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || apt_missing+=(python3-venv)
# The technician page's browser tests (tests/e2e/test_web_page.py) drive a headless Chromium.
# RabbitMQ's MQTT plugin is the second broker implementation the delivery tests run against
# (tests/rabbitmq_broker.py starts a node of its own on free loopback ports).
new_rabbitmq=""
if [ -n "$for_tests" ]; then
  command -v chromium >/dev/null 2>&1 || apt_missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || apt_missing+=(chromium-driver)
  if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    apt_missing+=(rabbitmq-server)
    new_rabbitmq=1
  fi
fi
if is_raspberry_pi; then
  python3 -c "import picamera2" >/dev/null 2>&1 || apt_missing+=(python3-picamera2)
  python3 -c "import lgpio" >/dev/null 2>&1 || apt_missing+=(python3-lgpio)
fi
if [ ${#apt_missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${apt_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi
if [ -n "$new_rabbitmq" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  # Installed only for the tests, which start their own node: the packaged service
  # (ports 5672, 25672, 4369) is not needed.
  $SUDO systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating virtualenv .venv"
  if is_raspberry_pi; then
    # Bookworm's apt picamera2 is built against numpy 1: see README "Raspberry Pi OS".
    python3 -m venv --system-site-packages .venv
  else
    python3 -m venv .venv
  fi
fi

stamp=.venv/.edge-agent-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ hw-sim/pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  constraints=()
  if is_raspberry_pi && python3 -c "import picamera2" >/dev/null 2>&1; then
    constraints=("numpy<2" "opencv-python-headless<4.12")
    extras="dev,pi"
  else
    extras="dev"
  fi
  .venv/bin/python -m pip install -q "${constraints[@]}" -e ".[${extras}]" -e ./hw-sim
  touch "$stamp"
fi

# The official AsyncAPI parser, for tests/unit/test_asyncapi_parser.py: pinned in
# tools/asyncapi/package-lock.json, installed with `npm ci` (never committed). Where CI is
# set it must run, so Node.js is installed if missing; elsewhere the test is skipped.
if [ -z "$for_tests" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1 && [ -n "${CI:-}" ]; then
  echo "setup: installing system packages: nodejs npm (CI: the AsyncAPI parser test)"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
node_stamp=tools/asyncapi/node_modules/.edge-agent-installed
if command -v npm >/dev/null 2>&1; then
  if [ ! -f "$node_stamp" ] || [ tools/asyncapi/package-lock.json -nt "$node_stamp" ]; then
    echo "setup: installing the AsyncAPI parser into tools/asyncapi/node_modules (npm ci)"
    # No install scripts: the parser needs none (one dependency's is only telemetry).
    (cd tools/asyncapi && SCARF_ANALYTICS=false npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    touch "$node_stamp"
  fi
else
  echo "setup: npm not found: tests/unit/test_asyncapi_parser.py will be skipped (apt install nodejs npm)"
fi
