#!/usr/bin/env bash
# Run a command against a fresh local control plane: starts it, exports KUBECONFIG and puts kubectl
# on PATH, runs "$@", stops the control plane whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
BIN="$(bash hack/build-controlplane.sh)"
workdir="$(mktemp -d "${TMPDIR:-/tmp}/hal9-local-cluster.XXXXXX")"
export PATH="$BIN:$PWD/$VENV/bin:$PATH"
export KUBECONFIG="$workdir/kubeconfig"

hal9-migration local-cluster up "$workdir" >"$workdir/cluster.log" 2>&1 &
cluster=$!
trap 'kill $cluster 2>/dev/null || true; wait $cluster 2>/dev/null || true; rm -rf "$workdir"' EXIT
for _ in $(seq 1 240); do
  grep -q "control plane ready" "$workdir/cluster.log" 2>/dev/null && break
  kill -0 "$cluster" 2>/dev/null || { cat "$workdir/cluster.log" >&2; exit 1; }
  sleep 0.5
done
grep -q "control plane ready" "$workdir/cluster.log" || { echo "control plane did not start" >&2; exit 1; }
"$@"
