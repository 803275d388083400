#!/usr/bin/env bash
# Whole-scenario check the way users work: kubectl and YAML against the cluster in $KUBECONFIG
# (kind, k3d, a real cluster, or the local control plane that `make e2e` starts). The operator runs
# as a local process against that cluster, watching only a namespace of its own
# ($E2E_NAMESPACE, default hal9-e2e-<random>), which is deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${KUBECONFIG:?set KUBECONFIG to the cluster to test against}"
NS="${E2E_NAMESPACE:-hal9-e2e-$RANDOM$RANDOM}"
log="$(mktemp -d)/operator.log"
fail() { echo "e2e: $*" >&2; exit 1; }
# The samples live in namespace hal9; move them to ours.
render() { "${VENV:-.venv}/bin/python" e2e/in-namespace.py "$NS" "$@"; }

kubectl apply --server-side -f crds/
kubectl wait --for=condition=Established crd/hal9migrations.migration.hal9.ai --timeout=60s
# Istio, Gateway API and SMI CRDs: the cluster's own where installed, else the project's fixtures.
for crd in tests/fixtures/third-party-crds/*.yaml; do kubectl create -f "$crd" 2>/dev/null || true; done
kubectl wait --for=condition=Established crd/virtualservices.networking.istio.io crd/httproutes.gateway.networking.k8s.io --timeout=60s
render e2e/samples/hal9-workloads.yaml e2e/samples/hal9-routes.yaml | kubectl apply -f -

# E2E_OPERATOR=cluster: an operator already runs in the cluster, watching $E2E_NAMESPACE (make e2e-kind).
operator=""
if [ "${E2E_OPERATOR:-local}" = local ]; then
  HAL9_RECHECK_SECONDS=2 "${VENV:-.venv}/bin/hal9-migration" run --namespace "$NS" >"$log" 2>&1 &
  operator=$!
fi
# Delete the migrations while the operator runs (it removes its finalizer from each), then the rest.
cleanup() {
  kubectl delete -n "$NS" h9m --all --timeout=30s >/dev/null 2>&1 || true
  [ -z "$operator" ] || kill "$operator" 2>/dev/null || true
  kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

render e2e/samples/flat-to-hierarchical.yaml e2e/samples/missing-references.yaml | kubectl apply -f -
kubectl wait -n "$NS" --for=condition=Ready h9m/flat-to-hierarchical --timeout=90s
weights() { kubectl get -n "$NS" virtualservice hal9 -o jsonpath='{.spec.http[?(@.name=="primary")].route[*].weight}'; }
[ "$(weights)" = "90 10" ] || fail "VirtualService weights are '$(weights)', want '90 10' (Canary at trafficSplit 10)"
[ "$(kubectl get -n "$NS" h9m/flat-to-hierarchical -o jsonpath='{.status.phase}/{.status.weight}')" = Canary/10 ] \
  || fail "status does not say Canary/10"

# A spec revert (what `git revert` does): back to Shadow, walked down in Gradual steps.
render e2e/samples/flat-to-hierarchical.yaml | sed 's/targetPhase: Canary/targetPhase: Shadow/; /trafficSplit:/d' | kubectl apply -f -
for _ in $(seq 60); do
  reason="$(kubectl get -n "$NS" h9m/flat-to-hierarchical -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}')"
  [ "$reason" = RolledBack ] && break; sleep 1
done
[ "$reason" = RolledBack ] || fail "the revert did not walk back (Ready reason '$reason')"
[ "$(weights)" = "100 0" ] || fail "VirtualService weights after the revert are '$(weights)', want '100 0'"
kubectl wait -n "$NS" --for=condition=Stalled h9m/missing-references --timeout=60s
reason="$(kubectl get -n "$NS" h9m/missing-references -o jsonpath='{.status.conditions[?(@.type=="Stalled")].reason}')"
[ "$reason" = ReferenceNotFound ] || fail "Stalled reason is '$reason', want ReferenceNotFound"

rejected="$(render e2e/samples/flat-to-hierarchical.yaml \
  | sed 's/trafficSplit: 10/trafficSplit: 60/; s/name: flat-to-hierarchical/name: too-far/' \
  | kubectl apply -f - 2>&1)" && fail "a trafficSplit outside the Canary range was accepted"
grep -q "trafficSplit is outside the range of targetPhase Canary" <<<"$rejected" || fail "unexpected rejection: $rejected"

if [ -f "$log" ] && grep -q Traceback "$log"; then cat "$log" >&2; fail "the operator logged a traceback"; fi
echo "e2e: passed"
