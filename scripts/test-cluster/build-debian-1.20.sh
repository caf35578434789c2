#!/usr/bin/env bash
# KUBE_VERSION=1.20.2 only (build.sh runs it): build (or reuse cached) kube-apiserver +
# kube-controller-manager v1.20.2 from Debian bookworm's kubernetes source package, and install
# the run-time packages (etcd 3.4, openssl, kubectl, ...). Idempotent: a second run only checks
# things. Not part of scripts/test.sh any more; kept for comparing with a 1.20 server by hand.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
CACHE="${DRIFTGUARD_CACHE:-$HOME/.cache/driftguard}"
K8S_DIR="$CACHE/k8s-1.20"
BIN_DIR="$K8S_DIR/bin"
GO_BIN=/usr/lib/go-1.19/bin
RUNTIME_PKGS=(etcd-server etcd-client rsync openssl curl bc python3 python3-venv)
BUILD_PKGS=(golang-1.19-go golang-github-modern-go-reflect2-dev make dpkg-dev)

log() { echo "[build-debian-1.20.sh] $*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

apt_updated=0
apt_update() {
  if [ "$apt_updated" = 0 ]; then
    log "apt-get update"
    $SUDO apt-get update -qq
    apt_updated=1
  fi
}

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

ensure_pkgs() {
  local missing=()
  local p
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    apt_update
    log "installing: ${missing[*]}"
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Add a deb-src index for bookworm main (same mirror the machine uses).
ensure_deb_src() {
  if grep -rqsE '^\s*(Types:.*deb-src|deb-src\s)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
     && apt-cache showsrc kubernetes >/dev/null 2>&1 && [ -n "$(apt-cache showsrc kubernetes 2>/dev/null)" ]; then
    return 0
  fi
  local mirror
  mirror="$(grep -rhoE '^\s*URIs:\s*\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | grep -i debian | head -n1 || true)"
  if [ -z "$mirror" ]; then
    mirror="$(grep -rhE '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | grep -E 'bookworm(\s|$)' | sed -E 's/^\s*deb\s+(\[[^]]*\]\s+)?(\S+).*/\2/' | head -n1 || true)"
  fi
  mirror="${mirror:-http://deb.debian.org/debian}"
  log "adding deb-src for $mirror bookworm main"
  $SUDO tee /etc/apt/sources.list.d/driftguard-src.sources >/dev/null <<SRC
Types: deb-src
URIs: $mirror
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt_updated=0
  apt_update
}

# kubectl: Debian bookworm ships a matching v1.20.2 kubectl in kubernetes-client.
# We extract it into $BIN_DIR (not dpkg-installed: /usr/bin/kubectl may belong to
# another package, e.g. a cloud SDK). If that fails, kubectl is built from source.
KUBECTL_FROM_APT=1
ensure_kubectl() {
  if [ -x "$BIN_DIR/kubectl" ] && "$BIN_DIR/kubectl" version --client >/dev/null 2>&1; then return 0; fi
  mkdir -p "$BIN_DIR"
  local tmp
  tmp="$(mktemp -d)"
  apt_update
  if (cd "$tmp" && apt-get download -qq kubernetes-client >/dev/null 2>&1 \
        && dpkg-deb -x kubernetes-client_*.deb x && [ -x x/usr/bin/kubectl ]); then
    install -m 0755 "$tmp/x/usr/bin/kubectl" "$BIN_DIR/kubectl"
    log "kubectl $("$BIN_DIR/kubectl" version --client --short 2>/dev/null || true) from Debian kubernetes-client"
  else
    log "kubernetes-client .deb not available; kubectl will be built from source"
    KUBECTL_FROM_APT=0
  fi
  rm -rf "$tmp"
}

bins_ok() {
  local b
  for b in "$@"; do
    [ -x "$BIN_DIR/$b" ] || return 1
    if [ "$b" = kubectl ]; then
      "$BIN_DIR/$b" version --client >/dev/null 2>&1 || return 1
    else
      "$BIN_DIR/$b" --version >/dev/null 2>&1 || return 1
    fi
  done
}

ensure_pkgs "${RUNTIME_PKGS[@]}"
ensure_kubectl

WANT=(kube-apiserver kube-controller-manager kubectl)

if bins_ok "${WANT[@]}"; then
  log "cached binaries OK in $BIN_DIR"
  exit 0
fi

ensure_pkgs "${BUILD_PKGS[@]}"
ensure_deb_src

SRC_ROOT="$K8S_DIR/src"
rm -rf "$SRC_ROOT"
mkdir -p "$SRC_ROOT" "$BIN_DIR"
cd "$SRC_ROOT"
log "downloading kubernetes source package"
apt-get source --download-only -qq kubernetes >/dev/null
ORIG="$(ls kubernetes_*.orig.tar.* | head -n1)"
log "unpacking $ORIG"
mkdir tree
tar -xf "$ORIG" -C tree --strip-components=1
cd tree
[ -d vendor/github.com/modern-go/reflect2 ] || { log "unexpected source layout"; exit 1; }

log "replacing vendored reflect2 with Debian's copy (Go >= 1.18 safe)"
rm -rf vendor/github.com/modern-go/reflect2
cp -a /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2
rm -f vendor/github.com/modern-go/reflect2/go.mod

WHAT="cmd/kube-apiserver cmd/kube-controller-manager"
[ "$KUBECTL_FROM_APT" = 1 ] || WHAT="$WHAT cmd/kubectl"
log "make WHAT=\"$WHAT\" (takes several minutes)"
start=$(date +%s)
PATH="$GO_BIN:$PATH" CGO_ENABLED=0 GOPROXY=off GOCACHE="$K8S_DIR/gocache" \
  make WHAT="$WHAT"
log "make finished in $(( $(date +%s) - start ))s"

for b in kube-apiserver kube-controller-manager $([ "$KUBECTL_FROM_APT" = 1 ] || echo kubectl); do
  install -m 0755 "_output/bin/$b" "$BIN_DIR/$b"
done
cd /
rm -rf "$SRC_ROOT" "$K8S_DIR/gocache"
bins_ok "${WANT[@]}"
log "built: $("$BIN_DIR/kube-apiserver" --version) -> $BIN_DIR"
