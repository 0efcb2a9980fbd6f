#!/usr/bin/env bash
# Builds the real control plane (kube-apiserver, kube-controller-manager, kubectl, etcd) at the versions
# pinned in go.mod, once, into a cache outside the work tree. A second run with the same go.mod and go.sum
# does nothing. Prints the directory that holds the binaries on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

command -v go >/dev/null || { echo "control-plane: Go is not installed: install Go >= 1.24 (https://go.dev/dl) to build the real control plane" >&2; exit 3; }

k8s_version=$(awk '$1 == "k8s.io/kubernetes" { print $2 }' go.mod)
cache_root=${KTB_CONTROL_PLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-token-broker/control-plane}
out="$cache_root/$k8s_version"
# The stamp names the exact dependency set, so editing go.mod or go.sum rebuilds.
stamp_value=$(cat go.mod go.sum etcd/main.go | sha256sum | cut -d' ' -f1)
binaries=(kube-apiserver kube-controller-manager kubectl etcd)

complete=1
for b in "${binaries[@]}"; do [ -x "$out/$b" ] || complete=0; done
if [ "$complete" = 1 ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp_value" ]; then
  echo "control-plane: $k8s_version already built"
  echo "$out"
  exit 0
fi

mkdir -p "$out"
minor=$(echo "$k8s_version" | cut -d. -f2)
# The same version stamps Kubernetes' own build (hack/lib/version.sh) writes, so `kubectl version` and the
# apiserver's /version report the release instead of v0.0.0-master.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
export GOFLAGS=-mod=readonly CGO_ENABLED=0

build() {
  local name=$1 pkg=$2 started
  started=$(date +%s)
  go build -trimpath -ldflags "$ldflags" -o "$out/$name.partial" "$pkg"
  mv "$out/$name.partial" "$out/$name"
  echo "control-plane: built $name in $(( $(date +%s) - started )) s" >&2
}
build etcd ./etcd
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kubectl k8s.io/kubernetes/cmd/kubectl
echo "$stamp_value" > "$out/.stamp"
echo "$out"
