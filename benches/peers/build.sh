#!/usr/bin/env bash
# Builds the peer diff drivers into ${DRIFTGUARD_CACHE:-$HOME/.cache/driftguard}/peers/bin/:
#   peers-argocd  (modes argocd-legacy, argocd-structured, argocd-server-side)
#   peers-flux    (mode flux-ssa)
#   peers         (a wrapper: `peers --mode MODE ...` runs the binary that has MODE)
# Two Go modules because Argo CD pins k8s.io/* v0.34.0 and fluxcd/pkg/ssa v0.78.0 needs v0.37.0.
# Versions are pinned by argocd/go.mod+go.sum and flux/go.mod+go.sum (-mod=readonly: a build never
# changes them). Idempotent: go's build cache makes a rebuild of unchanged sources cheap.
# Prints the binary paths.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="${DRIFTGUARD_CACHE:-$HOME/.cache/driftguard}/peers/bin"
mkdir -p "$BIN"
export GOFLAGS="-mod=readonly -buildvcs=false"
for m in argocd flux; do
  (cd "$HERE/$m" && nice -n 10 go build -trimpath -o "$BIN/peers-$m.tmp" . && mv -f "$BIN/peers-$m.tmp" "$BIN/peers-$m")
done
cat > "$BIN/peers.tmp" <<'WRAP'
#!/usr/bin/env bash
# Dispatches `peers --mode MODE ...` to peers-argocd or peers-flux (written by benches/peers/build.sh).
set -euo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mode=""
prev=""
for a in "$@"; do
  case "$prev" in --mode) mode="$a" ;; esac
  case "$a" in --mode=*) mode="${a#--mode=}" ;; esac
  prev="$a"
done
case "$mode" in
  argocd-*) exec "$DIR/peers-argocd" "$@" ;;
  flux-*) exec "$DIR/peers-flux" "$@" ;;
  *) echo "usage: peers --mode (argocd-legacy|argocd-structured|argocd-server-side|flux-ssa) --desired PATH [--desired PATH ...] (--live-dump FILE | --kubeconfig FILE) [--out FILE]" >&2; exit 2 ;;
esac
WRAP
chmod +x "$BIN/peers.tmp" && mv -f "$BIN/peers.tmp" "$BIN/peers"
echo "$BIN/peers"
echo "$BIN/peers-argocd"
echo "$BIN/peers-flux"
