#!/usr/bin/env bash
# Bring the DriftGuard test services up or down.
#   scripts/test-services.sh up     build/reuse k8s binaries (KUBE_VERSION, default the newest
#                                   of scripts/test-cluster/lib.sh), start cluster + SecantusDB,
#                                   install/reuse helm and moto, find terraform and its
#                                   provider mirror, build/reuse OpenTofu (with the mirror
#                                   offered to it) and Flux's controllers, start
#                                   the OpenID provider (oidc-provider from npm), write
#                                   $DRIFTGUARD_RUN/services.env;
#                                   run again with another KUBE_VERSION, it swaps the cluster
#   scripts/test-services.sh down   stop both and remove their data
#   scripts/test-services.sh status print whether each service answers
# Then: `. "${DRIFTGUARD_RUN:-/tmp/driftguard-test}/services.env"` exports
# KUBECONFIG, KUBECTL, KUBE_VERSION, MONGODB_URI, HELM, HELM_KUBECTL, MCP_PYTHON, SCHEMATHESIS, MOTO_VENV,
# TERRAFORM, TF_CLI_CONFIG_FILE, TOFU, TOFU_CLI_CONFIG_FILE, FLUX_SOURCE_CONTROLLER, FLUX_KUSTOMIZE_CONTROLLER, FLUX_CRDS,
# OIDC_ISSUER and OIDC_CLIENT_SECRET_FILE for tests.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"

SERVICES_ENV="$DRIFTGUARD_RUN/services.env"

case "${1:-}" in
  up)
    mkdir -p "$DRIFTGUARD_RUN"
    rm -f "$SERVICES_ENV"
    "$HERE/test-cluster/build.sh"
    "$HERE/test-cluster/start.sh" >/dev/null
    "$HERE/mongo/start.sh" >/dev/null
    # the OpenID provider of the sign-in tests (panva's oidc-provider, npm; writes oidc.env)
    "$HERE/oidc/start.sh" >/dev/null
    "$HERE/helm/install.sh" >"$DRIFTGUARD_RUN/helm.env"
    "$HERE/moto/install.sh" >"$DRIFTGUARD_RUN/moto.env"
    "$HERE/terraform/setup.sh" >"$DRIFTGUARD_RUN/terraform.env"
    # OpenTofu's tofu, built from the Go module proxy, and a CLI configuration offering it the
    # same provider mirror (the Terraform tests run with both binaries); a failed build fails `up`
    "$HERE/opentofu/build.sh" >"$DRIFTGUARD_RUN/opentofu.env"
    # Flux's source-controller and kustomize-controller, built from the Go module proxy, and
    # their CRDs (the real-controller test, driftguard-cli/tests/flux_controllers.rs)
    "$HERE/flux/build.sh" >"$DRIFTGUARD_RUN/flux.env"
    # the official MCP Python SDK: the real client of the MCP tests (a venv, cached)
    mcp_python="$("$HERE/mcp-client/install.sh" | sed -n 's/^MCP_PYTHON=//p')"
    # Schemathesis: the API contract test drives `serve` from its OpenAPI document (a venv)
    schemathesis="$("$HERE/schemathesis/install.sh" | sed -n 's/^SCHEMATHESIS=//p')"
    {
      echo "# written by scripts/test-services.sh up"
      sed 's/^/export /' "$DRIFTGUARD_RUN/env"
      # the cluster's version (tests may say which server they ran on)
      sed -n 's/^KUBE_VERSION=/export KUBE_VERSION=/p' "$DRIFTGUARD_RUN/cluster.info"
      sed 's/^/export /' "$DRIFTGUARD_RUN/mongo.env"
      sed 's/^/export /' "$DRIFTGUARD_RUN/oidc.env"
      cat "$DRIFTGUARD_RUN/helm.env"
      cat "$DRIFTGUARD_RUN/moto.env"
      cat "$DRIFTGUARD_RUN/terraform.env"
      cat "$DRIFTGUARD_RUN/opentofu.env"
      cat "$DRIFTGUARD_RUN/flux.env"
      echo "export DRIFTGUARD_RUN=$DRIFTGUARD_RUN"
      echo "export DRIFTGUARD_CACHE=$DRIFTGUARD_CACHE"
      echo "export MCP_PYTHON=$mcp_python"
      echo "export SCHEMATHESIS=$schemathesis"
    } >"$SERVICES_ENV.tmp"
    mv "$SERVICES_ENV.tmp" "$SERVICES_ENV"
    log "services up; env in $SERVICES_ENV"
    cat "$SERVICES_ENV"
    ;;
  down)
    rc=0
    "$HERE/mongo/stop.sh" || rc=1
    "$HERE/oidc/stop.sh" || rc=1
    "$HERE/test-cluster/stop.sh" || rc=1
    rm -f "$SERVICES_ENV" "$DRIFTGUARD_RUN/helm.env" "$DRIFTGUARD_RUN/moto.env" "$DRIFTGUARD_RUN/terraform.env" \
      "$DRIFTGUARD_RUN/opentofu.env" "$DRIFTGUARD_RUN/flux.env"
    rm -rf "$DRIFTGUARD_RUN/opentofu"
    exit "$rc"
    ;;
  status)
    rc=0
    if [ -s "$DRIFTGUARD_RUN/env" ]; then
      # shellcheck disable=SC1091
      . "$DRIFTGUARD_RUN/env"
      if "$KUBECTL" --kubeconfig "$KUBECONFIG" get --raw /readyz >/dev/null 2>&1; then
        echo "kubernetes: $(sed -n 's/^KUBE_VERSION=//p' "$DRIFTGUARD_RUN/cluster.info" 2>/dev/null) ready ($KUBECONFIG)"
      else echo "kubernetes: NOT ready"; rc=1; fi
    else echo "kubernetes: not started"; rc=1; fi
    if [ -s "$DRIFTGUARD_RUN/helm.env" ]; then
      # shellcheck disable=SC1091
      . "$DRIFTGUARD_RUN/helm.env"
      if "$HELM" version --short >/dev/null 2>&1; then echo "helm: $("$HELM" version --short) ($HELM)"
      else echo "helm: NOT runnable ($HELM)"; rc=1; fi
    else echo "helm: not installed"; rc=1; fi
    if [ -s "$DRIFTGUARD_RUN/moto.env" ]; then
      # shellcheck disable=SC1091
      . "$DRIFTGUARD_RUN/moto.env"
      if "$MOTO_VENV/bin/python" -c 'import boto3, moto' 2>/dev/null; then echo "moto: installed ($MOTO_VENV)"
      else echo "moto: NOT importable ($MOTO_VENV)"; rc=1; fi
    else echo "moto: not installed"; rc=1; fi
    if grep -q TF_CLI_CONFIG_FILE "$DRIFTGUARD_RUN/terraform.env" 2>/dev/null; then
      echo "terraform: $(sed -n 's/^export TERRAFORM=//p' "$DRIFTGUARD_RUN/terraform.env") with a provider mirror"
    else echo "terraform: terraform or the AWS provider mirror missing"; rc=1; fi
    if [ -s "$DRIFTGUARD_RUN/opentofu.env" ]; then
      # shellcheck disable=SC1091
      . "$DRIFTGUARD_RUN/opentofu.env"
      if "${TOFU:-tofu}" version >/dev/null 2>&1 && [ -s "${TOFU_CLI_CONFIG_FILE:-}" ]; then
        echo "opentofu: $TOFU with a provider mirror ($TOFU_CLI_CONFIG_FILE)"
      else echo "opentofu: NOT runnable or its CLI configuration missing"; rc=1; fi
    else echo "opentofu: not built"; rc=1; fi
    if [ -s "$DRIFTGUARD_RUN/flux.env" ]; then
      # shellcheck disable=SC1091
      . "$DRIFTGUARD_RUN/flux.env"
      if [ -x "${FLUX_SOURCE_CONTROLLER:-}" ] && [ -x "${FLUX_KUSTOMIZE_CONTROLLER:-}" ] && [ -d "${FLUX_CRDS:-}" ]; then
        echo "flux: source-controller and kustomize-controller built ($(dirname "$FLUX_SOURCE_CONTROLLER"))"
      else echo "flux: a controller or the CRDs missing"; rc=1; fi
    else echo "flux: not built"; rc=1; fi
    if [ -s "$DRIFTGUARD_RUN/oidc.env" ] && pid_alive "$DRIFTGUARD_RUN/oidc.pid"; then
      echo "oidc-provider: running ($(sed -n 's/^OIDC_ISSUER=//p' "$DRIFTGUARD_RUN/oidc.env"))"
    else echo "oidc-provider: not running"; rc=1; fi
    if [ -s "$DRIFTGUARD_RUN/mongo.env" ] && pid_alive "$DRIFTGUARD_RUN/mongo.pid"; then
      echo "secantusdb: running ($(cat "$DRIFTGUARD_RUN/mongo.env"))"
    else echo "secantusdb: not running"; rc=1; fi
    exit "$rc"
    ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
