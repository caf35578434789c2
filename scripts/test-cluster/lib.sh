# shellcheck shell=bash disable=SC2034
# Shared by test-cluster/start.sh and restart-apiserver.sh (sourced, not run).
# shellcheck source=../lib/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib/common.sh"

# The Kubernetes versions the tests run on (each has a module in k8s/v<version>/, made by
# k8s/new-version.sh): every suite on the newest, the live-source, conformance and acceptance
# suites also on the older one (scripts/test.sh). 1.20.2 still starts by hand (Debian's build).
KUBE_VERSION_NEWEST=1.37.2
KUBE_VERSION_OLDER=1.35.4
KUBE_VERSION="${KUBE_VERSION:-$KUBE_VERSION_NEWEST}"
KUBE_VERSION="${KUBE_VERSION#v}"
# etcd for the built versions (module in etcd/): 3.6 is what Kubernetes 1.34 to 1.37 support
ETCD_VERSION=3.6.16
if [ "$KUBE_VERSION" = 1.20.2 ]; then
  K8S_BIN="$DRIFTGUARD_CACHE/k8s-1.20/bin"
  ETCD_BIN=/usr/bin  # Debian's etcd-server 3.4
else
  K8S_BIN="$DRIFTGUARD_CACHE/k8s-$KUBE_VERSION/bin"
  ETCD_BIN="$DRIFTGUARD_CACHE/etcd-$ETCD_VERSION/bin"
fi
CLUSTER_DIR="$DRIFTGUARD_RUN/cluster"
PKI="$CLUSTER_DIR/pki"
KUBECONFIG_FILE="$DRIFTGUARD_RUN/kubeconfig"
APISERVER_CMD="$DRIFTGUARD_RUN/apiserver.cmd"
APISERVER_LOG="$CLUSTER_DIR/kube-apiserver.log"

# Start kube-apiserver from the saved command line ($APISERVER_CMD), in the background.
launch_apiserver() {
  [ -s "$APISERVER_CMD" ] || die "$APISERVER_CMD missing: run start.sh first"
  local cmd
  cmd="$(cat "$APISERVER_CMD")"
  # setsid: own session, so it survives the calling shell and its job control.
  setsid bash -c "exec $cmd" </dev/null >>"$APISERVER_LOG" 2>&1 &
  echo $! >"$DRIFTGUARD_RUN/kube-apiserver.pid"
}

# apiserver_ready URL TOKEN -> 0 when /readyz answers "ok"
apiserver_ready() {
  [ "$(curl -s --max-time 3 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $2" "$1/readyz" 2>/dev/null)" = "ok" ]
}

# wait_apiserver URL TOKEN: wait (DRIFTGUARD_START_TIMEOUT, default 60 s) for /readyz,
# or print the log and return 1.
wait_apiserver() {
  local url="$1" token="$2" deadline
  deadline=$(( $(date +%s) + ${DRIFTGUARD_START_TIMEOUT:-60} ))
  until apiserver_ready "$url" "$token"; do
    if ! pid_alive "$DRIFTGUARD_RUN/kube-apiserver.pid" || [ "$(date +%s)" -ge "$deadline" ]; then
      log "kube-apiserver did not become ready; last log lines:"
      tail -n 60 "$APISERVER_LOG" >&2 || true
      log "readyz: $(curl -s --max-time 3 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $token" "$url/readyz?verbose" 2>&1 | grep -v '\[+\]' | tail -n 20)"
      return 1
    fi
    sleep 0.5
  done
}
