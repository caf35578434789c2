#!/usr/bin/env bash
# Find what the Terraform tests need on this machine image: the terraform binary (1.11.4 on
# PATH, or $TERRAFORM) and the AWS provider as a filesystem mirror (a folder holding
# registry.terraform.io/hashicorp/aws, found with `find / -maxdepth 3`, or
# $TF_PROVIDER_MIRROR). Writes a Terraform CLI configuration using that mirror
# ($DRIFTGUARD_RUN/terraform.tfrc, no network) and prints
# `export TERRAFORM=... TF_CLI_CONFIG_FILE=...`.
#
# Nothing is downloaded. When either is missing it says so and prints nothing for it: the
# Terraform end-to-end tests then fail, naming what is missing (the unit tests on recorded
# plans still run).
set -euo pipefail
# shellcheck source=../lib/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib/common.sh"

mkdir -p "$DRIFTGUARD_RUN"
tf="${TERRAFORM:-$(command -v terraform || true)}"
if [ -z "$tf" ] || ! "$tf" version >/dev/null 2>&1; then
  log "terraform not found (set TERRAFORM or put terraform on PATH): the Terraform end-to-end tests will fail"
  exit 0
fi
mirror="${TF_PROVIDER_MIRROR:-}"
if [ -z "$mirror" ]; then
  for d in $(find / -maxdepth 3 -type d -name registry.terraform.io 2>/dev/null); do
    if [ -d "$d/hashicorp/aws" ]; then mirror="$(dirname "$d")"; break; fi
  done
fi
echo "export TERRAFORM=$tf"
if [ -z "$mirror" ] || [ ! -d "$mirror/registry.terraform.io/hashicorp/aws" ]; then
  log "no filesystem mirror of the AWS provider found (set TF_PROVIDER_MIRROR): the Terraform end-to-end tests will fail"
  exit 0
fi
cat >"$DRIFTGUARD_RUN/terraform.tfrc" <<TFRC
# written by scripts/terraform/setup.sh: providers from the image's mirror, never the network
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/*/*"]
  }
}
disable_checkpoint = true
TFRC
log "terraform $("$tf" version 2>/dev/null | head -n1 | awk '{print $2}') with the provider mirror $mirror"
echo "export TF_CLI_CONFIG_FILE=$DRIFTGUARD_RUN/terraform.tfrc"
