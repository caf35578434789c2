#!/usr/bin/env bash
# The whole test suite, exactly what CI runs (.ci/run calls this).
#
# Starts the real services the tests need (a Kubernetes test cluster, etcd + kube-apiserver +
# kube-controller-manager built from the Go module proxy: scripts/test-cluster/; SecantusDB for
# MongoDB, helm for Helm charts, moto's server as the AWS API and terraform with its provider
# mirror for Terraform, the MCP Python SDK as a real MCP client, Schemathesis for the API
# contract), runs formatting, lints and every test of the workspace,
# and stops the services again, whatever happens. Every test runs on the newest Kubernetes
# (KUBE_VERSION_NEWEST in scripts/test-cluster/lib.sh); then the live-source, sources conformance
# and acceptance suites run again on an older minor still in support (KUBE_VERSION_OLDER).
set -euo pipefail
cd "$(dirname "$0")/.."
export DRIFTGUARD_RUN=${DRIFTGUARD_RUN:-/tmp/driftguard-test}
export DRIFTGUARD_CACHE=${DRIFTGUARD_CACHE:-$HOME/.cache/driftguard}
# a one-shot build: incremental artifacts would only take disk (several GB for the ~60 test
# binaries), and a full disk fails the build
export CARGO_INCREMENTAL=0
# shellcheck disable=SC2016
KUBE_NEWEST="$(bash -c '. scripts/test-cluster/lib.sh; echo "$KUBE_VERSION_NEWEST"')"
# shellcheck disable=SC2016
KUBE_OLDER="$(bash -c '. scripts/test-cluster/lib.sh; echo "$KUBE_VERSION_OLDER"')"

older_build=""
cleanup() {
  [ -z "$older_build" ] || kill "$older_build" 2>/dev/null || true
  scripts/test-services.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*"; }

step "tools"
command -v git >/dev/null || { apt-get update -qq && apt-get install -y -qq git; }
# the dashboard's browser tests (driftguard-cli/tests/dashboard.rs): Debian's Chromium and its
# WebDriver server
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi
# the OpenID provider of the sign-in tests (scripts/oidc/, panva's oidc-provider from npm)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "cargo fmt --check"
cargo fmt --all -- --check

step "test services (Kubernetes $KUBE_NEWEST, SecantusDB, helm, moto, terraform and its provider mirror, OpenTofu, the MCP Python SDK, Schemathesis, the OpenID provider)"
KUBE_VERSION=$KUBE_NEWEST scripts/test-services.sh up
# shellcheck disable=SC1091
. "$DRIFTGUARD_RUN/services.env"
# the older version's programs (a cold build is ~10 minutes), built meanwhile at the lowest
# priority: it takes the CPU the Rust builds and the tests leave idle, and is waited for below
nice -n 19 env KUBE_VERSION="$KUBE_OLDER" scripts/test-cluster/build.sh \
  >"$DRIFTGUARD_RUN/build-$KUBE_OLDER.log" 2>&1 &
older_build=$!

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (Kubernetes $KUBE_NEWEST)"
cargo test --workspace --no-fail-fast -- --include-ignored
# the workspace turns on serde_json's preserve_order (through bson); the core alone does not:
# run its tests both ways, since hashes must not depend on map order
step "cargo test -p driftguard-core (without preserve_order)"
cargo test -p driftguard-core

# a short fuzz pass when a nightly toolchain with cargo-fuzz is here (scripts/fuzz.sh; longer
# runs by hand: scripts/fuzz.sh 600); a crash fails the suite
if rustup toolchain list 2>/dev/null | grep -q '^nightly' && cargo +nightly fuzz --help >/dev/null 2>&1; then
  step "short fuzz pass (${FUZZ_SECONDS:-10}s per target of the core's parsers)"
  FUZZ_QUICK=1 scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
else
  step "short fuzz pass: skipped (no nightly toolchain with cargo-fuzz)"
fi

step "examples (the library embedded and extended)"
for example in engine_in_memory scan_git_and_dump extend; do
  cargo run -q -p driftguard-examples --example "$example"
done

step "the live-source, sources conformance and acceptance suites on Kubernetes $KUBE_OLDER"
# the same services, the cluster swapped for the older version (built once into the cache)
wait "$older_build" || { cat "$DRIFTGUARD_RUN/build-$KUBE_OLDER.log"; exit 1; }
older_build=""
KUBE_VERSION=$KUBE_OLDER scripts/test-services.sh up >/dev/null
# shellcheck disable=SC1091
. "$DRIFTGUARD_RUN/services.env"
cargo test -p driftguard-sources --no-fail-fast --test kube_scan --test kube_watch \
  --test conformance_live --test conformance_git -- --include-ignored
cargo test -p driftguard-cli --no-fail-fast --test acceptance -- --include-ignored
