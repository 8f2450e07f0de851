#!/usr/bin/env bash
# Instructions per policy evaluation, by fixture: deterministic, unlike time on a shared
# machine, so that a change to the pack or the engine can be compared run against run.
#
#   bash benches/instructions.sh [FIXTURE.json ...]     # needs valgrind (apt install valgrind)
#
# JITGUARD_POLICIES=DIR measures another policy folder; JITGUARD_SKIP=0 evaluates every
# package for every request (no skipping of the packages a request cannot concern).
#
# Runs benches/instructions.rs under callgrind at 10 and 30 evaluations per fixture and
# prints the difference divided by 20: start-up and the first evaluation cancel out.
set -euo pipefail
cd "$(dirname "$0")/.."
# As the jitguard binary does at startup: with library backtraces on (RUST_BACKTRACE=1),
# regorus's discarded internal errors would each walk the stack and be counted.
export RUST_LIB_BACKTRACE=0
if ! command -v valgrind >/dev/null; then
  echo "valgrind is missing: install it (Debian: apt-get install valgrind) and run again" >&2
  exit 2
fi
if [ $# -eq 0 ]; then
  set -- tests/fixtures/admission/pod-create-prod.json tests/fixtures/admission/pod-create-dev.json \
    tests/fixtures/admission/pod-exec-prod.json tests/fixtures/admission/pod-update-prod.json \
    tests/fixtures/admission/namespace-delete-prod.json policies/suites/reviews/ingress-remove-tls-dev.json
fi
BIN=$(cargo bench --bench instructions --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "instructions" and m.get("executable"):
        print(m["executable"])')
count() { # ITERATIONS FIXTURE
  JITGUARD_ITER=$1 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN" "$2" 2>&1 \
    | awk '/Collected/ {print $4}'
}
total=0
for f in "$@"; do
  low=$(count 10 "$f"); high=$(count 30 "$f")
  n=$(( (high - low) / 20 ))
  total=$(( total + n ))
  printf '%12s  %s\n' "$n" "$f"
done
printf '%12s  total\n' "$total"
