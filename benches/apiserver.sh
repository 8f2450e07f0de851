#!/usr/bin/env bash
# What jitguard adds to real requests through kube-apiserver: 500 ConfigMap creates by 16
# concurrent clients (N and C to change them) as alice, in dev and (under a live grant) in prod, with jitguard's
# webhooks registered and then without them, on the e2e control plane
# (tests/e2e/cluster.sh, release build of jitguard). Results: target/e2e/bench/latency.jsonl.
#
#   bash benches/apiserver.sh            # N=500 C=16 by default
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export JITGUARD_E2E_DIR="$root/target/e2e/bench"
n="${N:-500}"; c="${C:-16}"
cluster="$root/tests/e2e/cluster.sh"

bash "$cluster" down >/dev/null 2>&1 || true
trap 'bash "$cluster" down >/dev/null 2>&1 || true' EXIT
bash "$cluster" up >/dev/null
# shellcheck disable=SC1091 # written by cluster.sh up
source "$JITGUARD_E2E_DIR/run/env"
run="$JITGUARD_E2E_DIR/run"
k() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_USERS" "$@"; }
jit() { "$JITGUARD_BIN" jit --kubeconfig "$KUBECONFIG_USERS" "$@"; }

# alice's grant for ConfigMaps in prod, approved by a team lead and security.
jit --context alice request --request-name bench --namespace prod --resource configmaps \
  --operation CREATE --duration 1h --reason "latency bench" --ticket BENCH-1 >/dev/null
jit --context bob approve bench >/dev/null
jit --context sam approve bench >/dev/null
for _ in $(seq 1 120); do
  [ "$(k --context admin get accessrequest bench -o jsonpath='{.status.phase}')" = Approved ] && break
  sleep 0.5
done

out="$JITGUARD_E2E_DIR/latency.jsonl"
: >"$out"
measure() { # LABEL NAMESPACE PREFIX
  # A warm-up round first (connections, caches), not counted.
  python3 "$root/benches/apiserver_latency.py" --server "$APISERVER" --ca "$run/pki/apiserver/ca.pem" \
    --token "$run/token-alice" --namespace "$2" --prefix "$3-warm" -n 100 -c "$c" >/dev/null || true
  python3 "$root/benches/apiserver_latency.py" --server "$APISERVER" --ca "$run/pki/apiserver/ca.pem" \
    --token "$run/token-alice" --namespace "$2" --prefix "$3" -n "$n" -c "$c" |
    python3 -c "import json,sys; d=json.load(sys.stdin); d['case']='$1'; print(json.dumps(d))" | tee -a "$out"
}

measure "jitguard registered, dev" dev reg
measure "jitguard registered, prod under a grant" prod reg
# jitguard's own time per review, arrival to answer, from its histogram (both rounds above
# and their warm-ups).
curl -fsS "$JITGUARD_METRICS/metrics" | python3 -c '
import re, sys
sums, counts = {}, {}
for line in sys.stdin:
    m = re.match(r"jitguard_admission_duration_seconds_(sum|count)\{webhook=\"(\w+)\"\} (\S+)", line)
    if m:
        (sums if m.group(1) == "sum" else counts)[m.group(2)] = float(m.group(3))
for w in sorted(counts):
    print(f"jitguard own time, {w}: {counts[w]:.0f} reviews, mean {1000 * sums[w] / counts[w]:.2f} ms")
' | tee "$JITGUARD_E2E_DIR/own-time.txt"
k --context admin delete validatingwebhookconfiguration jitguard >/dev/null
k --context admin delete mutatingwebhookconfiguration jitguard >/dev/null
measure "no webhooks, dev" dev unreg
measure "no webhooks, prod" prod unreg

echo
python3 - "$out" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"| {'case':42} | count | fail | p50 ms | p90 ms | p99 ms | req/s |")
print(f"|{'-'*44}|-------|------|--------|--------|--------|-------|")
for r in rows:
    print(f"| {r['case']:42} | {r['count']:5} | {r['failures']:4} | {r['p50_ms']:6} | {r['p90_ms']:6} | {r['p99_ms']:6} | {r['req_per_s']:5} |")
EOF
