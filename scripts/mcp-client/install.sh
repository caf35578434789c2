#!/usr/bin/env bash
# Install the official MCP Python SDK (`mcp` on PyPI) in a venv under $DRIFTGUARD_CACHE: the
# real MCP client the MCP tests drive DriftGuard's server with (over stdio and over HTTP).
# Idempotent: a venv that already has the pinned version is kept. Prints
# `MCP_PYTHON=<venv python>` on stdout.
set -euo pipefail
# shellcheck source=../lib/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib/common.sh"

MCP_VERSION="${MCP_VERSION:-2.3.0}"
VENV="$DRIFTGUARD_CACHE/mcp-venv"
PY="$VENV/bin/python"
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

mkdir -p "$DRIFTGUARD_CACHE"
if ! "$PY" -c 'import importlib.metadata as m,sys; sys.exit(0 if m.version("mcp")==sys.argv[1] else 1)' "$MCP_VERSION" 2>/dev/null; then
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv >/dev/null
  fi
  log "creating venv $VENV with mcp==$MCP_VERSION"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "mcp==$MCP_VERSION"
fi
"$PY" -c 'import mcp.client.session, mcp.client.stdio, mcp.client.streamable_http' \
  || die "the mcp package in $VENV does not import"
echo "MCP_PYTHON=$PY"
