#!/usr/bin/env bash
# The claim on its own connection with plan_cache_mode = force_generic_plan against the build
# before it (BASE_BENCH: f6358e0), interleaved (base new, new base, ...), on one fresh
# durable-commit cluster, one run each after a CHECKPOINT: the 30,000-job burn-down with the
# defaults (no local queue), the 50,000-job burn-down with --prefetch 1000, and the
# enqueue-to-start latency.
#   bench/results/2026-11-29-generic-claim/pass.sh OUT_DIR BASE_BENCH   (from the repository
#   root, after cmake --build build/bench --target ergon_bench)
set -euo pipefail
source bench/pass-lib.sh
base=$2
pass_cluster "$1"
run() {  # FILE BUILD ARGS...: one run, its lines prefixed with the pass number and build
  local file=$1 b=$2 bin
  bin=$(pass_bin "$b")
  shift 2
  psql -X -q "$url" -c "CHECKPOINT"
  "$bin" --db "$url" --runs 1 "$@" 2>/dev/null | grep -E 'burn-down|^latency' |
    sed "s/^/$n $b /" | tee -a "$out/$file"
}
n=0
for order in "base new" "new base" "base new" "new base"; do
  for b in $order; do
    n=$((n + 1))
    run default.txt "$b" --only processing --jobs 30000
    run prefetch.txt "$b" --only processing --jobs 50000 --prefetch 1000
    run latency.txt "$b" --only latency
  done
done
