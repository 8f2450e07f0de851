#!/usr/bin/env bash
# Builds Helm's command (v3) from its Go module into target/helm/bin/helm, to lint,
# render and install charts/jitguard in the tests. See tests/gocmd.sh.
#
#   bash tests/helm/build.sh        # build if needed, print the binary's path
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
exec bash "$here/../gocmd.sh" "$here" "${JITGUARD_HELM_BIN:-$root/target/helm/bin}" helm \
  helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm \
  "-X helm.sh/helm/v3/internal/version.version={version}" "$here/build.sh"
