#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for a fixed number of executions and prints
# the executions, corpus size and time per target. Exits non-zero if any target crashed;
# the crashing input is in fuzz/artifacts/<target>/.
#
#   fuzz/run.sh                      # every target, RUNS executions each (default 200000)
#   RUNS=1000000 fuzz/run.sh logql_parse label_string
#   RUNS_wal_replay=50000 fuzz/run.sh  # per-target override
#
# The project's toolchain is stable; cargo fuzz needs -Zsanitizer, which stable accepts
# with RUSTC_BOOTSTRAP=1. `cargo +nightly fuzz ...` works too where a nightly is installed.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1

ALL=(push_protobuf push_json push_gzip push_otlp label_string logql_parse chunk_decode wal_replay)
RUNS=${RUNS:-200000}
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${ALL[@]}"); fi

# -O: optimised, -a: debug assertions (integer overflow checks) on, as in tests.
cargo fuzz build -O -a >/dev/null

failed=0
printf '%-15s %12s %8s %8s  %s\n' target executions corpus seconds result
for t in "${targets[@]}"; do
  var="RUNS_$t"
  runs=${!var:-$RUNS}
  mkdir -p "corpus/$t" "logs"
  log="logs/$t.log"
  start=$(date +%s)
  # The first corpus directory receives new inputs; seeds/ stays as committed.
  if cargo fuzz run -O -a "$t" "corpus/$t" "seeds/$t" -- \
      -runs="$runs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1; then
    result=ok
  else
    result="CRASH (see $log and artifacts/$t/)"
    failed=1
  fi
  secs=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  corpus=$(ls "corpus/$t" | wc -l)
  printf '%-15s %12s %8s %8s  %s\n' "$t" "${execs:-?}" "$corpus" "$secs" "$result"
done
exit $failed
