#!/usr/bin/env bash
# The controller's cost when nothing happens: CPU seconds jitguard's process uses in one
# idle minute while it holds N AccessRequests (10 000 by default), on the e2e control plane
# (tests/e2e/cluster.sh, release build of jitguard unless JITGUARD_BIN says otherwise).
# The requests are alice's, for ConfigMaps in prod: Pending, waiting for approvers, the
# state that needs the most attention from a controller.
#
#   bash benches/controller_idle.sh          # N=10000 SECS=60
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export JITGUARD_E2E_DIR="$root/target/e2e/bench-idle"
n="${N:-10000}"; secs="${SECS:-60}"
cluster="$root/tests/e2e/cluster.sh"

bash "$cluster" down >/dev/null 2>&1 || true
trap 'bash "$cluster" down >/dev/null 2>&1 || true' EXIT
bash "$cluster" up >/dev/null
# shellcheck disable=SC1091 # written by cluster.sh up
source "$JITGUARD_E2E_DIR/run/env"
run="$JITGUARD_E2E_DIR/run"
k() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_USERS" "$@"; }

python3 - "$n" >"$run/requests.yaml" <<'PY'
import json, sys
n = int(sys.argv[1])
items = [{
    "apiVersion": "jitguard.dev/v1alpha1", "kind": "AccessRequest",
    "metadata": {"name": f"idle-{i:05d}"},
    "spec": {"scope": [{"operations": ["CREATE"], "apiGroups": [""], "resources": ["configmaps"],
                        "namespaces": ["prod"]}],
             "reason": "controller idle bench", "ticket": "BENCH-1", "duration": "30m"},
} for i in range(n)]
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
PY
started=$(date +%s)
k --context alice create -f "$run/requests.yaml" >/dev/null
echo "created $n AccessRequests in $(( $(date +%s) - started )) s"
# Let the watches list them and the controller go over them once.
sleep 20

pid="$(awk '$1 == "jitguard" { p = $2 } END { print p }' "$run/pids")"
cpu() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
ticks=$(getconf CLK_TCK)
before=$(cpu)
sleep "$secs"
after=$(cpu)
python3 - "$before" "$after" "$ticks" "$secs" "$n" <<'PY'
import sys
before, after, ticks, secs, n = (float(x) for x in sys.argv[1:])
cpu = (after - before) / ticks
print(f"jitguard, idle, {n:.0f} AccessRequests: {cpu * 60 / secs:.2f} s CPU per minute "
      f"({100 * cpu / secs:.1f}% of one core)")
PY
