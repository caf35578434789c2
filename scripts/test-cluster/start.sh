#!/usr/bin/env bash
# Start a throw-away Kubernetes control plane on 127.0.0.1, of version $KUBE_VERSION (default
# the newest the tests run on, see lib.sh; 1.35.4 the older one, 1.20.2 by hand):
# etcd + kube-apiserver + kube-controller-manager (no nodes, no scheduler).
# The API server audits with deploy/audit/audit-policy.yaml into a log file
# ($AUDIT_LOG) and a batch webhook posting to
# http://127.0.0.1:$AUDIT_WEBHOOK_PORT/api/v1/environments/audit/audit with $AUDIT_TOKEN
# (nothing listens there but the audit test's driftguard serve). Token users alice and bob
# (group dev) make hand changes in tests.
# Writes $DRIFTGUARD_RUN/kubeconfig, $DRIFTGUARD_RUN/env, $DRIFTGUARD_RUN/*.pid,
# $DRIFTGUARD_RUN/apiserver.cmd; prints `export KUBECONFIG=...` lines.
# Idempotent: if a cluster of that version already runs and is ready, it just re-prints the env;
# one of another version is stopped first.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

ENV_FILE="$DRIFTGUARD_RUN/env"
INFO_FILE="$DRIFTGUARD_RUN/cluster.info"
KUBECTL="$K8S_BIN/kubectl"

print_env() {
  echo "export KUBECONFIG=$KUBECONFIG_FILE"
  echo "export KUBECTL=$KUBECTL"
}

# ---- binaries (cached after the first build) and run-time packages
"$HERE/build.sh"

mkdir -p "$DRIFTGUARD_RUN"

# ---- already running?
if [ -s "$INFO_FILE" ] && grep -qx "KUBE_VERSION=$KUBE_VERSION" "$INFO_FILE" && pid_alive "$DRIFTGUARD_RUN/etcd.pid" \
   && pid_alive "$DRIFTGUARD_RUN/kube-apiserver.pid" \
   && pid_alive "$DRIFTGUARD_RUN/kube-controller-manager.pid"; then
  # shellcheck disable=SC1090
  . "$INFO_FILE"
  if apiserver_ready "$APISERVER_URL" "$ADMIN_TOKEN"; then
    log "cluster (Kubernetes $KUBE_VERSION) already running at $APISERVER_URL"
    print_env
    exit 0
  fi
fi
# Partial/stale state: clean up before starting fresh.
"$HERE/stop.sh" >/dev/null 2>&1 || true

mkdir -p "$CLUSTER_DIR" "$PKI"
chmod 700 "$CLUSTER_DIR"

# ---- ports
ETCD_PORT="$(free_port)"
ETCD_PEER_PORT="$(free_port "$ETCD_PORT")"
API_PORT="$(free_port "$ETCD_PORT" "$ETCD_PEER_PORT")"
KCM_PORT="$(free_port "$ETCD_PORT" "$ETCD_PEER_PORT" "$API_PORT")"
# fixed for the run: the audit webhook's target (driftguard serve listens there in the test)
AUDIT_WEBHOOK_PORT="$(free_port "$ETCD_PORT" "$ETCD_PEER_PORT" "$API_PORT" "$KCM_PORT")"
APISERVER_URL="https://127.0.0.1:$API_PORT"

# ---- PKI: CA, apiserver serving cert, service-account key pair, admin token
log "generating certificates in $PKI"
(
  cd "$PKI"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.crt \
    -subj "/CN=driftguard-test-ca" >/dev/null 2>&1
  cat >apiserver.ext <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EXT
  openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
    -subj "/CN=kube-apiserver" >/dev/null 2>&1
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -days 3650 -extfile apiserver.ext -out apiserver.crt >/dev/null 2>&1
  openssl genrsa -out sa.key 2048 >/dev/null 2>&1
  openssl rsa -in sa.key -pubout -out sa.pub >/dev/null 2>&1
)
ADMIN_TOKEN="$(openssl rand -hex 24)"
ALICE_TOKEN="$(openssl rand -hex 24)"
BOB_TOKEN="$(openssl rand -hex 24)"
AUDIT_TOKEN="$(openssl rand -hex 24)"
# token,user,uid,"group1,group2"
{
  echo "$ADMIN_TOKEN,admin,admin,\"system:masters\""
  echo "$ALICE_TOKEN,alice,alice,\"dev\""
  echo "$BOB_TOKEN,bob,bob,\"dev\""
} >"$PKI/tokens.csv"
chmod 600 "$PKI"/*.key "$PKI/tokens.csv"

# ---- audit: the documented policy, a log file, a batch webhook to driftguard serve
AUDIT_DIR="$CLUSTER_DIR/audit"
AUDIT_LOG="$AUDIT_DIR/audit.log"
AUDIT_POLICY="$(cd "$HERE/../.." && pwd)/deploy/audit/audit-policy.yaml"
AUDIT_WEBHOOK_CONFIG="$AUDIT_DIR/webhook.kubeconfig"
mkdir -p "$AUDIT_DIR"
cat >"$AUDIT_WEBHOOK_CONFIG" <<KC
apiVersion: v1
kind: Config
clusters:
- name: driftguard
  cluster:
    # plain HTTP: the webhook client sends a kubeconfig token only over HTTPS, but the URL's
    # user info as Basic credentials (driftguard takes the token as their password)
    server: http://driftguard:$AUDIT_TOKEN@127.0.0.1:$AUDIT_WEBHOOK_PORT/api/v1/environments/audit/audit
users:
- name: kube-apiserver
  user: {}
contexts:
- name: driftguard
  context:
    cluster: driftguard
    user: kube-apiserver
current-context: driftguard
KC
chmod 600 "$AUDIT_WEBHOOK_CONFIG"

cat >"$INFO_FILE" <<INFO
APISERVER_URL=$APISERVER_URL
ADMIN_TOKEN=$ADMIN_TOKEN
ETCD_URL=http://127.0.0.1:$ETCD_PORT
KUBE_VERSION=$KUBE_VERSION
INFO

# ---- etcd
log "starting etcd ($("$ETCD_BIN/etcd" --version | head -n1)) on 127.0.0.1:$ETCD_PORT"
setsid "$ETCD_BIN/etcd" --name driftguard --data-dir "$CLUSTER_DIR/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "driftguard=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state new \
  --logger=zap --log-level=warn \
  </dev/null >"$CLUSTER_DIR/etcd.log" 2>&1 &
echo $! >"$DRIFTGUARD_RUN/etcd.pid"

deadline=$(( $(date +%s) + ${DRIFTGUARD_START_TIMEOUT:-60} ))
until curl -s --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; do
  if ! pid_alive "$DRIFTGUARD_RUN/etcd.pid" || [ "$(date +%s)" -ge "$deadline" ]; then
    log "etcd failed to start; log follows:"; cat "$CLUSTER_DIR/etcd.log" >&2 || true
    "$HERE/stop.sh" >/dev/null 2>&1 || true
    exit 1
  fi
  sleep 0.3
done

# ---- kube-apiserver (command line saved for restart-apiserver.sh)
APISERVER_ARGS=(
  "$K8S_BIN/kube-apiserver"
  --etcd-servers="http://127.0.0.1:$ETCD_PORT"
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1
  --secure-port="$API_PORT"
  --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key"
  --client-ca-file="$PKI/ca.crt"
  --token-auth-file="$PKI/tokens.csv"
  --authorization-mode=RBAC
  --service-account-key-file="$PKI/sa.pub"
  --service-account-signing-key-file="$PKI/sa.key"
  --service-account-issuer=https://kubernetes.default.svc.cluster.local
  --service-cluster-ip-range=10.0.0.0/24
  --disable-admission-plugins=ServiceAccount
  --endpoint-reconciler-type=none
  --allow-privileged=true
  --profiling=false
  --audit-policy-file="$AUDIT_POLICY"
  --audit-log-path="$AUDIT_LOG" --audit-log-format=json
  --audit-log-maxsize=100 --audit-log-maxbackup=2
  --audit-webhook-config-file="$AUDIT_WEBHOOK_CONFIG"
  --audit-webhook-mode=batch
  --audit-webhook-batch-max-wait=1s
  --audit-webhook-initial-backoff=500ms
  --v=1
)
# flags that 1.24 removed; 1.20 needs them to keep its insecure port closed
if [ "$KUBE_VERSION" = 1.20.2 ]; then APISERVER_ARGS+=(--insecure-port=0); KCM_OLD_ARGS=(--port=0)
else KCM_OLD_ARGS=(); fi
printf '%q ' "${APISERVER_ARGS[@]}" >"$APISERVER_CMD"
echo >>"$APISERVER_CMD"
: >"$APISERVER_LOG"
log "starting kube-apiserver $KUBE_VERSION on $APISERVER_URL"
launch_apiserver

# ---- kubeconfigs (admin for users/tests; the controller-manager uses the same token)
CA_DATA="$(base64 -w0 <"$PKI/ca.crt")"
write_kubeconfig() {
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: driftguard-test
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $CA_DATA
users:
- name: admin
  user:
    token: $ADMIN_TOKEN
contexts:
- name: driftguard-test
  context:
    cluster: driftguard-test
    user: admin
current-context: driftguard-test
KC
  chmod 600 "$1"
}
write_kubeconfig "$KUBECONFIG_FILE"
write_kubeconfig "$CLUSTER_DIR/controller-manager.kubeconfig"

if ! wait_apiserver "$APISERVER_URL" "$ADMIN_TOKEN"; then
  log "etcd log tail:"; tail -n 20 "$CLUSTER_DIR/etcd.log" >&2 || true
  "$HERE/stop.sh" >/dev/null 2>&1 || true
  exit 1
fi

# ---- kube-controller-manager (ReplicaSets, namespace deletion, SA tokens, GC, ...)
# Its client's default rate (20 requests a second) takes half an hour to give the fleet
# benchmark's 33,000 Deployments their ReplicaSets; the API server here is local and idle.
log "starting kube-controller-manager"
setsid "$K8S_BIN/kube-controller-manager" \
  --kubeconfig="$CLUSTER_DIR/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$CLUSTER_DIR/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$CLUSTER_DIR/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" ${KCM_OLD_ARGS[@]+"${KCM_OLD_ARGS[@]}"} \
  --leader-elect=false \
  --horizontal-pod-autoscaler-sync-period=2s \
  --controllers='*' \
  --kube-api-qps=300 --kube-api-burst=600 \
  --concurrent-deployment-syncs=10 --concurrent-replicaset-syncs=10 \
  --service-account-private-key-file="$PKI/sa.key" \
  --root-ca-file="$PKI/ca.crt" \
  --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
  --service-cluster-ip-range=10.0.0.0/24 \
  --use-service-account-credentials=false \
  --v=1 \
  </dev/null >"$CLUSTER_DIR/kube-controller-manager.log" 2>&1 &
echo $! >"$DRIFTGUARD_RUN/kube-controller-manager.pid"

deadline=$(( $(date +%s) + ${DRIFTGUARD_START_TIMEOUT:-60} ))
until [ "$(curl -sk --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz" 2>/dev/null)" = "ok" ]; do
  if ! pid_alive "$DRIFTGUARD_RUN/kube-controller-manager.pid" || [ "$(date +%s)" -ge "$deadline" ]; then
    log "kube-controller-manager failed to start; log tail:"
    tail -n 60 "$CLUSTER_DIR/kube-controller-manager.log" >&2 || true
    "$HERE/stop.sh" >/dev/null 2>&1 || true
    exit 1
  fi
  sleep 0.5
done

# Wait for the "default" service account (created by the controller-manager), so
# tests that create pods/serviceaccount tokens do not race it.
for _ in $(seq 1 60); do
  "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get serviceaccount default -n default >/dev/null 2>&1 && break
  sleep 0.5
done

cat >"$ENV_FILE" <<ENV
KUBECONFIG=$KUBECONFIG_FILE
KUBECTL=$KUBECTL
APISERVER_URL=$APISERVER_URL
AUDIT_WEBHOOK_PORT=$AUDIT_WEBHOOK_PORT
AUDIT_TOKEN=$AUDIT_TOKEN
AUDIT_LOG=$AUDIT_LOG
ALICE_TOKEN=$ALICE_TOKEN
BOB_TOKEN=$BOB_TOKEN
ENV
chmod 600 "$ENV_FILE"
log "cluster ready: Kubernetes $KUBE_VERSION at $APISERVER_URL (logs in $CLUSTER_DIR)"
print_env
