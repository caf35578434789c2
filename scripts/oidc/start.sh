#!/usr/bin/env bash
# Start the OpenID provider of the sign-in tests on a free 127.0.0.1 port: panva's
# `oidc-provider` (npm, an OpenID Certified implementation: small, no database, starts in
# milliseconds), run by scripts/oidc/provider.mjs with a client for DriftGuard and three people.
# Installs the pinned version with npm under $DRIFTGUARD_CACHE (kept between runs).
# Writes $DRIFTGUARD_RUN/oidc.env (OIDC_ISSUER, OIDC_CLIENT_SECRET_FILE) and oidc.pid.
# Idempotent: if it already runs and answers, it only re-prints the env.
set -euo pipefail
# shellcheck source=../lib/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib/common.sh"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

OIDC_PROVIDER_VERSION="${OIDC_PROVIDER_VERSION:-9.13.3}"
DIR="$DRIFTGUARD_CACHE/oidc-provider-$OIDC_PROVIDER_VERSION"
PIDFILE="$DRIFTGUARD_RUN/oidc.pid"
ENVFILE="$DRIFTGUARD_RUN/oidc.env"
LOGFILE="$DRIFTGUARD_RUN/oidc.log"
SECRET="$DRIFTGUARD_RUN/oidc-client-secret"

command -v node >/dev/null || die "node is required (the OpenID provider of the sign-in tests)"
mkdir -p "$DRIFTGUARD_RUN" "$DIR"

# ---- install the pinned oidc-provider (npm, once)
if [ "$(node -p "try{require('$DIR/node_modules/oidc-provider/package.json').version}catch(e){''}" 2>/dev/null)" != "$OIDC_PROVIDER_VERSION" ]; then
  log "installing oidc-provider@$OIDC_PROVIDER_VERSION into $DIR"
  echo '{"name":"driftguard-test-oidc","private":true,"type":"module"}' >"$DIR/package.json"
  (cd "$DIR" && npm install --no-audit --no-fund --silent "oidc-provider@$OIDC_PROVIDER_VERSION") \
    || die "npm install oidc-provider@$OIDC_PROVIDER_VERSION failed"
fi
# the script runs from the install folder, where its imports resolve
cp "$HERE/provider.mjs" "$DIR/provider.mjs"

answers() {
  curl -fsS --max-time 2 "http://127.0.0.1:$1/.well-known/openid-configuration" >/dev/null 2>&1
}

# ---- already running?
if pid_alive "$PIDFILE" && [ -s "$ENVFILE" ]; then
  port="$(sed -n 's#^OIDC_ISSUER=http://127\.0\.0\.1:\([0-9]*\)$#\1#p' "$ENVFILE")"
  if [ -n "$port" ] && answers "$port"; then
    log "OpenID provider already running (pid $(cat "$PIDFILE"), port $port)"
    sed "s/^/export /" "$ENVFILE"
    exit 0
  fi
  stop_pidfile "$PIDFILE" oidc-provider
fi
rm -f "$PIDFILE" "$ENVFILE"

# the client secret, given to the provider and to DriftGuard through a file
if [ ! -s "$SECRET" ]; then
  (umask 077; python3 -c 'import secrets; print(secrets.token_hex(24))' >"$SECRET")
fi
port="${DRIFTGUARD_OIDC_PORT:-$(free_port)}"
log "starting oidc-provider $OIDC_PROVIDER_VERSION on 127.0.0.1:$port"
# the provider writes its own pid once it listens (setsid may fork: `$!` need not be node)
(cd "$DIR" && OIDC_PORT="$port" OIDC_CLIENT_SECRET_FILE="$SECRET" OIDC_PID_FILE="$PIDFILE" \
  setsid node provider.mjs </dev/null >"$LOGFILE" 2>&1 &)

deadline=$(( $(date +%s) + ${DRIFTGUARD_START_TIMEOUT:-30} ))
until [ -s "$PIDFILE" ] && answers "$port"; do
  if [ "$(date +%s)" -ge "$deadline" ] || { [ -s "$PIDFILE" ] && ! pid_alive "$PIDFILE"; }; then
    log "the OpenID provider failed to start; log follows:"
    cat "$LOGFILE" >&2 || true
    stop_pidfile "$PIDFILE" oidc-provider
    exit 1
  fi
  sleep 0.2
done
{
  echo "OIDC_ISSUER=http://127.0.0.1:$port"
  echo "OIDC_CLIENT_SECRET_FILE=$SECRET"
} >"$ENVFILE"
log "OpenID provider ready (pid $(cat "$PIDFILE"))"
sed "s/^/export /" "$ENVFILE"
