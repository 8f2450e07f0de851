#!/usr/bin/env bash
# Builds one Go command from its module, pinned by DIR/go.mod and go.sum, into BIN/NAME.
# Nothing prebuilt is downloaded: the Go module proxy serves sources and this machine's Go
# compiles them. Reused while go.mod, go.sum, the calling script and this one are
# unchanged (a stamp beside the binary records their hash); prints the binary's path.
#
#   gocmd.sh DIR BIN NAME MODULE PACKAGE LDFLAGS CALLER
#
# LDFLAGS may say {version} (the module's version in go.mod) and {v} (without its "v").
set -euo pipefail
dir=$1 bin=$2 name=$3 module=$4 package=$5 ldflags=$6 caller=$7
command -v go >/dev/null 2>&1 || {
  echo "$(basename "$caller"): building $name needs Go 1.24 or newer on PATH (go.dev/doc/install)." >&2
  exit 3
}
stamp="$(cat "$dir/go.mod" "$dir/go.sum" "$caller" "$0" | sha256sum | cut -d' ' -f1)"
mkdir -p "$bin"
# One build at a time; the others wait, then reuse it.
exec 9>"$bin/.lock"
flock 9
if [ -f "$bin/.stamp" ] && [ "$(cat "$bin/.stamp")" = "$stamp" ] && [ -x "$bin/$name" ]; then
  echo "$bin/$name"
  exit 0
fi
rm -f "$bin/.stamp"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
version="$(awk -v m="$module" '$1 == m { print $2; exit } $2 == m { print $3; exit }' "$dir/go.mod")"
ldflags=${ldflags//\{version\}/$version}
ldflags=${ldflags//\{v\}/${version#v}}
cd "$dir"
start=$(date +%s)
echo "$(basename "$caller"): building $name $version into $bin" >&2
go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/$name" "$package"
echo "$(basename "$caller"): built in $(( $(date +%s) - start )) s" >&2
echo "$stamp" > "$bin/.stamp"
echo "$bin/$name"
