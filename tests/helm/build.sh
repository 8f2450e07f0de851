#!/usr/bin/env bash
# Builds Helm's command (v3) from its Go module into target/helm/bin/helm, to lint,
# render and install charts/jitguard in the tests. Nothing prebuilt is downloaded: the Go
# module proxy serves sources and this machine's Go compiles them. Reused while go.mod,
# go.sum and this script are unchanged.
#
#   bash tests/helm/build.sh        # build if needed, print the binary's path
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${JITGUARD_HELM_BIN:-$root/target/helm/bin}"
command -v go >/dev/null 2>&1 || {
  echo "build.sh: building Helm needs Go 1.24 or newer on PATH (go.dev/doc/install)." >&2
  exit 3
}
stamp="$(cat "$here/go.mod" "$here/go.sum" "$0" | sha256sum | cut -d' ' -f1)"
mkdir -p "$bin"
# One build at a time; the others wait, then reuse it.
exec 9>"$bin/.lock"
flock 9
if [ -f "$bin/.stamp" ] && [ "$(cat "$bin/.stamp")" = "$stamp" ] && [ -x "$bin/helm" ]; then
  echo "$bin/helm"
  exit 0
fi
rm -f "$bin/.stamp"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
version="$(awk '$1 == "helm.sh/helm/v3" { print $2; exit } $2 == "helm.sh/helm/v3" { print $3; exit }' "$here/go.mod")"
cd "$here"
start=$(date +%s)
echo "build.sh: building helm $version into $bin" >&2
go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$version" -o "$bin/helm" helm.sh/helm/v3/cmd/helm
echo "build.sh: built in $(( $(date +%s) - start )) s" >&2
echo "$stamp" > "$bin/.stamp"
echo "$bin/helm"
