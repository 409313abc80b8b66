#!/usr/bin/env bash
# Install what the test suite needs on Debian: real clients and servers, and the Python venv.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3-venv docker.io podman skopeo umoci docker-registry busybox-static slapd ldap-utils
  rpm ruby golang-go libmaven3-core-java default-jre-headless  # tests/scanning/test_versions.py: reference version orders
  swift swift-proxy swift-account swift-container swift-object memcached
  python3-keystone python3-keystonemiddleware  # Keystone v3 for the swift driver (not the `keystone` service package)
  nginx-light haproxy)  # the load balancers of tests/ha (deploy/nginx.conf, deploy/haproxy.cfg)

scripts/apt-ensure.sh "${APT_PACKAGES[@]}"

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | { grep -v '^WARNING: Location' || true; }

# Azurite (Azure Blob emulator) from npm, project-local.
if [ ! -x .tools/azurite/node_modules/.bin/azurite-blob ]; then
  command -v npm >/dev/null || scripts/apt-ensure.sh npm
  npm install --silent --no-audit --no-fund --prefix .tools/azurite azurite@3 >/dev/null
fi
