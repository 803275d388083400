#!/usr/bin/env bash
# Build hack/kstatus/main.go (kstatus, the readiness judge of Flux, `helm --wait` and `kubectl wait`,
# from sigs.k8s.io/cli-utils) with the machine's Go toolchain, into a cache outside the repository.
# Idempotent: a built binary is reused. Prints the binary's path on its last line.
#
# Only main.go is committed: the wrapper module (go.mod, go.sum) is made in a scratch directory.
set -euo pipefail

CLI_UTILS_VERSION="${HAL9_CLI_UTILS_VERSION:-v0.37.2}"
CACHE_ROOT="${HAL9_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hal9-migration}"
OUT="$CACHE_ROOT/kstatus/cli-utils-$CLI_UTILS_VERSION"
BIN="$OUT/kstatus"
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kstatus/main.go"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
command -v go >/dev/null || { echo "build-kstatus: the Go toolchain is required (go not on PATH)" >&2; exit 1; }
[ -f "$SOURCE" ] || { echo "build-kstatus: $SOURCE is missing" >&2; exit 1; }
log() { echo "build-kstatus: $*" >&2; }

mkdir -p "$OUT"
work="$(mktemp -d "${TMPDIR:-/tmp}/hal9-kstatus-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

log "building kstatus from sigs.k8s.io/cli-utils $CLI_UTILS_VERSION"
cd "$work"
go mod init hal9.local/kstatus >/dev/null 2>&1
cp "$SOURCE" main.go
go get "sigs.k8s.io/cli-utils@$CLI_UTILS_VERSION" >&2
go mod tidy >&2
# tidy may move cli-utils; the build must use exactly the pinned version.
go list -m -f '{{.Version}}' sigs.k8s.io/cli-utils | grep -qx "$CLI_UTILS_VERSION" \
  || { log "go mod tidy changed sigs.k8s.io/cli-utils away from $CLI_UTILS_VERSION"; exit 1; }
go build -trimpath -ldflags "-s -w" -o "$OUT/kstatus.tmp" .
mv "$OUT/kstatus.tmp" "$BIN"

log "kstatus ready in ${SECONDS} s"
echo "$BIN"
