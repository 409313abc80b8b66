#!/usr/bin/env bash
# Install what the test suite needs on Debian: real clients and servers, and the Python venv.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3-venv docker.io podman skopeo umoci docker-registry busybox-static slapd ldap-utils
  swift swift-proxy swift-account swift-container swift-object memcached
  python3-keystone python3-keystonemiddleware  # Keystone v3 for the swift driver (not the `keystone` service package)
  nginx-light haproxy  # the load balancers of tests/ha (deploy/nginx.conf, deploy/haproxy.cfg)
  chromium  # tests/ui: the web UI in a real browser, driven by Playwright (never `playwright install`)
  # tests/scanning/test_language_indexers.py: real installs and toolchains for the language indexers
  python3-jinja2 python3-pycparser ruby golang-go binutils  # npm: the machine's Node.js has it (below)
  liblog4j2-java libcommons-io-java libmongodb-java libaopalliance-java libguice-java unzip
  mmdebstrap qemu-utils e2fsprogs  # tests/scanning: a Debian rootfs; a real Alpine disk unpacked (qemu-img, debugfs)
  libmaven3-core-java default-jre-headless  # tests/scanning/test_versions.py: Maven's ComparableVersion (rpm, ruby, go too)
  golang-github-knqyf263-go-rpmdb-dev  # real CentOS 5-8 rpm databases (BerkeleyDB) for tests/scanning/test_rpm.py
  notary  # tests/trust: the notary CLI, and notary-server side by side with dtr's built-in Notary
  rpm)  # rpm -qa / rpmbuild / rpmdb --importdb: the reference reader and sqlite rpmdb writer of tests/scanning/test_rpm.py

scripts/apt-ensure.sh "${APT_PACKAGES[@]}"

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | { grep -v '^WARNING: Location' || true; }

# cargo builds the Rust binary of the language indexers' tests (rustup's, or Debian's if none).
command -v cargo >/dev/null || scripts/apt-ensure.sh cargo

# Azurite (Azure Blob emulator) from npm, project-local.
if [ ! -x .tools/azurite/node_modules/.bin/azurite-blob ]; then
  command -v npm >/dev/null || scripts/apt-ensure.sh npm
  npm install --silent --no-audit --no-fund --prefix .tools/azurite azurite@3 >/dev/null
fi

# axe-core (accessibility rules) from npm, project-local: tests/ui injects it into every page it shoots.
if [ ! -f .tools/axe/node_modules/axe-core/axe.min.js ]; then
  npm install --silent --no-audit --no-fund --prefix .tools/axe axe-core@4.10 >/dev/null
fi
