#!/usr/bin/env bash
# The nightly fuzz job: every target of fuzz/ for SECONDS each (default 600), the server's
# parsers included (config, webhook, api_query, next), which the test command's short pass
# leaves out. Run it from cron or a scheduled CI job, e.g.
#
#   0 2 * * *  cd /srv/driftguard && scripts/fuzz-nightly.sh 600 >>/var/log/driftguard-fuzz.log 2>&1
#
# Installs cargo-fuzz when missing (the nightly toolchain must be there: rustup toolchain
# install nightly). Exits non-zero when a target crashed; the input is in
# fuzz/artifacts/<target>/ and the summary in fuzz/last-run.txt (docs/reliability.md says how
# to turn a crash into a regression test).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_EACH="${1:-600}"
if ! cargo +nightly fuzz --help >/dev/null 2>&1; then
  cargo +nightly install cargo-fuzz --locked
fi
exec "$ROOT/scripts/fuzz.sh" "$SECONDS_EACH"
