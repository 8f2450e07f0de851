#!/usr/bin/env bash
# Builds the e2e test bench's control plane from Go modules: kube-apiserver, kubectl and
# etcd, into target/e2e/bin. Nothing prebuilt is downloaded: the Go module proxy serves
# sources, and this machine's Go compiles them. The result is reused while go.mod, go.sum
# and this script are unchanged (a stamp beside the binaries records their hash).
#
#   bash tests/e2e/controlplane/build.sh        # build if needed, print the bin folder
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
bin="${JITGUARD_E2E_BIN:-$root/target/e2e/bin}"

# Kubernetes 1.34 needs Go 1.24; GOTOOLCHAIN=local below keeps go from fetching another.
need_go() {
  echo "build.sh: the e2e tests build kube-apiserver and etcd from source with Go 1.24 or newer; $1." >&2
  echo "build.sh: install Go 1.24+ (go.dev/doc/install; Debian 12's golang-go is 1.19, too old) and put it on PATH." >&2
  exit 3
}
command -v go >/dev/null 2>&1 || need_go "'go' is not on PATH"
go_minor="$(GOTOOLCHAIN=local go env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')"
[ "${go_minor:-0}" -ge 24 ] || need_go "this one is $(GOTOOLCHAIN=local go env GOVERSION)"

k8s_version="$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$here/go.mod")"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2; exit }' "$here/go.mod")"
stamp="$(cat "$here/go.mod" "$here/go.sum" "$0" | sha256sum | cut -d' ' -f1)"
mkdir -p "$bin"
# One build at a time (parallel tests each start a cluster); the others wait, then reuse it.
exec 9>"$bin/.lock"
flock 9
if [ -f "$bin/.stamp" ] && [ "$(cat "$bin/.stamp")" = "$stamp" ] \
  && [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kube-controller-manager" ] && [ -x "$bin/etcd" ] && [ -x "$bin/kubectl" ]; then
  echo "$bin"
  exit 0
fi

rm -f "$bin/.stamp"
# GOTOOLCHAIN=local: build with this machine's Go, never fetch another toolchain.
# CGO_ENABLED=0 and -trimpath: static, reproducible binaries, as Kubernetes releases them.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
major="${k8s_version#v}"; major="${major%%.*}"
minor="${k8s_version#v*.}"; minor="${minor%%.*}"
# kube-apiserver and kubectl report these at /version and in `kubectl version`; without
# them both say v0.0.0-master, and version skew checks cannot be read.
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$k8s_version -X $vpkg.gitMajor=$major -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version -X k8s.io/client-go/pkg/version.gitMajor=$major -X k8s.io/client-go/pkg/version.gitMinor=$minor"

cd "$here"
start=$(date +%s)
echo "build.sh: building kube-apiserver, kube-controller-manager and kubectl $k8s_version, etcd $etcd_version into $bin" >&2
go build -trimpath -ldflags "$ldflags" -o "$bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
go build -trimpath -ldflags "$ldflags" -o "$bin/kubectl" k8s.io/kubernetes/cmd/kubectl
# cluster.sh runs only a few of its controllers: RBAC role aggregation (without it the
# built-in edit role has no rules), default ServiceAccounts, garbage collection.
go build -trimpath -ldflags "$ldflags" -o "$bin/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager
# etcd's server module is itself the main package (it calls etcdmain.Main).
go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3
echo "build.sh: built in $(( $(date +%s) - start )) s" >&2
echo "$stamp" > "$bin/.stamp"
echo "$bin"
