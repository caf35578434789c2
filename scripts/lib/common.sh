# shellcheck shell=bash
# Shared helpers for DriftGuard test-infrastructure scripts (sourced, not run).
DRIFTGUARD_CACHE="${DRIFTGUARD_CACHE:-$HOME/.cache/driftguard}"
DRIFTGUARD_RUN="${DRIFTGUARD_RUN:-/tmp/driftguard-test}"
export DRIFTGUARD_CACHE DRIFTGUARD_RUN

log() { echo "[$(basename "$0")] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Print a free TCP port on 127.0.0.1 (asked from the kernel), avoiding any
# ports passed as arguments.
free_port() {
  python3 - "$@" <<'PY'
import socket, sys
avoid = set(int(a) for a in sys.argv[1:])
for _ in range(50):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p not in avoid and p >= 1024:
        print(p); break
PY
}

# port_open PORT -> 0 if something accepts TCP connections on 127.0.0.1:PORT
port_open() {
  python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1])))==0 else 1)' "$1"
}

# pid_alive PIDFILE -> 0 if the pid file exists and the process runs
pid_alive() {
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# stop_pidfile PIDFILE [NAME] [TIMEOUT_SECS=15] [SIGNAL=TERM]: send SIGNAL, wait up
# to TIMEOUT_SECS, then SIGKILL; remove the file.
stop_pidfile() {
  local f="$1" name="${2:-$1}" timeout="${3:-15}" sig="${4:-TERM}" pid
  [ -s "$f" ] || { rm -f "$f"; return 0; }
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid, SIG$sig)"
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 1 $(( timeout * 10 ))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not exit after ${timeout}s; SIGKILL"
      kill -9 "$pid" 2>/dev/null || true
    fi
    # wait for the process to be gone (and its ports released)
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$f"
}
