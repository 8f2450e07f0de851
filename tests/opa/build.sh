#!/usr/bin/env bash
# Builds OPA's command (v1.20, the version ../shared/tools/opa-eval embeds) from its Go
# module into target/opa/bin/opa, for checking Gatekeeper templates' Rego v0 under OPA
# (`opa eval --v0-compatible`). Nothing prebuilt is downloaded: the Go module proxy serves
# sources and this machine's Go compiles them. Reused while go.mod, go.sum and this script
# are unchanged.
#
#   bash tests/opa/build.sh        # build if needed, print the binary's path
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${JITGUARD_OPA_BIN:-$root/target/opa/bin}"
command -v go >/dev/null 2>&1 || {
  echo "build.sh: building OPA needs Go 1.24 or newer on PATH (go.dev/doc/install)." >&2
  exit 3
}
stamp="$(cat "$here/go.mod" "$here/go.sum" "$0" | sha256sum | cut -d' ' -f1)"
mkdir -p "$bin"
# One build at a time; the others wait, then reuse it.
exec 9>"$bin/.lock"
flock 9
if [ -f "$bin/.stamp" ] && [ "$(cat "$bin/.stamp")" = "$stamp" ] && [ -x "$bin/opa" ]; then
  echo "$bin/opa"
  exit 0
fi
rm -f "$bin/.stamp"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
version="$(awk '$1 == "github.com/open-policy-agent/opa" { print $2; exit } $2 == "github.com/open-policy-agent/opa" { print $3; exit }' "$here/go.mod")"
cd "$here"
start=$(date +%s)
echo "build.sh: building opa $version into $bin" >&2
go build -trimpath -ldflags "-s -w -X github.com/open-policy-agent/opa/v1/version.Version=${version#v}" -o "$bin/opa" github.com/open-policy-agent/opa
echo "build.sh: built in $(( $(date +%s) - start )) s" >&2
echo "$stamp" > "$bin/.stamp"
echo "$bin/opa"
