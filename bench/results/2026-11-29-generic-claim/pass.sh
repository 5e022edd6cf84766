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
n=0
for order in "base new" "new base" "base new" "new base"; do
  for b in $order; do
    n=$((n + 1))
    pass_checkpoint
    pass_run default.txt "$b" "$url" --only processing --jobs 30000
    pass_checkpoint
    pass_run prefetch.txt "$b" "$url" --only processing --jobs 50000 --prefetch 1000
    pass_checkpoint
    pass_run latency.txt "$b" "$url" --only latency
  done
done
