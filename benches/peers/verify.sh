#!/usr/bin/env bash
# Ground-truth run of the peer engines on a test cluster (needs KUBECONFIG and KUBECTL, e.g. from
# scripts/test-cluster/start.sh). For each apply method (ssa: kubectl apply --server-side;
# csa: client-side kubectl apply, which writes last-applied-configuration) and each hand change
# (none = right after apply), it applies testdata/template.yaml into a fresh namespace
# peers-<method>-<change>, makes that one change, and runs every mode; reports land in $OUT
# (default /tmp/peers-verify) and summarize.py prints the mode x change table.
# Usage: verify.sh [PEERS_BIN_DIR]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="${1:-${DRIFTGUARD_CACHE:-$HOME/.cache/driftguard}/peers/bin}"
OUT="${OUT:-/tmp/peers-verify}"
K="${KUBECTL:-kubectl}"
: "${KUBECONFIG:?set KUBECONFIG}"
MODES="argocd-legacy argocd-structured argocd-server-side flux-ssa"
CHANGES="none scale image label env cmkey unannotate delsvc"
mkdir -p "$OUT"
for method in ssa csa; do
  for change in $CHANGES; do
    ns="peers-$method-$change"
    sed "s/NS/$ns/g" "$HERE/testdata/template.yaml" > "$OUT/$ns.yaml"
    $K delete --ignore-not-found --wait=false -f "$OUT/$ns.yaml" >/dev/null 2>&1 || true
    # a namespace being deleted cannot take new objects: wait until it is gone
    for _ in $(seq 120); do $K get ns "$ns" >/dev/null 2>&1 || break; sleep 1; done
    if [ "$method" = ssa ]; then $K apply --server-side -f "$OUT/$ns.yaml" >/dev/null
    else $K apply -f "$OUT/$ns.yaml" >/dev/null; fi
    sleep 2 # let the deployment controller write its revision annotation and status
    case "$change" in
      none) ;;
      scale) $K -n "$ns" scale deploy/web --replicas=5 ;;
      image) $K -n "$ns" set image deploy/web web=nginx:1.28 ;;
      label) $K -n "$ns" label deploy/web extra=yes ;;
      env) $K -n "$ns" patch deploy/web --type=json \
             -p '[{"op":"add","path":"/spec/template/spec/containers/0/env/-","value":{"name":"DEBUG","value":"1"}}]' ;;
      cmkey) $K -n "$ns" patch configmap/web-config --type=merge -p '{"data":{"EXTRA":"x"}}' ;;
      unannotate) $K -n "$ns" annotate deploy/web team- ;;
      delsvc) $K -n "$ns" delete service/web ;;
    esac >/dev/null
    sleep 1
    for mode in $MODES; do
      "$BIN/peers" --mode "$mode" --desired "$OUT/$ns.yaml" --kubeconfig "$KUBECONFIG" \
        --out "$OUT/$ns.$mode.json" || echo "peers $mode on $ns exited $?" >&2
    done
  done
done
python3 "$HERE/summarize.py" "$OUT"
