#!/usr/bin/env bash
# Builds OpenTofu's `tofu` from the Go module proxy into $DRIFTGUARD_CACHE/opentofu-<version>/bin/
# (issue #35: the Terraform end-to-end tests run with terraform and with tofu). `test-services.sh
# up` runs it and puts its export into services.env; a failed build fails `up`.
#
# Why this version and not `go install ...@version`: v1.12.6 is the newest release the proxy
# serves (`go list -m -versions github.com/opentofu/opentofu`), and its go.mod declares
# `go 1.26.6`, which this machine's Go 1.26 builds. Its go.mod has a `replace` (OpenTofu's own
# fork of hashicorp/hcl/v2), and `go install pkg@version` refuses a module with a replace: the
# module is downloaded and built in a copy of itself (`go build ./cmd/tofu`), with its go.sum
# as the checksum list, as `make build` does upstream.
# Idempotent: a built binary that reports the version is kept (well under a second).
#
# OpenTofu needs the AWS provider too, and its registry cannot be reached either: `hashicorp/aws`
# means `registry.opentofu.org/hashicorp/aws` to tofu. The image's filesystem mirror of terraform
# (found as scripts/terraform/setup.sh finds it: $TF_PROVIDER_MIRROR, or a folder holding
# registry.terraform.io/hashicorp/aws) is offered under both host names in
# $DRIFTGUARD_RUN/opentofu/mirror: each provider's platform folder is a link to the same
# unpacked provider (a mirror may link only there: tofu and terraform do not follow links higher
# up), and $DRIFTGUARD_RUN/opentofu/tofu.tfrc is a CLI configuration using it (terraform's reads
# it as well). A missing mirror fails the script, as a failed build does.
# Prints `export TOFU=...` and `export TOFU_CLI_CONFIG_FILE=...` on stdout; logs go to stderr.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/common.sh
. "$HERE/../lib/common.sh"

TOFU_VERSION="${TOFU_VERSION:-v1.12.6}"
DEST="$DRIFTGUARD_CACHE/opentofu-$TOFU_VERSION"
BIN="$DEST/bin/tofu"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
command -v go >/dev/null || die "go is needed (Go 1.26)"

# `tofu version` may print a warning about the CLI configuration first: the line is looked for
reports_version() { "$BIN" version 2>/dev/null | grep -qx "OpenTofu ${TOFU_VERSION}"; }

# the provider mirror under both host names, and a CLI configuration for it
mirror_config() {
  local mirror="${TF_PROVIDER_MIRROR:-}" d
  if [ -z "$mirror" ]; then
    for d in $(find / -maxdepth 3 -type d -name registry.terraform.io 2>/dev/null); do
      if [ -d "$d/hashicorp/aws" ]; then mirror="$(dirname "$d")"; break; fi
    done
  fi
  [ -n "$mirror" ] && [ -d "$mirror/registry.terraform.io/hashicorp/aws" ] \
    || die "no filesystem mirror of the AWS provider found (set TF_PROVIDER_MIRROR)"
  local out="$DRIFTGUARD_RUN/opentofu/mirror" platform rel host
  rm -rf "$out"
  # registry.terraform.io/<namespace>/<type>/<version>/<os_arch>
  while IFS= read -r platform; do
    rel="${platform#"$mirror/registry.terraform.io/"}"
    for host in registry.opentofu.org registry.terraform.io; do
      mkdir -p "$(dirname "$out/$host/$rel")"
      ln -sfn "$platform" "$out/$host/$rel"
    done
  done < <(find "$mirror/registry.terraform.io" -mindepth 4 -maxdepth 4 -type d)
  cat >"$DRIFTGUARD_RUN/opentofu/tofu.tfrc" <<TFRC
# written by scripts/opentofu/build.sh: providers from the image's mirror under both registry
# host names (OpenTofu's and Terraform's), never the network
provider_installation {
  filesystem_mirror {
    path    = "$out"
    include = ["registry.opentofu.org/*/*", "registry.terraform.io/*/*"]
  }
}
disable_checkpoint = true
TFRC
  log "the provider mirror $mirror offered to OpenTofu in $out"
  echo "export TOFU_CLI_CONFIG_FILE=$DRIFTGUARD_RUN/opentofu/tofu.tfrc"
}
mkdir -p "$DRIFTGUARD_RUN/opentofu"

if [ -x "$BIN" ] && reports_version; then
  echo "export TOFU=$BIN"
  mirror_config
  exit 0
fi
dir="$(go mod download -json "github.com/opentofu/opentofu@$TOFU_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[ -d "$dir" ] || die "github.com/opentofu/opentofu@$TOFU_VERSION: not downloaded"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# the module cache is read-only: a copy to build in
cp -r "$dir/." "$work/"
chmod -R u+w "$work"
(
  cd "$work"
  log "building tofu $TOFU_VERSION (several minutes on 2 cores)"
  mkdir -p "$DEST/bin"
  # the release's own version string (upstream's Makefile sets the same variable)
  go build -trimpath \
    -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" \
    -o "$BIN.tmp" ./cmd/tofu >&2
  mv "$BIN.tmp" "$BIN"
)
reports_version || die "$BIN does not report OpenTofu $TOFU_VERSION: $("$BIN" version 2>&1)"
log "OpenTofu $TOFU_VERSION built into $BIN"
echo "export TOFU=$BIN"
mirror_config
