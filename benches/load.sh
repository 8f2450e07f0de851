#!/usr/bin/env bash
# The load harness: one command, on a fresh machine.
#
#   bash benches/load.sh                      # 15 s per run; DURATION=60s for longer runs
#
# Builds release, starts `jitguard serve` over TLS with the shipped policy pack and a
# 10 000-grant file, and drives it with oha (installed from crates.io into target/tools
# if missing) at 16 and 64 keep-alive connections on loopback. In the same run it measures
# two references on the same inputs, so that the figures are ratios that hold on a noisy
# machine:
#   - the ceiling: `jitguard bench-ceiling`, the same binary, TLS stack, allocator and
#     certificate type, parsing the AdmissionReview and answering allowed;
#   - the reference engine: OPA's Go evaluator (../shared/tools/opa-eval) on the same
#     policies and input, against jitguard's own evaluation of them.
# Then it sweeps the offered load (open loop, oha -q with latency correction) from 10% to
# 125% of the measured maximum and plots latency percentiles against it
# (target/load/latency.svg, drawn by benches/plot_latency.py).
# Prints requests/s, p50/p99/p99.9, errors and RSS, and writes everything to target/load/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/load
DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-"16 64"}
BODY=${BODY:-tests/fixtures/admission/pod-create-prod.json}
GRANTS=${GRANTS:-10000}
OPA_EVAL=${JITGUARD_OPA_EVAL:-../shared/tools/opa-eval}
mkdir -p "$OUT"

echo "== build (release)"
cargo build --release --quiet --bin jitguard
BIN=$ROOT/target/release/jitguard

OHA=$(command -v oha || true)
if [ -z "$OHA" ]; then
  OHA=$ROOT/target/tools/oha/bin/oha
  if [ ! -x "$OHA" ]; then
    echo "== installing oha (crates.io) into target/tools/oha"
    cargo install --quiet --locked --root "$ROOT/target/tools/oha" oha@1.12.0
  fi
fi

echo "== certificate, $GRANTS-grant file"
"$BIN" certs --out "$OUT/certs" >/dev/null
python3 - "$GRANTS" > "$OUT/grants.yaml" <<'PY'
import sys, datetime
n = int(sys.argv[1])
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
start = (now - datetime.timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
end = (now + datetime.timedelta(hours=8)).isoformat().replace("+00:00", "Z")
for i in range(n):
    print(f"""apiVersion: jitguard.dev/v1alpha1
kind: AccessRequest
metadata: {{name: load-{i}}}
spec:
  requester: user-{i}@example.com
  scope: [{{operations: [CREATE, UPDATE], apiGroups: [""], resources: [pods], namespaces: [team-{i % 100}]}}]
  reason: load test
  duration: 8h
status: {{phase: Approved, approvedAt: "{start}", expiresAt: "{end}"}}
---""")
PY

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_ready() { # URL PID LOG
  for _ in $(seq 1 300); do
    if curl -fsk -o /dev/null "$1"; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then echo "it exited:" >&2; cat "$3" >&2; return 1; fi
    sleep 0.1
  done
  echo "not ready: $1" >&2; cat "$3" >&2; return 1
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# oha's JSON summary → one line: rps p50 p99 p99.9 (ms) errors 503s
drive() { # NAME URL CONNECTIONS [oha options...]
  local name=$1 url=$2 conns=$3
  shift 3
  local json=$OUT/$name-c$conns.json
  "$OHA" --no-tui --output-format json -z "${RUN_DURATION:-$DURATION}" -c "$conns" --insecure -m POST \
    -H 'Content-Type: application/json' -D "$BODY" "$@" "$url" > "$json"
  python3 - "$json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s = d["summary"]; p = d["latencyPercentiles"]
codes = d.get("statusCodeDistribution", {})
# Requests cut off by the end of the run are oha's, not the server's.
errors = sum(v for k, v in d.get("errorDistribution", {}).items() if k != "aborted due to deadline")
errors += sum(v for k, v in codes.items() if k not in ("200", "503"))
overloaded = codes.get("503", 0)
ms = lambda x: (x or 0) * 1000
print(f'{s["requestsPerSec"]:.0f} {ms(p.get("p50")):.2f} {ms(p.get("p99")):.2f} {ms(p.get("p99.9")):.2f} {errors} {overloaded}')
PY
}

echo "== jitguard serve"
"$BIN" serve --addr 127.0.0.1:18443 --metrics-addr 127.0.0.1:19090 --policies policies \
  --grants "$OUT/grants.yaml" --tls-cert "$OUT/certs/tls.crt" --tls-key "$OUT/certs/tls.key" \
  --log warn > "$OUT/serve.log" 2>&1 &
SERVE=$!; PIDS+=("$SERVE")
wait_ready http://127.0.0.1:19090/readyz "$SERVE" "$OUT/serve.log"
sleep 1
IDLE_RSS=$(rss_kib "$SERVE")

echo "== ceiling"
"$BIN" bench-ceiling --addr 127.0.0.1:18444 --tls-cert "$OUT/certs/tls.crt" \
  --tls-key "$OUT/certs/tls.key" > "$OUT/ceiling.log" 2>&1 &
CEILING=$!; PIDS+=("$CEILING")
sleep 0.5

declare -A R
for c in $CONNECTIONS; do
  echo "-- $c connections, $DURATION each"
  R[ceiling-$c]=$(drive ceiling https://127.0.0.1:18444/validate "$c")
  R[serve-$c]=$(drive serve https://127.0.0.1:18443/validate "$c")
done
PEAK_RSS=$(hwm_kib "$SERVE")

# Overload: far more concurrent requests than workers plus queue (--queue 256): the
# excess must get fast 503s, and memory must stay bounded by that cap.
echo "-- overload: 1024 connections, $DURATION"
R[overload]=$(drive serve https://127.0.0.1:18443/validate 1024)
OVERLOAD_RSS=$(hwm_kib "$SERVE")

# Latency against load: open loop at fixed rates (oha -q, corrected for coordinated
# omission) from 10% to 125% of the maximum measured at 16 connections, over 16
# connections. Each run opens its connections first: at low rates and short runs those
# handshakes are a visible share of the requests, hence 10 s per rate.
FIRST=${CONNECTIONS%% *}
read -r MAX _ <<< "${R[serve-16]:-${R[serve-$FIRST]}}"
SWEEP=$OUT/sweep.txt
: > "$SWEEP"
echo "-- latency against offered load, ${SWEEP_DURATION:-10s} per rate"
for pct in ${SWEEP_PERCENT:-10 25 50 75 90 100 110 125}; do
  rate=$(( MAX * pct / 100 ))
  [ "$rate" -gt 0 ] || continue
  line=$(RUN_DURATION=${SWEEP_DURATION:-10s} drive "sweep-$pct" https://127.0.0.1:18443/validate 16 -q "$rate" --latency-correction)
  echo "$rate $line" >> "$SWEEP"
done
python3 benches/plot_latency.py "$SWEEP" "$MAX" "$OUT/latency.svg" || echo "no latency plot (see above)" >&2

# Full handshakes: one new connection per request, no resumption (as the API server),
# against the ceiling so that no policy evaluation is counted: its CPU per request is
# the handshake plus a parse.
HS_REQUESTS=2000
CPU0=$(awk '{print $14+$15}' "/proc/$CEILING/stat")
"$OHA" --no-tui --output-format json -n "$HS_REQUESTS" -c 4 --insecure --disable-keepalive -m POST \
  -H 'Content-Type: application/json' -D "$BODY" \
  https://127.0.0.1:18444/validate > "$OUT/handshakes.json"
CPU1=$(awk '{print $14+$15}' "/proc/$CEILING/stat")
TICKS=$(getconf CLK_TCK)

echo "== evaluation: jitguard vs the OPA Go engine, same policies and input"
rm -rf "$OUT/inputs" && mkdir -p "$OUT/inputs"
N=500
# The input exactly as jitguard's policies see it (with input.jit: the time, grants and
# namespace labels), at a fixed moment so both engines evaluate the same change window.
AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
"$BIN" dry-run -f "$BODY" --policies policies --at "$AT" -o input > "$OUT/input.json" || [ $? -eq 1 ]
for i in $(seq 1 $N); do cp "$OUT/input.json" "$OUT/inputs/r$i.json"; done
t() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s%N); echo $(( (e - s) / 1000 )); }
J1=$(t "$BIN" dry-run -f "$OUT/inputs/r1.json" --policies policies --at "$AT")
JN=$(t "$BIN" dry-run -f "$OUT/inputs" --policies policies --at "$AT")
OPA_LINE="not measured: $OPA_EVAL is missing"
if [ -x "$OPA_EVAL" ]; then
  # The served policies only: under `-q jitguard` OPA would also evaluate every test_*
  # rule of the *_test.rego files, which jitguard never serves.
  rm -rf "$OUT/opa-policies" && mkdir -p "$OUT/opa-policies"
  (cd policies && find jitguard -type f ! -name '*_test.rego' -exec cp --parents {} "$OUT/opa-policies/" \;)
  O1=$(t "$OPA_EVAL" batch -p "$OUT/opa-policies" -q jitguard "$OUT/inputs/r1.json")
  ON=$(t "$OPA_EVAL" batch -p "$OUT/opa-policies" -q jitguard "$OUT"/inputs/r*.json)
  # The bindings prepare the query on every call; the same inputs with a query that
  # evaluates nothing (a data lookup) measure that overhead, which is taken out.
  OT=$(t "$OPA_EVAL" batch -p "$OUT/opa-policies" -q jitguard.config.protected "$OUT"/inputs/r*.json)
  OPA_US=$(( (ON - O1) / (N - 1) ))
  OPA_EVAL_US=$(( (ON - OT) / N ))
  OPA_LINE="$OPA_US µs per input, of which the pack's evaluation (minus a data lookup's cost) $OPA_EVAL_US µs"
fi
JIT_US=$(( (JN - J1) / (N - 1) ))

echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); load generator on the same machine"
echo "body: $BODY; grants cached: $GRANTS; duration per run: $DURATION"
printf '%-10s %5s %10s %9s %9s %9s %7s %s\n' server conns req/s p50_ms p99_ms p99.9_ms errors "of ceiling"
for c in $CONNECTIONS; do
  read -r crps c50 c99 c999 cerr _ <<< "${R[ceiling-$c]}"
  read -r srps s50 s99 s999 serr _ <<< "${R[serve-$c]}"
  printf '%-10s %5s %10s %9s %9s %9s %7s\n' ceiling "$c" "$crps" "$c50" "$c99" "$c999" "$cerr"
  printf '%-10s %5s %10s %9s %9s %9s %7s %s%%\n' serve "$c" "$srps" "$s50" "$s99" "$s999" "$serr" "$(( srps * 100 / (crps > 0 ? crps : 1) ))"
done
read -r orps o50 o99 o999 oerr o503 <<< "${R[overload]}"
echo "overload (1024 connections): $orps answers/s of which $o503 were 503 in total; p50 $o50 ms, p99 $o99 ms, p99.9 $o999 ms; other errors $oerr; peak RSS $(( OVERLOAD_RSS / 1024 )) MiB"
echo "serve RSS: idle $(( IDLE_RSS / 1024 )) MiB with the pack and $GRANTS grants loaded; peak $(( PEAK_RSS / 1024 )) MiB under the 16/64-connection runs"
echo "full TLS handshakes (ECDSA P-256, no resumption): $(( (CPU1 - CPU0) * 1000000 / TICKS / HS_REQUESTS )) µs of server CPU per new connection (ceiling: handshake + parse)"
echo "latency against offered load (16 connections, open loop): $OUT/latency.svg"
printf '  %8s %8s %8s %9s %9s %5s\n' offered req/s p50_ms p99_ms p99.9_ms 503s
while read -r rate rps p50 p99 p999 _ o503; do
  printf '  %8s %8s %8s %9s %9s %5s\n' "$rate" "$rps" "$p50" "$p99" "$p999" "$o503"
done < "$SWEEP"
echo "per input, $N copies in one process: jitguard dry-run (parse, grants, evaluation, answer) $JIT_US µs; OPA Go engine through opa-eval batch (evaluation plus whatever its bindings do per input) $OPA_LINE"
