#!/usr/bin/env bash
# The plain claim (no group walk while no grouped job is Pending) against the build before it
# (BASE_BENCH: 69fc90c), interleaved (base new, new base, ...), on one fresh durable-commit
# cluster: the 50,000-job burn-down with --prefetch 1000 and the enqueue-to-start latency, one
# run each, each after a CHECKPOINT.
#   bench/results/2026-11-29-plain-claim/pass.sh OUT_DIR BASE_BENCH   (from the repository
#   root, after cmake --build build/bench --target ergon_bench)
set -euo pipefail
source bench/pass-lib.sh
base=$2
pass_cluster "$1"
n=0
for order in "base new" "new base" "base new" "new base"; do
  for b in $order; do
    n=$((n + 1))
    bin=$(pass_bin "$b")
    psql -X -q "$url" -c "CHECKPOINT"
    printf '%s %s ' "$n" "$b" | tee -a "$out/processing.txt"
    "$bin" --db "$url" --only processing --jobs 50000 --prefetch 1000 --runs 1 2>/dev/null |
      grep 'burn-down' | tee -a "$out/processing.txt"
    psql -X -q "$url" -c "CHECKPOINT"
    printf '%s %s ' "$n" "$b" | tee -a "$out/latency.txt"
    "$bin" --db "$url" --only latency --runs 1 2>/dev/null | grep '^latency' |
      tr '\n' ' ' | tee -a "$out/latency.txt"
    echo | tee -a "$out/latency.txt"
  done
done
