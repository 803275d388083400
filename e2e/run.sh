#!/usr/bin/env bash
# Whole-scenario check the way users work: kubectl and YAML against the cluster in $KUBECONFIG
# (kind, k3d, a real cluster, or the local control plane that `make e2e` starts). The operator runs
# as a local process against that cluster. Exits non-zero on the first expectation that fails.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${KUBECONFIG:?set KUBECONFIG to the cluster to test against}"
NS=hal9
log="$(mktemp -d)/operator.log"

kubectl apply -f crds/
kubectl wait --for=condition=Established crd/hal9migrations.migration.hal9.ai --timeout=60s
kubectl apply -f e2e/samples/hal9-workloads.yaml

HAL9_RECHECK_SECONDS=2 "${VENV:-.venv}/bin/hal9-migration" run --namespace "$NS" >"$log" 2>&1 &
operator=$!
# Delete the migrations while the operator runs: it removes its finalizer from each.
trap 'kubectl delete -n $NS h9m --all --timeout=30s >/dev/null 2>&1 || true; kill $operator 2>/dev/null || true' EXIT

kubectl apply -f e2e/samples/flat-to-hierarchical.yaml -f e2e/samples/missing-references.yaml
kubectl wait -n "$NS" --for=condition=Ready h9m/flat-to-hierarchical --timeout=60s
kubectl wait -n "$NS" --for=condition=Stalled h9m/missing-references --timeout=60s
reason="$(kubectl get -n "$NS" h9m/missing-references -o jsonpath='{.status.conditions[?(@.type=="Stalled")].reason}')"
[ "$reason" = ReferenceNotFound ] || { echo "e2e: Stalled reason is '$reason', want ReferenceNotFound" >&2; exit 1; }

if kubectl apply -f - >/dev/null 2>&1 < <(sed 's/trafficSplit: 10/trafficSplit: 60/; s/name: flat-to-hierarchical/name: too-far/' \
     e2e/samples/flat-to-hierarchical.yaml); then
  echo "e2e: a trafficSplit outside the Canary range was accepted" >&2; exit 1
fi
grep -q Traceback "$log" && { echo "e2e: the operator logged a traceback:" >&2; cat "$log" >&2; exit 1; }
echo "e2e: passed"
