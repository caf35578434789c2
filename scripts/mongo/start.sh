#!/usr/bin/env bash
# Start SecantusDB (MongoDB-compatible) on a free 127.0.0.1 port for tests.
# Writes $DRIFTGUARD_RUN/mongo.env (MONGODB_URI=...) and $DRIFTGUARD_RUN/mongo.pid.
# Idempotent: if it already runs and answers, it only re-prints the env.
set -euo pipefail
# shellcheck source=../lib/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib/common.sh"

SECANTUS_VERSION="${SECANTUS_VERSION:-0.7.0b3}"
VENV="$DRIFTGUARD_CACHE/secantus-venv"
PY="$VENV/bin/python"
MONGO_DIR="$DRIFTGUARD_RUN/mongo"
PIDFILE="$DRIFTGUARD_RUN/mongo.pid"
ENVFILE="$DRIFTGUARD_RUN/mongo.env"
LOGFILE="$DRIFTGUARD_RUN/mongo.log"
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

mkdir -p "$DRIFTGUARD_RUN" "$DRIFTGUARD_CACHE"

# ---- ensure the venv with secantusdb (+ pymongo, which it depends on)
if ! "$PY" -c 'import importlib.metadata as m,sys; sys.exit(0 if m.version("secantusdb")==sys.argv[1] else 1)' "$SECANTUS_VERSION" 2>/dev/null \
   || [ ! -x "$VENV/bin/secantusd-py" ]; then
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv >/dev/null
  fi
  log "creating venv $VENV with secantusdb==$SECANTUS_VERSION"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "secantusdb==$SECANTUS_VERSION" pymongo
fi

# ping PORT: real MongoDB ping via pymongo
ping_mongo() {
  "$PY" - "$1" <<'PY' >/dev/null 2>&1
import sys, pymongo
c = pymongo.MongoClient(f"mongodb://127.0.0.1:{sys.argv[1]}/?directConnection=true",
                        serverSelectionTimeoutMS=2000, connectTimeoutMS=2000)
c.admin.command("ping")
PY
}

# ---- already running?
if pid_alive "$PIDFILE" && [ -s "$ENVFILE" ]; then
  port="$(sed -n 's#.*127\.0\.0\.1:\([0-9]*\)/.*#\1#p' "$ENVFILE" | head -n1)"
  if [ -n "$port" ] && ping_mongo "$port"; then
    log "SecantusDB already running (pid $(cat "$PIDFILE"), port $port)"
    sed "s/^/export /" "$ENVFILE"
    exit 0
  fi
  stop_pidfile "$PIDFILE" secantusd
fi
rm -f "$PIDFILE" "$ENVFILE"

port="${DRIFTGUARD_MONGO_PORT:-$(free_port)}"
rm -rf "$MONGO_DIR"
mkdir -p "$MONGO_DIR"
log "starting SecantusDB on 127.0.0.1:$port (data $MONGO_DIR)"
# setsid: detach from the caller's process group/terminal so it outlives the script.
setsid "$VENV/bin/secantusd-py" --host 127.0.0.1 --port "$port" --storage-path "$MONGO_DIR" \
  --log-level WARNING --cache-size 256M </dev/null >"$LOGFILE" 2>&1 &
echo $! >"$PIDFILE"

deadline=$(( $(date +%s) + ${DRIFTGUARD_START_TIMEOUT:-60} ))
until port_open "$port" && ping_mongo "$port"; do
  if ! pid_alive "$PIDFILE" || [ "$(date +%s)" -ge "$deadline" ]; then
    log "SecantusDB failed to start; log follows:"
    cat "$LOGFILE" >&2 || true
    stop_pidfile "$PIDFILE" secantusd
    exit 1
  fi
  sleep 0.5
done

echo "MONGODB_URI=mongodb://127.0.0.1:$port/?directConnection=true" >"$ENVFILE"
log "SecantusDB ready (pid $(cat "$PIDFILE"))"
echo "export MONGODB_URI=mongodb://127.0.0.1:$port/?directConnection=true"
