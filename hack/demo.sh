#!/usr/bin/env bash
# The main job, end to end on a local control plane (real etcd + kube-apiserver, no Docker):
# install the CRD and a HAL9 pair of Deployments/Services, run the operator, apply the sample
# migrations and show what a user sees.
set -euo pipefail
cd "$(dirname "$0")/.."

# Re-run under a fresh local control plane unless we already have one.
if [ -z "${HAL9_DEMO_INSIDE:-}" ]; then
  echo "== Starting a local control plane (etcd, kube-apiserver, kube-controller-manager)"
  HAL9_DEMO_INSIDE=1 exec bash hack/with-local-cluster.sh bash "$0"
fi
DEMO_DIR="$PWD/.demo"
rm -rf "$DEMO_DIR" && mkdir -p "$DEMO_DIR"
operator=""
trap '[ -n "$operator" ] && kill $operator 2>/dev/null; true' EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

show kubectl version

step "Installing the Hal9Migration CRD and HAL9's flat and hierarchical workloads"
show kubectl apply -f crds/
show kubectl wait --for=condition=Established crd/hal9migrations.migration.hal9.ai --timeout=60s
show kubectl apply -f e2e/samples/hal9-workloads.yaml

step "Running the operator (log: .demo/operator.log)"
HAL9_RECHECK_SECONDS=2 hal9-migration run --namespace hal9 >"$DEMO_DIR/operator.log" 2>&1 &
operator=$!

step "Applying the sample migrations"
show kubectl apply -f e2e/samples/flat-to-hierarchical.yaml -f e2e/samples/missing-references.yaml
show kubectl wait -n hal9 --for=condition=Ready h9m/flat-to-hierarchical --timeout=60s
show kubectl wait -n hal9 --for=condition=Stalled h9m/missing-references --timeout=60s

step "What a user sees"
show kubectl get h9m -n hal9
show kubectl get h9m -n hal9 -o wide
show kubectl get h9m -n hal9 -o custom-columns='NAME:.metadata.name,GEN:.metadata.generation,OBSERVED:.status.observedGeneration,CONDITIONS:.status.conditions[*].type,STATUS:.status.conditions[*].status'
show kubectl get events -n hal9 --field-selector involvedObject.kind=Hal9Migration \
  -o custom-columns='TYPE:.type,REASON:.reason,OBJECT:.involvedObject.name,MESSAGE:.message'

step "Bad input is refused at admission"
printf '$ kubectl apply (trafficSplit: 60 with targetPhase: Canary)\n'
sed 's/trafficSplit: 10/trafficSplit: 60/; s/name: flat-to-hierarchical/name: too-far/' \
  e2e/samples/flat-to-hierarchical.yaml | kubectl apply -f - || true

step "Fixing the missing references: the stalled migration becomes Ready"
kubectl -n hal9 create service clusterip hal9-flat-v0 --tcp=80:8080
kubectl -n hal9 create deployment hal9-flat-v0 --image=hal9:flat
show kubectl wait -n hal9 --for=condition=Ready h9m/missing-references --timeout=60s
show kubectl get h9m -n hal9

step "Done"
