#!/usr/bin/env bash
# Install moto's server (the AWS API on 127.0.0.1, for the Terraform tests) and boto3 (the
# tests' "hand in the console") into a venv under $DRIFTGUARD_CACHE. Idempotent: a venv with
# the pinned version is kept. Prints `export MOTO_VENV=...`. Tests start servers of their
# own from it (test-support's MotoServer), one per test, on free ports.
set -euo pipefail
# shellcheck source=../lib/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib/common.sh"

MOTO_VERSION="${MOTO_VERSION:-5.2.5}"
VENV="$DRIFTGUARD_CACHE/moto-venv"
PY="$VENV/bin/python"
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

mkdir -p "$DRIFTGUARD_CACHE"
if ! "$PY" -c 'import importlib.metadata as m,sys; sys.exit(0 if m.version("moto")==sys.argv[1] else 1)' "$MOTO_VERSION" 2>/dev/null \
   || ! "$PY" -c 'import boto3, flask' 2>/dev/null \
   || [ ! -x "$VENV/bin/moto_server" ]; then
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv >/dev/null
  fi
  log "creating venv $VENV with moto[server]==$MOTO_VERSION"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "moto[server]==$MOTO_VERSION"
fi
"$PY" -c 'import boto3, moto' || die "the moto venv $VENV does not import boto3 and moto"
echo "export MOTO_VENV=$VENV"
