#!/usr/bin/env bash
# Writes ssa/manifests.yaml and csa/manifests.yaml from template.yaml (namespaces peers-ssa, peers-csa).
set -euo pipefail
cd "$(dirname "$0")"
for m in ssa csa; do
  mkdir -p "$m"
  sed "s/NS/peers-$m/g" template.yaml > "$m/manifests.yaml"
done
