#!/usr/bin/env bash
# Builds OPA's command (v1.20, the version ../shared/tools/opa-eval embeds) from its Go
# module into target/opa/bin/opa, for checking Gatekeeper templates' Rego v0 under OPA
# (`opa eval --v0-compatible`). See tests/gocmd.sh.
#
#   bash tests/opa/build.sh        # build if needed, print the binary's path
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
exec bash "$here/../gocmd.sh" "$here" "${JITGUARD_OPA_BIN:-$root/target/opa/bin}" opa \
  github.com/open-policy-agent/opa github.com/open-policy-agent/opa \
  "-X github.com/open-policy-agent/opa/v1/version.Version={v}" "$here/build.sh"
