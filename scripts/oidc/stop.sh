#!/usr/bin/env bash
# Stop the OpenID provider started by scripts/oidc/start.sh.
set -euo pipefail
# shellcheck source=../lib/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib/common.sh"

stop_pidfile "$DRIFTGUARD_RUN/oidc.pid" oidc-provider
rm -f "$DRIFTGUARD_RUN/oidc.env" "$DRIFTGUARD_RUN/oidc.log" "$DRIFTGUARD_RUN/oidc-client-secret"
