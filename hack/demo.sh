#!/usr/bin/env bash
# The main job, end to end on a local control plane (real etcd + kube-apiserver, no Docker):
# install the CRDs (ours, Istio's, Gateway API's, SMI's), HAL9's two systems and their route
# objects, run the operator, and watch migrations walk, hold, walk back and stall with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."

# Re-run under a fresh local control plane unless we already have one.
if [ -z "${HAL9_DEMO_INSIDE:-}" ]; then
  echo "== Starting a local control plane (etcd, kube-apiserver, kube-controller-manager)"
  HAL9_DEMO_INSIDE=1 exec bash hack/with-local-cluster.sh bash "$0"
fi
DEMO_DIR="$PWD/.demo"
rm -rf "$DEMO_DIR" && mkdir -p "$DEMO_DIR"
operator="" stack="" load=""
stop_all() {
  local pid
  for pid in $load $operator $stack; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  true
}
trap stop_all EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
watch_for() { printf '$ kubectl get h9m -n hal9 -w   (for %ss)\n' "$1"; timeout "$1" kubectl get h9m -n hal9 -w || true; }
weights() {
  local vs_mirror gw_mirror
  vs_mirror="$(kubectl get -n hal9 virtualservice hal9 -o jsonpath='{.spec.http[?(@.name=="primary")].mirrorPercentage.value}')"
  gw_mirror="$(kubectl get -n hal9 httproute hal9 -o jsonpath='{.spec.rules[?(@.name=="primary")].filters[?(@.type=="RequestMirror")].requestMirror.percent}')"
  printf 'VirtualService hal9 (primary): flat/hierarchical %s, mirror %s%%\n' \
    "$(kubectl get -n hal9 virtualservice hal9 -o jsonpath='{.spec.http[?(@.name=="primary")].route[*].weight}')" "${vs_mirror:-0}"
  printf 'HTTPRoute hal9 (primary):       flat/hierarchical %s, mirror %s%%\n' \
    "$(kubectl get -n hal9 httproute hal9 -o jsonpath='{.spec.rules[?(@.name=="primary")].backendRefs[*].weight}')" "${gw_mirror:-0}"
}

show kubectl version

step "Installing the CRDs: Hal9Migration, and the real Istio, Gateway API and SMI ones"
show kubectl apply --server-side -f crds/
kubectl create -f tests/fixtures/third-party-crds/ >/dev/null
show kubectl wait --for=condition=Established crd --all --timeout=60s

step "HAL9's flat and hierarchical systems (stand-ins that really answer, run as pods by the node agent), and their route objects (all traffic on flat)"
show kubectl apply -f e2e/samples/hal9-standins.yaml -f e2e/samples/hal9-routes.yaml
show kubectl rollout status -n hal9 deployment/hal9-flat deployment/hal9-hierarchical --timeout=90s
weights

step "kubectl hal9 plan: the API server's verdict on a manifest (a server-side dry run, nothing stored) and every step ahead"
show kubectl hal9 plan e2e/samples/flat-to-hierarchical.yaml

step "A migration that no operator has seen yet reads as in progress (kstatus: not Current)"
show kubectl apply -f e2e/samples/flat-to-hierarchical.yaml
show kubectl get h9m -n hal9 flat-to-hierarchical -o jsonpath='{.status}{"\n"}'

step "Running the operator (log: .demo/operator.log)"
HAL9_RECHECK_SECONDS=5 hal9-migration run --namespace hal9 >"$DEMO_DIR/operator.log" 2>&1 &
operator=$!

step "Shadow (mirror) then Canary steps, on a VirtualService and an HTTPRoute, holding at trafficSplit"
show kubectl apply -f e2e/samples/via-gateway-api.yaml
watch_for 24
show kubectl wait -n hal9 --for=condition=Ready h9m/flat-to-hierarchical h9m/via-gateway-api --timeout=60s
weights
show kubectl get h9m -n hal9 -o wide
show kubectl hal9 list -n hal9 || true
show kubectl hal9 status flat-to-hierarchical -n hal9 || true

step "The match route the operator added for the targeting rule (internal users -> hierarchical)"
kubectl get -n hal9 virtualservice hal9 -o jsonpath='{range .spec.http[*]}{.name}{"\t"}{.match}{"\n"}{end}'

step "Rolling back is reverting the spec: back to Shadow, walked down 4 % every 2 s (Gradual)"
printf '$ kubectl apply (targetPhase: Shadow, no trafficSplit)\n'
sed 's/targetPhase: Canary/targetPhase: Shadow/; /trafficSplit:/d' e2e/samples/flat-to-hierarchical.yaml | kubectl apply -f -
watch_for 10
weights
show kubectl hal9 history flat-to-hierarchical -n hal9

step "A bad route reference stalls with its reason, and touches nothing"
show kubectl apply -f e2e/samples/bad-route.yaml
show kubectl wait -n hal9 --for=condition=Stalled h9m/bad-route --timeout=60s
show kubectl get h9m -n hal9 bad-route -o wide

step "Bad input is refused at admission (kubectl hal9 plan shows the same refusal before anything is applied)"
printf '$ kubectl apply (trafficSplit: 60 with targetPhase: Canary)\n'
sed 's/trafficSplit: 10/trafficSplit: 60/; s/name: flat-to-hierarchical/name: too-far/' \
  e2e/samples/flat-to-hierarchical.yaml | kubectl apply -f - || true
printf '$ kubectl hal9 plan - (the same manifest)\n'
sed 's/trafficSplit: 10/trafficSplit: 60/; s/name: flat-to-hierarchical/name: too-far/' \
  e2e/samples/flat-to-hierarchical.yaml | kubectl hal9 plan - || true

step "A rehearsal: the whole walk to Full on the VirtualService flat-to-hierarchical drives, writing nothing"
show kubectl hal9 plan e2e/samples/rehearsal.yaml
weights
show kubectl apply -f e2e/samples/rehearsal.yaml
show kubectl wait -n hal9 --for=condition=Ready h9m/rehearsal --timeout=60s
weights
show kubectl hal9 history rehearsal -n hal9
show kubectl get jobs -n hal9

step "All five phases: the state migration runs as a real Indexed Job (pods run by the node agent)"
show hal9-migration seed-state --url "sqlite:///$DEMO_DIR/flat.db" --count 100000 --seed 9
# The URLs go into Secrets; the Job's pods get them as secretKeyRef env, never as arguments.
kubectl create secret generic hal9-flat-db -n hal9 --from-literal=url="sqlite:///$DEMO_DIR/flat.db" >/dev/null
kubectl create secret generic hal9-hier-db -n hal9 --from-literal=url="sqlite:///$DEMO_DIR/hier.db" >/dev/null
show kubectl apply -f e2e/samples/all-five-phases.yaml
printf '$ kubectl get h9m -n hal9 all-five-phases -w   (until Ready: STATE %% rises, then RampUp and Full)\n'
kubectl get h9m -n hal9 all-five-phases -w &
watcher=$!
kubectl wait -n hal9 --for=condition=Ready h9m/all-five-phases --timeout=300s >/dev/null
kill "$watcher" 2>/dev/null || true
show kubectl get jobs,pods -n hal9 -l app.kubernetes.io/component=state-migration
show kubectl hal9 status all-five-phases -n hal9 || true
show kubectl hal9 history all-five-phases -n hal9

step "Real traffic: Envoy Gateway + a real Envoy in front of the stand-ins, Prometheus scraping them"
python -m hal9_migration.testing.trafficstack "$DEMO_DIR/traffic" --namespace hal9 \
  --listener-port 18080 --prometheus-port 19090 >"$DEMO_DIR/traffic.log" 2>&1 &
stack=$!
for _ in $(seq 1 240); do [ -f "$DEMO_DIR/traffic/ready" ] && break; kill -0 $stack 2>/dev/null || break; sleep 0.5; done
[ -f "$DEMO_DIR/traffic/ready" ] || { cat "$DEMO_DIR/traffic.log"; exit 1; }
cat "$DEMO_DIR/traffic/ready"
show kubectl apply -f e2e/samples/on-real-traffic.yaml
printf '$ python -m hal9_migration.testing.loadgen http://127.0.0.1:18080/process --rate 40 --duration 600 &\n'
python -m hal9_migration.testing.loadgen http://127.0.0.1:18080/process --rate 40 --duration 600 \
  >"$DEMO_DIR/load.json" 2>&1 &
load=$!
printf '$ kubectl get h9m -n hal9 on-real-traffic -w   (until Ready: every step passes on Prometheus queries)\n'
kubectl get h9m -n hal9 on-real-traffic -w &
watcher=$!
kubectl wait -n hal9 --for=condition=Ready h9m/on-real-traffic --timeout=180s >/dev/null
kill "$watcher" 2>/dev/null || true
show kubectl hal9 status on-real-traffic -n hal9 || true

step "One command makes hierarchical fail; the analysis fails and the operator rolls back by itself"
show kubectl set env -n hal9 deployment/hal9-hierarchical HAL9_ERROR_RATE=0.3
printf '$ kubectl get h9m -n hal9 on-real-traffic -w   (until Stalled: rolled back, Gradual 10 %% every 2 s)\n'
kubectl get h9m -n hal9 on-real-traffic -w &
watcher=$!
kubectl wait -n hal9 --for=condition=Stalled h9m/on-real-traffic --timeout=120s >/dev/null
kubectl wait -n hal9 --for=jsonpath='{.status.weight}'=0 h9m/on-real-traffic --timeout=60s >/dev/null
kill "$watcher" 2>/dev/null || true
printf '$ kubectl hal9 status on-real-traffic -n hal9   (exit code 2: needs a person)\n'
kubectl hal9 status on-real-traffic -n hal9 || echo "exit code $?"

step "Git re-applies the failed spec (as Argo CD self-heal would): the operator holds at the safe weight"
show kubectl apply -f e2e/samples/on-real-traffic.yaml
sleep 4
show kubectl get httproute -n hal9 hal9-live -o jsonpath='{.spec.rules[?(@.name=="primary")].backendRefs[*].weight}{"\n"}'
show kubectl get h9m -n hal9 on-real-traffic -o jsonpath='{.status.conditions[?(@.type=="Stalled")].message}{"\n"}'
kill "$load" 2>/dev/null || true
load=""

step "Events"
show kubectl get events -n hal9 --field-selector involvedObject.kind=Hal9Migration \
  -o custom-columns='TYPE:.type,REASON:.reason,OBJECT:.involvedObject.name,MESSAGE:.message'

step "Done"
