#!/usr/bin/env bash
# Build helm (helm.sh/helm/v3/cmd/helm) with the machine's Go toolchain, into a cache outside the
# repository. The chart tests (tests/*/test_chart.py) lint, render and install
# charts/hal9-migration-operator with it against the local control plane.
# Idempotent: a built binary is reused. Prints the binary's path on its last line; logs go to stderr.
#
# Nothing is committed for it: the wrapper module (go.mod, go.sum) is made in a scratch directory.
set -euo pipefail

HELM_VERSION="${HAL9_HELM_VERSION:-v3.22.0}"
HELM_MODULE=helm.sh/helm/v3
CACHE_ROOT="${HAL9_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hal9-migration}"
OUT="$CACHE_ROOT/helm/$HELM_VERSION"
BIN="$OUT/helm"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
command -v go >/dev/null || { echo "build-helm: the Go toolchain is required (go not on PATH)" >&2; exit 1; }
log() { echo "build-helm: $*" >&2; }

mkdir -p "$OUT"
work="$(mktemp -d "${TMPDIR:-/tmp}/hal9-helm-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

log "building helm from $HELM_MODULE $HELM_VERSION (a few minutes when cold)"
cd "$work"
go mod init hal9.local/helm >/dev/null 2>&1
go get "$HELM_MODULE/cmd/helm@$HELM_VERSION" >&2
# The build must use exactly the pinned version (go get may resolve another one through requirements).
go list -m -f '{{.Version}}' "$HELM_MODULE" | grep -qx "$HELM_VERSION" \
  || { log "go get resolved $HELM_MODULE to another version than $HELM_VERSION"; exit 1; }
# What helm's own Makefile sets: its version, and the Kubernetes version that `helm template` and
# `helm lint` assume (without it, v1.20: a chart's kubeVersion and deprecation checks would be judged
# against a six-year-old cluster). client-go v0.X.Y is Kubernetes 1.X.
client_go="$(go list -m -f '{{.Version}}' k8s.io/client-go)"
k8s_minor="$(echo "$client_go" | cut -d. -f2)"
ldflags="-s -w -X $HELM_MODULE/internal/version.version=$HELM_VERSION"
for var in pkg/lint/rules pkg/chartutil; do
  ldflags+=" -X $HELM_MODULE/$var.k8sVersionMajor=1 -X $HELM_MODULE/$var.k8sVersionMinor=$k8s_minor"
done
go build -trimpath -ldflags "$ldflags" -o "$OUT/helm.tmp" "$HELM_MODULE/cmd/helm"
mv "$OUT/helm.tmp" "$BIN"

log "helm ready in ${SECONDS} s"
echo "$BIN"
