#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for SECONDS each (default 60), with seed corpora taken
# from the fixtures and examples (fuzz/corpus/<target>, rebuilt from them each run and kept
# between runs) and the hand seeds in fuzz/seeds/<target>.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# FUZZ_QUICK=1 (the test command's short pass) leaves out the targets of the server's parsers
# (config, webhook, api_query, next), which build the whole server with the sanitizer; those run
# in the nightly job (scripts/fuzz-nightly.sh).
#
# Needs the nightly toolchain and cargo-fuzz (`rustup toolchain install nightly`,
# `cargo install cargo-fuzz --locked`). Prints, per target, the executions and the time fuzzed,
# and a summary line per target in fuzz/last-run.txt. Exits non-zero when a target crashed;
# the input is in fuzz/artifacts/<target>/ (turn it into a regression test in the normal suite:
# see docs/reliability.md).
set -euo pipefail

SECONDS_EACH="${1:-60}"
shift || true
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FUZZ="$ROOT/fuzz"
ALL_TARGETS=(manifest dump config quantity compare webhook api_query render_output audit preview next)
SERVER_TARGETS=" config webhook api_query next "
FEATURES=(--features server)
if [ "${FUZZ_QUICK:-0}" = 1 ]; then FEATURES=(); fi
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=(); fi
if [ "${#TARGETS[@]}" -eq 0 ]; then
  for t in "${ALL_TARGETS[@]}"; do
    if [ "${FUZZ_QUICK:-0}" = 1 ] && [[ "$SERVER_TARGETS" == *" $t "* ]]; then continue; fi
    [ -f "$FUZZ/fuzz_targets/$t.rs" ] && TARGETS+=("$t")
  done
fi

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz.sh: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo +nightly fuzz --help >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz is missing (cargo install cargo-fuzz --locked)" >&2
  exit 2
fi

# seed corpora: every file of the fixtures and examples that the target reads
seed() { # seed TARGET PREFIX_BYTE FILE...
  local target="$1" prefix="$2"
  shift 2
  local dir="$FUZZ/corpus/$target"
  mkdir -p "$dir"
  local f
  for f in "$@"; do
    [ -f "$f" ] || continue
    # at most 64 KiB of each: libFuzzer mutates small inputs best
    local name
    name="seed-$(printf '%s' "$f" | sha1sum | cut -c1-12)"
    if [ -n "$prefix" ]; then
      { printf "$prefix"; head -c 65536 "$f"; } >"$dir/$name"
    else
      head -c 65536 "$f" >"$dir/$name"
    fi
  done
}
mapfile -t MANIFESTS < <(find "$ROOT/examples" "$ROOT/driftguard-core/tests/fixtures" \
  -name '*.yaml' -path '*desired*' -o -name '*.yaml' -path '*gitops*' | sort)
mapfile -t JSONS < <(find "$ROOT/driftguard-core/tests" "$ROOT/examples" -name '*.json' | sort)
mapfile -t DUMPS < <(find "$ROOT/examples" "$ROOT/driftguard-core/tests/fixtures" \
  -name 'live*.yaml' -o -path '*/live/*.yaml' | sort)
mapfile -t CONFIGS < <(find "$ROOT/examples" -name 'driftguard*.yaml' | sort)
mapfile -t AUDIT < <(find "$ROOT" -path "$ROOT/target" -prune -o -path "$FUZZ" -prune -o \
  -name '*.jsonl' -print 2>/dev/null | grep -i audit | sort || true)

for t in "${TARGETS[@]}"; do
  case "$t" in
    manifest) seed manifest '\000' "${MANIFESTS[@]}"; seed manifest '\001' "${JSONS[@]}" ;;
    dump) seed dump '' "${DUMPS[@]}" ;;
    config) seed config '' "${CONFIGS[@]}" ;;
    render_output) seed render_output '\000' "${MANIFESTS[@]:0:20}" ;;
    audit) seed audit '' "${AUDIT[@]}" ;;
  esac
  if [ -d "$FUZZ/seeds/$t" ]; then
    mkdir -p "$FUZZ/corpus/$t"
    cp -f "$FUZZ/seeds/$t"/* "$FUZZ/corpus/$t/" 2>/dev/null || true
  fi
  mkdir -p "$FUZZ/corpus/$t"
done

echo "fuzz.sh: building ${#TARGETS[@]} targets (nightly, address sanitizer, release)"
(cd "$FUZZ" && cargo +nightly fuzz build -O "${FEATURES[@]}")

SUMMARY="$FUZZ/last-run.txt"
: >"$SUMMARY"
failed=0
for t in "${TARGETS[@]}"; do
  log="$FUZZ/target/fuzz-$t.log"
  mkdir -p "$(dirname "$log")" "$FUZZ/artifacts/$t"
  start=$(date +%s)
  set +e
  (cd "$FUZZ" && cargo +nightly fuzz run -O "${FEATURES[@]}" "$t" "corpus/$t" -- \
      -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="artifacts/$t/") >"$log" 2>&1
  rc=$?
  set -e
  took=$(( $(date +%s) - start ))
  execs=$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  corpus=$(find "$FUZZ/corpus/$t" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then verdict="ok"; else verdict="CRASH (rc $rc, see $log)"; failed=1; fi
  line="$t: ${execs:-0} executions in ${took}s, corpus $corpus inputs: $verdict"
  echo "$line" | tee -a "$SUMMARY"
  if [ "$rc" -ne 0 ]; then
    grep -aE 'ERROR|panicked|SUMMARY|Test unit written' "$log" | head -20 >&2 || true
  fi
done
exit "$failed"
