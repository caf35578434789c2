#!/usr/bin/env bash
# DriftGuard against its peers, in one run (issue #32): writes docs/comparison.md.
#
#   KUBE_VERSION=1.37.2 scripts/test-services.sh up    # the test cluster and helm
#   benches/peers/run.sh [SIZES]                       # default 500,5000,20000
#
# 1. builds the peers (benches/peers/build.sh: Argo CD's gitops-engine and Flux's ssa, Go, from
#    the module proxy) and DriftGuard's release binary and peers_bench;
# 2. accuracy: the real-world test (driftguard-cli/tests/real_world.rs) installs the real-world
#    corpus the ways teams do, scans it, makes its 50+ hand changes and scans again; with
#    DRIFTGUARD_PEERS set it runs every peer engine and kubectl diff on the same desired
#    objects after install and after the changes and writes real-world.md;
# 3. speed and memory: peers_bench runs one full live scan by every engine at each size;
# 4. docs/comparison.md: both, with the versions and the machine.
#
# Not part of the test suite (heavy; it builds Kubernetes' Go libraries twice).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
sizes=${1:-500,5000,20000}
cache=${DRIFTGUARD_CACHE:-$HOME/.cache/driftguard}
out=${PEERS_OUT:-$root/target/peers}
rm -rf "$out" && mkdir -p "$out"

benches/peers/build.sh >&2
export DRIFTGUARD_PEERS=$cache/peers/bin
cargo build --release -p driftguard-cli -p driftguard-benches --bin driftguard --bin peers_bench >&2

echo "== accuracy: the real-world corpus" >&2
DRIFTGUARD_PEERS_OUT=$out cargo test -p driftguard-cli --test real_world -- --include-ignored --nocapture \
  > "$out/real-world.log" 2>&1 || {
  # the test's own ratchet may fail on a changed outcome; the comparison is written before it
  echo "the real-world test failed (see $out/real-world.log); the comparison may still be there" >&2
}
test -s "$out/real-world.md" || { echo "no $out/real-world.md: see $out/real-world.log" >&2; exit 1; }

echo "== speed and memory: $sizes objects" >&2
target/release/peers_bench "$sizes" > "$out/speed.md" 2> "$out/speed.log"

. /tmp/driftguard-test/services.env 2>/dev/null || true
{
  echo "# DriftGuard and its peers, on the same objects"
  echo
  echo "Written by \`benches/peers/run.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $(uname -m), commit $(git rev-parse --short HEAD)); every figure below is from that one run."
  echo "The peers are the diff engines a team would use instead, run as their controllers call them"
  echo "(\`benches/peers/README.md\` says how each mode reproduces its controller, and what differs):"
  echo
  echo "- **argocd-legacy**, **argocd-structured**, **argocd-server-side**: Argo CD's gitops-engine \`pkg/diff\` (three-way, structured-merge and server-side diff), with Argo CD v3.2.12's normalizers;"
  echo "- **flux-ssa**: Flux's \`fluxcd/pkg/ssa\` server-side-apply dry run, as kustomize-controller detects drift;"
  echo "- **kubectl-client**, **kubectl-server**: \`kubectl diff\` and \`kubectl diff --server-side\`."
  echo
  echo "Versions: $(grep -h -E 'gitops-engine |fluxcd/pkg/ssa |argo-cd/v3 ' benches/peers/*/go.mod | grep -v '^module' | sed 's/^[[:space:]]*//' | sort -u | paste -sd ';' | sed 's/;/; /g'); kubectl $(${KUBECTL:-kubectl} version --client -o json 2>/dev/null | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | head -1)."
  echo
  cat "$out/real-world.md"
  echo
  cat "$out/speed.md"
} > docs/comparison.md
echo "wrote docs/comparison.md" >&2
