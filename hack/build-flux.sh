#!/usr/bin/env bash
# Build Flux's source-controller and kustomize-controller (github.com/fluxcd/*-controller v1.9.6) with the
# machine's Go toolchain, into a cache outside the repository, and copy each module's CRDs
# (config/crd/bases/) next to the binaries. The test harness (hal9_migration/testing/flux.py) runs both
# out of cluster against the local control plane to prove the Hal9Migration under real GitOps.
# Idempotent: built binaries are reused. Prints the directory on its last line; logs go to stderr.
#
# Each controller is built from a writable copy of its module with two edits (DESIGN, appendix "Flux
# controllers from their Go modules"): the `replace …/api => ./api` line is dropped, so the published
# api module of the same version is used, and source-controller's github.com/fluxcd/pkg/artifact is
# pinned to v0.18.0, because the module proxy here refuses v0.18.3. v1.10.x needs Go 1.27.
# Nothing is committed for it. The two builds run in parallel (about 4 minutes each from a cold cache).
set -euo pipefail

FLUX_VERSION="${HAL9_FLUX_VERSION:-v1.9.6}"
ARTIFACT_PIN=v0.18.0
CACHE_ROOT="${HAL9_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hal9-migration}"
OUT="$CACHE_ROOT/flux/$FLUX_VERSION"
CONTROLLERS=(source-controller kustomize-controller)

# Each binary is moved into place last, so its presence means its CRDs are there too.
built() { [ -x "$OUT/$1" ] && [ -d "$OUT/crds/$1" ]; }
if built source-controller && built kustomize-controller; then
  echo "$OUT"
  exit 0
fi

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
command -v go >/dev/null || { echo "build-flux: the Go toolchain is required (go not on PATH)" >&2; exit 1; }
log() { echo "build-flux: $*" >&2; }

mkdir -p "$OUT/crds"
work="$(mktemp -d "${TMPDIR:-/tmp}/hal9-flux-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# build NAME: copy github.com/fluxcd/NAME@FLUX_VERSION, apply the two edits, build, copy the CRDs.
build() {
  local name="$1" module="github.com/fluxcd/$1" started=$SECONDS moddir
  moddir="$(go mod download -json "$module@$FLUX_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  [ -f "$moddir/go.mod" ] || { log "$name: go mod download $module@$FLUX_VERSION gave no module directory"; return 1; }
  cp -r "$moddir" "$work/$name"
  # The module cache is read-only; the copy must not be.
  chmod -R u+w "$work/$name"
  cd "$work/$name"
  go mod edit -dropreplace="$module/api"
  # Only source-controller requires github.com/fluxcd/pkg/artifact directly.
  if grep -q "github.com/fluxcd/pkg/artifact " go.mod; then
    go mod edit -require="github.com/fluxcd/pkg/artifact@$ARTIFACT_PIN"
    log "$name: resolving modules"
    go list -m -f '{{.Version}}' github.com/fluxcd/pkg/artifact | grep -qx "$ARTIFACT_PIN" \
      || { log "$name: github.com/fluxcd/pkg/artifact did not resolve to $ARTIFACT_PIN"; return 1; }
  fi
  log "$name: compiling (the longest part; nothing is printed meanwhile)"
  go build -trimpath -ldflags "-s -w" -o "$OUT/$name.tmp" .
  rm -rf "$OUT/crds/$name"
  cp -r config/crd/bases "$OUT/crds/$name"
  mv "$OUT/$name.tmp" "$OUT/$name"
  log "$name: ready in $((SECONDS - started)) s"
}

log "building ${CONTROLLERS[*]} $FLUX_VERSION into $OUT (about 4 minutes each when cold, in parallel)"
pids=()
for name in "${CONTROLLERS[@]}"; do
  if built "$name"; then
    log "$name: already built"
    continue
  fi
  (build "$name") &
  pids+=("$!")
done
failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=1
done
[ "$failed" = 0 ] || { log "a build failed (see above)"; exit 1; }

log "flux controllers ready in ${SECONDS} s"
echo "$OUT"
