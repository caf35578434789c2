#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller from the Go module proxy into
# $DRIFTGUARD_CACHE/flux-<version>/bin/ (issue #31: the real controllers deploying from a local
# Git server beside DriftGuard, driftguard-cli/tests/flux_controllers.rs). `test-services.sh up`
# runs it and puts its exports into services.env.
#
# Why these versions: the newest controllers (v1.10.x) declare `go 1.27.0` and need
# dependency versions the module proxy here refuses (github.com/fluxcd/pkg/artifact v0.27.1,
# github.com/fluxcd/pkg/apis/crypto v0.5.0: "403 This module version is not available").
# v1.9.6 of both declares `go 1.26.0` and builds with this machine's Go 1.26 once:
# - the `./api` replace is dropped (the proxy's module zip has no nested `api` module; the
#   published `.../api` module of the same version is used instead), and
# - source-controller's github.com/fluxcd/pkg/artifact v0.18.3 (refused) is replaced by v0.18.0
#   (served).
# The controllers' CRDs (each module's config/crd/bases, the version of the binaries) are copied
# into $DRIFTGUARD_CACHE/flux-<version>/crds/: source-controller watches GitRepository,
# HelmRepository, HelmChart, Bucket and OCIRepository from its start and does not run without
# their CRDs, and only GitRepository and Kustomization are vendored (examples/discovery/crds,
# the v1.10.1 schemas DriftGuard reads, a superset of v1.9.6's); the test applies the others
# from here, so they always match the binaries.
# Idempotent: built binaries are kept (the CRDs are copied again, from the module cache).
# Prints `export FLUX_SOURCE_CONTROLLER=...`, `export FLUX_KUSTOMIZE_CONTROLLER=...` and
# `export FLUX_CRDS=...` on stdout; logs go to stderr.
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
  local dir
  dir="$(go mod download -json "github.com/fluxcd/$name@$FLUX_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -d "$dir" ] || die "github.com/fluxcd/$name@$FLUX_VERSION: not downloaded"
  mkdir -p "$DEST/crds"
  # the module cache is read-only: copies that can be replaced on the next run
  install -m 0644 "$dir"/config/crd/bases/*.yaml "$DEST/crds/"
  if [ -x "$bin" ]; then
    echo "$bin"
    return
  fi
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
echo "export FLUX_CRDS=$DEST/crds"
