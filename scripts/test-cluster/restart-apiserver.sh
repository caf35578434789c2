#!/usr/bin/env bash
# Kill only kube-apiserver and start it again with the same flags/port/certs
# (saved by start.sh in $DRIFTGUARD_RUN/apiserver.cmd), for watch-reconnect tests.
#
#   restart-apiserver.sh [--graceful] [DOWN_SECONDS]
#       kill (SIGKILL, like a crash; --graceful: SIGTERM, SIGKILL after 10 s),
#       stay down DOWN_SECONDS (default 0), start again, wait for /readyz.
#   restart-apiserver.sh --kill [--graceful]   only stop it
#   restart-apiserver.sh --start               only start it (and wait for /readyz)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

[ -s "$DRIFTGUARD_RUN/cluster.info" ] || die "no cluster in $DRIFTGUARD_RUN: run start.sh first"
# shellcheck disable=SC1091
. "$DRIFTGUARD_RUN/cluster.info"
PIDFILE="$DRIFTGUARD_RUN/kube-apiserver.pid"

do_kill=1 do_start=1 sig=KILL down=0
for a in "$@"; do
  case "$a" in
    --kill) do_start=0 ;;
    --start) do_kill=0 ;;
    --graceful) sig=TERM ;;
    ''|*[!0-9.]*) die "usage: $0 [--graceful] [DOWN_SECONDS] | --kill [--graceful] | --start" ;;
    *) down="$a" ;;
  esac
done

if [ "$do_kill" = 1 ]; then
  stop_pidfile "$PIDFILE" kube-apiserver 10 "$sig"
  [ "$do_start" = 1 ] || exit 0
  [ "$down" = 0 ] || sleep "$down"
fi
if pid_alive "$PIDFILE"; then
  log "kube-apiserver already running (pid $(cat "$PIDFILE"))"
else
  log "starting kube-apiserver on $APISERVER_URL"
  launch_apiserver
fi
wait_apiserver "$APISERVER_URL" "$ADMIN_TOKEN"
log "kube-apiserver ready (pid $(cat "$PIDFILE"))"
