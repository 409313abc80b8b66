#!/usr/bin/env bash
# Install what bench/run.py needs: wrk, ab (apache2-utils), skopeo, umoci, curl, the reference registry (Debian
# packages), py-spy in the venv. Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(wrk apache2-utils skopeo umoci curl docker-registry)
scripts/apt-ensure.sh "${APT_PACKAGES[@]}"

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -c 'import dtr' 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check -e .
[ -x .venv/bin/py-spy ] || .venv/bin/pip install -q --disable-pip-version-check py-spy
