#!/usr/bin/env bash
# The whole check: lint, types, a wheel install that serves, migrations vs models, and every test
# against real servers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/runtime-$(id -u)}
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
.venv/bin/ruff check dtr tests bench migrations
.venv/bin/mypy
scripts/check-wheel.sh
# Every dtr process the tests start (servers, CLI commands: hundreds) imports dtr; with
# PYTHONDONTWRITEBYTECODE set (CI sets it) each would compile dtr from source, 0.5 s of CPU apiece.
.venv/bin/python -m compileall -q -j 0 dtr tests bench migrations >/dev/null
.venv/bin/pytest -n "${TEST_WORKERS:-2}" -p no:cacheprovider "$@"
