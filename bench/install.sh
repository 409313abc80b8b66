#!/usr/bin/env bash
# Install what bench/run.py needs: wrk, ab (apache2-utils), skopeo, umoci, curl, the reference registry (Debian
# packages), py-spy in the venv. Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(wrk apache2-utils skopeo umoci curl docker-registry)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -c 'import dtr' 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check -e .
[ -x .venv/bin/py-spy ] || .venv/bin/pip install -q --disable-pip-version-check py-spy
