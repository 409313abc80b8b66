#!/usr/bin/env bash
# Install what the test suite needs on Debian: real clients and servers, and the Python venv.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(docker.io podman skopeo umoci docker-registry busybox-static slapd ldap-utils
  swift swift-proxy swift-account swift-container swift-object memcached
  python3-keystone python3-keystonemiddleware)  # Keystone v3 for the swift driver (not the `keystone` service package)

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
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v '^WARNING: Location' || true

# Azurite (Azure Blob emulator) from npm, project-local.
if [ ! -x .tools/azurite/node_modules/.bin/azurite-blob ]; then
  command -v npm >/dev/null || { SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"; $SUDO apt-get install -y -qq npm >/dev/null; }
  npm install --silent --no-audit --no-fund --prefix .tools/azurite azurite@3 >/dev/null
fi
