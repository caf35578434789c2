#!/usr/bin/env bash
# Rebuilds the demo's live state in a real cluster: applies the GitOps tree as it was last
# synced, makes the hand changes the demo is about, and (with --dump) writes live/*.yaml.
#
#   KUBECTL=kubectl KUBECONFIG=... examples/demo/reproduce.sh [--dump]
#
# Needs a cluster you can write to (it replaces the namespaces shop and shop-staging) and,
# for staging, a kubectl or kustomize that renders `replicas:` (RENDER, default `kubectl
# kustomize`; kubectl 1.20's embedded kustomize is too old).
set -euo pipefail
cd "$(dirname "$0")"
KUBECTL=${KUBECTL:-kubectl}
RENDER=${RENDER:-kubectl kustomize}
k() { "$KUBECTL" "$@"; }

k delete namespace shop shop-staging --ignore-not-found --wait=true >/dev/null

# staging: in sync with Git (SKIP_STAGING=1 leaves it out, e.g. without a recent kustomize)
if [ "${SKIP_STAGING:-}" != 1 ]; then
  $RENDER gitops/envs/staging | k apply -f - >/dev/null
fi

# prod as last synced: the rate-limit change in Git (100 -> 200) was never applied
k apply -f gitops/envs/prod/namespace.yaml >/dev/null
for f in gitops/envs/prod/web.yaml gitops/envs/prod/worker.yaml; do k apply -f "$f" >/dev/null; done
sed 's/RATE_LIMIT: "200"/RATE_LIMIT: "100"/' gitops/envs/prod/api.yaml | k apply -f - >/dev/null

# what happened by hand in prod
sleep 1
k -n shop scale deployment web --replicas=5                                   # a scale
k -n shop set image deployment/api api=ghcr.io/example/shop-api:1.4.3-hotfix  # an image hotfix
k -n shop patch configmap web-config --type merge -p '{"data":{"LOG_LEVEL":"debug"}}'  # a patched ConfigMap
k -n shop label deployment worker debug=true                                  # an added label
k -n shop delete configmap worker-config                                      # a missing object
k -n shop create configmap debug-snapshot --from-literal=note=temporary       # an orphan

if [ "${1:-}" = "--dump" ]; then
  dump() { # namespace file
    { k get namespace "$1" -o yaml; echo '---'; k -n "$1" get deployments,services,configmaps,secrets -o yaml; } |
      python3 -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
items = []
for d in docs:
    for o in (d.get("items") or [d]) if d.get("kind") == "List" else [d]:
        # service-account tokens are credentials of the cluster: never part of the demo
        if o.get("kind") == "Secret" and o.get("type") == "kubernetes.io/service-account-token":
            continue
        items.append(o)
print("# kubectl get namespace/%s deployments,services,configmaps,secrets -n %s -o yaml" % (sys.argv[1], sys.argv[1]))
print("# (Kubernetes v1.20; service-account token Secrets left out)")
yaml.safe_dump({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}, sys.stdout, default_flow_style=False, sort_keys=True)
' "$1" > "$2"
  }
  dump shop live/prod.yaml
  dump shop-staging live/staging.yaml
  echo "wrote live/prod.yaml live/staging.yaml"
fi
