#!/usr/bin/env bash
# Stop the SecantusDB started by scripts/mongo/start.sh and remove its data.
set -euo pipefail
# shellcheck source=../lib/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib/common.sh"

stop_pidfile "$DRIFTGUARD_RUN/mongo.pid" secantusd
rm -rf "$DRIFTGUARD_RUN/mongo" "$DRIFTGUARD_RUN/mongo.env" "$DRIFTGUARD_RUN/mongo.log"
