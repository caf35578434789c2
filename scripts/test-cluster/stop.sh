#!/usr/bin/env bash
# Stop the test cluster started by start.sh (controller-manager, apiserver, etcd)
# and remove its data. Safe to run when nothing is running.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

stop_pidfile "$DRIFTGUARD_RUN/kube-controller-manager.pid" kube-controller-manager 5
stop_pidfile "$DRIFTGUARD_RUN/kube-apiserver.pid" kube-apiserver 5  # may hang on open watches
stop_pidfile "$DRIFTGUARD_RUN/etcd.pid" etcd
rm -rf "$CLUSTER_DIR" "$KUBECONFIG_FILE" "$APISERVER_CMD" \
  "$DRIFTGUARD_RUN/env" "$DRIFTGUARD_RUN/cluster.info"
