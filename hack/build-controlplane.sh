#!/usr/bin/env bash
# Build the local control plane (etcd, kube-apiserver, kube-controller-manager, kubectl) from their Go
# modules with the machine's Go toolchain, into a cache outside the repository. Idempotent: a complete
# cache is reused. Prints the directory holding the binaries on its last line.
#
# Versions are paired as envtest pairs them (Kubernetes 1.34 with etcd 3.6).
set -euo pipefail

K8S_VERSION="${HAL9_K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${HAL9_ETCD_VERSION:-v3.6.16}"
CACHE_ROOT="${HAL9_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hal9-migration}"
OUT="$CACHE_ROOT/controlplane/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
BINARIES=(etcd kube-apiserver kube-controller-manager kubectl)

complete() {
  for b in "${BINARIES[@]}"; do [ -x "$OUT/$b" ] || return 1; done
}

if complete; then
  echo "$OUT"
  exit 0
fi

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
command -v go >/dev/null || { echo "build-controlplane: the Go toolchain is required (go not on PATH)" >&2; exit 1; }

mkdir -p "$OUT"
work="$(mktemp -d "${TMPDIR:-/tmp}/hal9-controlplane-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log() { echo "build-controlplane: $*" >&2; }

# --- etcd: go.etcd.io/etcd/server/v3 has `package main` at its module root but its go.mod carries
# replace directives, so `go install pkg@version` refuses; build it from a wrapper module instead.
if [ ! -x "$OUT/etcd" ]; then
  log "building etcd $ETCD_VERSION"
  mkdir -p "$work/etcd" && cd "$work/etcd"
  go mod init hal9.local/etcd-build >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$OUT/etcd.tmp" "$OUT/etcd"
fi

# --- Kubernetes: its go.mod requires every staging module at v0.0.0 and replaces them with ./staging
# paths that only exist inside its own repository. Replace each with the published v0.X.Y instead.
k8s_missing=0
for b in kube-apiserver kube-controller-manager kubectl; do [ -x "$OUT/$b" ] || k8s_missing=1; done
if [ "$k8s_missing" = 1 ]; then
  log "building kube-apiserver, kube-controller-manager, kubectl $K8S_VERSION"
  staging_version="v0.${K8S_VERSION#v1.}"
  mkdir -p "$work/k8s" && cd "$work/k8s"
  go mod init hal9.local/k8s-build >/dev/null 2>&1
  gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  [ -f "$gomod" ] || { log "could not download k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
  # Staging modules are the ones its go.mod replaces with ./staging/src/k8s.io/<name>.
  staging="$(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/src/.*#\1#p' "$gomod")"
  [ -n "$staging" ] || { log "found no staging modules in $gomod"; exit 1; }
  for m in $staging; do
    go mod edit -replace="$m=$m@$staging_version"
  done
  go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
  # Pin the version on every package path: a bare path would mean @upgrade, the newest Kubernetes.
  go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kube-controller-manager@$K8S_VERSION" "k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION" >&2
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags="$ldflags -X $pkg.gitTreeState=clean"
  done
  mkdir -p "$work/bin"
  go build -trimpath -ldflags "$ldflags" -o "$work/bin/" k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl
  for b in kube-apiserver kube-controller-manager kubectl; do mv "$work/bin/$b" "$OUT/$b"; done
fi

complete || { log "build finished but binaries are missing in $OUT"; exit 1; }
log "control plane binaries ready in ${SECONDS} s"
echo "$OUT"
