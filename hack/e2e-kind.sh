#!/usr/bin/env bash
# `make e2e-kind`, for users with Docker: the e2e/ scenarios on a kind cluster, driven by the operator
# installed from the chart with the image built here. Creates the cluster, builds and loads the image,
# installs the mesh CRDs the samples need and the chart (watching one namespace), runs e2e/run.sh
# there without a local operator (E2E_OPERATOR=cluster), and deletes the cluster on exit.
# Docker cannot run where this project is developed: this script is shellcheck-clean but has not run
# there; CI runs the same e2e/ scenarios on the local control plane (`make e2e`).
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER="${KIND_CLUSTER:-hal9-e2e}"
IMAGE_REPO=hal9-migration-operator
IMAGE_TAG=e2e-kind
export E2E_NAMESPACE="${E2E_NAMESPACE:-hal9-e2e}"
# helm from PATH, else the one hack/build-helm.sh builds (or finds) in the project's cache.
HELM="$(command -v helm || bash hack/build-helm.sh)"

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "e2e-kind: $tool is not on PATH" >&2; exit 1; }
done
[ -x "$HELM" ] || { echo "e2e-kind: no helm on PATH, and hack/build-helm.sh gave none" >&2; exit 1; }

KUBECONFIG="$(mktemp -d)/kubeconfig"
export KUBECONFIG
kind create cluster --name "$CLUSTER" --wait 120s
trap 'kind delete cluster --name "$CLUSTER"' EXIT

docker build -t "$IMAGE_REPO:$IMAGE_TAG" .
kind load docker-image "$IMAGE_REPO:$IMAGE_TAG" --name "$CLUSTER"

# Istio, Gateway API and SMI CRDs: kind has none of them (e2e/run.sh would create them too).
kubectl create -f tests/fixtures/third-party-crds/
kubectl create namespace "$E2E_NAMESPACE"
"$HELM" install hal9-migration-operator charts/hal9-migration-operator \
  --namespace hal9-system --create-namespace \
  --set image.repository="$IMAGE_REPO" --set image.tag="$IMAGE_TAG" --set image.pullPolicy=Never \
  --set "watchNamespaces={$E2E_NAMESPACE}" \
  --set extraEnv[0].name=HAL9_RECHECK_SECONDS --set-string extraEnv[0].value=2 \
  --wait --timeout 5m

E2E_OPERATOR=cluster bash e2e/run.sh
if kubectl logs -n hal9-system -l app.kubernetes.io/instance=hal9-migration-operator --tail=-1 | grep -q Traceback; then
  kubectl logs -n hal9-system -l app.kubernetes.io/instance=hal9-migration-operator --tail=-1 --prefix >&2
  echo "e2e-kind: the operator logged a traceback" >&2
  exit 1
fi
echo "e2e-kind: passed"
