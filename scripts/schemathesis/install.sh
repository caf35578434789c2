#!/usr/bin/env bash
# Install Schemathesis (PyPI) in a venv under $DRIFTGUARD_CACHE: the API contract test drives a
# running `driftguard serve` from its own OpenAPI document with it. Idempotent: a venv that
# already has the pinned version is kept. Prints `SCHEMATHESIS=<path to st>` on stdout.
set -euo pipefail
# shellcheck source=../lib/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib/common.sh"

ST_VERSION="${ST_VERSION:-4.32.5}"
VENV="$DRIFTGUARD_CACHE/schemathesis-venv"
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

mkdir -p "$DRIFTGUARD_CACHE"
if ! "$VENV/bin/python" -c 'import importlib.metadata as m,sys; sys.exit(0 if m.version("schemathesis")==sys.argv[1] else 1)' "$ST_VERSION" 2>/dev/null; then
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv >/dev/null
  fi
  log "creating venv $VENV with schemathesis==$ST_VERSION"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$ST_VERSION"
fi
"$VENV/bin/st" --version >/dev/null || die "schemathesis in $VENV does not run"
echo "SCHEMATHESIS=$VENV/bin/st"
