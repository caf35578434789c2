#!/usr/bin/env bash
# Build (or reuse cached) the test cluster's programs for KUBE_VERSION (default: the newest,
# KUBE_VERSION_NEWEST in lib.sh) and install the run-time packages (openssl, curl, ...).
#
# kube-apiserver, kube-controller-manager and kubectl come from the k8s.io/kubernetes module
# through a module of ours, k8s/v<KUBE_VERSION>/ (go.mod with the published staging modules as
# replacements, go.sum committed: made by k8s/new-version.sh), built with the machine's Go
# (1.26), CGO_ENABLED=0, into $DRIFTGUARD_CACHE/k8s-<KUBE_VERSION>/bin. etcd comes from
# go.etcd.io/etcd/server/v3 through etcd/ (ETCD_VERSION in lib.sh) into
# $DRIFTGUARD_CACHE/etcd-<ETCD_VERSION>/bin: Debian bookworm's etcd 3.4 is older than what
# current Kubernetes supports. The Go build cache stays in $DRIFTGUARD_CACHE/go-build, so the
# second version's build reuses most of the first one's.
#
# KUBE_VERSION=1.20.2 keeps the old path: build-debian-1.20.sh (Debian's source package and etcd).
# Idempotent: binaries that are there and answer --version with the right version are kept.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

if [ "$KUBE_VERSION" = 1.20.2 ]; then
  exec "$HERE/build-debian-1.20.sh"
fi

export DEBIAN_FRONTEND=noninteractive
RUNTIME_PKGS=(rsync openssl curl bc python3 python3-venv)
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in "${RUNTIME_PKGS[@]}"; do pkg_installed "$p" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

MOD_DIR="$HERE/k8s/v$KUBE_VERSION"
[ -s "$MOD_DIR/go.mod" ] && [ -s "$MOD_DIR/go.sum" ] \
  || die "no module for Kubernetes $KUBE_VERSION in $MOD_DIR (make one: scripts/test-cluster/k8s/new-version.sh $KUBE_VERSION)"

# version_ok BINARY WANT: BINARY is runnable and its --version (kubectl: version --client) names WANT
version_ok() {
  local out
  [ -x "$1" ] || return 1
  case "$(basename "$1")" in
    kubectl) out="$("$1" version --client 2>/dev/null)" || return 1 ;;
    *) out="$("$1" --version 2>/dev/null)" || return 1 ;;
  esac
  grep -qF "$2" <<<"$out"
}

GO="$(command -v go || echo /usr/local/go/bin/go)"
[ -x "$GO" ] || die "no Go toolchain (go on PATH or /usr/local/go/bin/go): the test cluster is built with Go 1.26"
# the machine's own Go, the module's go.sum as is (no update), no VCS stamping; GOPROXY as set up
go_build() {
  env CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" \
    GOCACHE="$DRIFTGUARD_CACHE/go-build" "$GO" build -trimpath "$@"
}

# ---- etcd
if version_ok "$ETCD_BIN/etcd" "etcd Version: $ETCD_VERSION"; then
  log "cached etcd $ETCD_VERSION OK in $ETCD_BIN"
else
  mkdir -p "$ETCD_BIN"
  log "building etcd $ETCD_VERSION (go.etcd.io/etcd/server/v3) into $ETCD_BIN"
  start=$(date +%s)
  (cd "$HERE/etcd" && go_build -ldflags "-s -w" -o "$ETCD_BIN/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$ETCD_BIN/etcd.tmp" "$ETCD_BIN/etcd"
  log "etcd built in $(( $(date +%s) - start ))s"
  version_ok "$ETCD_BIN/etcd" "etcd Version: $ETCD_VERSION" || die "built etcd does not say version $ETCD_VERSION"
fi

# ---- kube-apiserver, kube-controller-manager, kubectl
minor="${KUBE_VERSION#*.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $pkg.gitVersion=v$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags="$ldflags -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
mkdir -p "$K8S_BIN"
for b in kube-apiserver kube-controller-manager kubectl; do
  if version_ok "$K8S_BIN/$b" "v$KUBE_VERSION"; then
    log "cached $b v$KUBE_VERSION OK in $K8S_BIN"
    continue
  fi
  log "building $b v$KUBE_VERSION (k8s.io/kubernetes/cmd/$b; several minutes when the Go cache is cold)"
  start=$(date +%s)
  (cd "$MOD_DIR" && go_build -ldflags "$ldflags" -o "$K8S_BIN/$b.tmp" "k8s.io/kubernetes/cmd/$b")
  mv "$K8S_BIN/$b.tmp" "$K8S_BIN/$b"
  log "$b built in $(( $(date +%s) - start ))s"
  version_ok "$K8S_BIN/$b" "v$KUBE_VERSION" || die "built $b does not say version v$KUBE_VERSION"
done
