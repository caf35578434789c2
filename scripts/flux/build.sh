#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller from the Go module proxy into
# $DRIFTGUARD_CACHE/flux-<version>/bin/ (issue #31: a real controller deploying from the local
# Git server beside DriftGuard). Not part of the test suite yet.
#
# Why these versions: the newest controllers (v1.10.x) declare `go 1.27.0` and need
# dependency versions the module proxy here refuses (github.com/fluxcd/pkg/artifact v0.27.1,
# github.com/fluxcd/pkg/apis/crypto v0.5.0: "403 This module version is not available").
# v1.9.6 of both declares `go 1.26.0` and builds with this machine's Go 1.26 once:
# - the `./api` replace is dropped (the proxy's module zip has no nested `api` module; the
#   published `.../api` module of the same version is used instead), and
# - source-controller's github.com/fluxcd/pkg/artifact v0.18.3 (refused) is replaced by v0.18.0
#   (served).
# Idempotent: built binaries are kept. Prints `export FLUX_SOURCE_CONTROLLER=...` and
# `export FLUX_KUSTOMIZE_CONTROLLER=...` on stdout; logs go to stderr.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/common.sh
. "$HERE/../lib/common.sh"

FLUX_VERSION="${FLUX_VERSION:-v1.9.6}"
DEST="$DRIFTGUARD_CACHE/flux-$FLUX_VERSION"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
command -v go >/dev/null || die "go is needed (Go 1.26)"

build() {
  local name=$1
  shift
  local bin="$DEST/bin/$name"
  if [ -x "$bin" ]; then
    echo "$bin"
    return
  fi
  local dir
  dir="$(go mod download -json "github.com/fluxcd/$name@$FLUX_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -d "$dir" ] || die "github.com/fluxcd/$name@$FLUX_VERSION: not downloaded"
  local work
  work="$(mktemp -d)"
  cp -r "$dir/." "$work/"
  chmod -R u+w "$work"
  (
    cd "$work"
    go mod edit -dropreplace "github.com/fluxcd/$name/api" "$@"
    log "building $name $FLUX_VERSION (a few minutes on 2 cores)"
    mkdir -p "$DEST/bin"
    go build -o "$bin.tmp" . >&2
    mv "$bin.tmp" "$bin"
  )
  rm -rf "$work"
  echo "$bin"
}

SOURCE="$(build source-controller \
  -replace github.com/fluxcd/pkg/artifact=github.com/fluxcd/pkg/artifact@v0.18.0)"
KUSTOMIZE="$(build kustomize-controller)"
echo "export FLUX_SOURCE_CONTROLLER=$SOURCE"
echo "export FLUX_KUSTOMIZE_CONTROLLER=$KUSTOMIZE"
