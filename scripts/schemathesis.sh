#!/usr/bin/env bash
# Installs schemathesis (PyPI, the pinned version below) into a project-local virtual
# environment, .data/venv, when it is missing or another version; the suite's `schemathesis::`
# tests run it from there against the APIs' OpenAPI documents.
set -euo pipefail
cd "$(dirname "$0")/.."
version="4.32.5"
venv=.data/venv
if [ -x "$venv/bin/schemathesis" ] && "$venv/bin/schemathesis" --version 2>/dev/null | grep -q " $version\$"; then
  exit 0
fi
if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
  echo "[schemathesis] installing python3-venv"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
echo "[schemathesis] installing schemathesis $version into $venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
