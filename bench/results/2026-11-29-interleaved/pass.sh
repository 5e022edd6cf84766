#!/usr/bin/env bash
# Build 6a391f8 (BASE_BENCH) against this build (b2ac145 when run, 09:24 UTC), interleaved (base new, new base, base new),
# one run each of the 50,000-job burn-down with --prefetch 1000, each after a CHECKPOINT from
# here (the base build's settle has none), on one fresh durable-commit cluster.
#   bench/results/2026-11-29-interleaved/pass.sh OUT_DIR BASE_BENCH   (from the repository
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
    printf '%s %s ' "$n" "$b" | tee -a "$out/interleaved.txt"
    "$bin" --db "$url" --only processing --jobs 50000 --prefetch 1000 --runs 1 2>/dev/null |
      grep 'burn-down' | tee -a "$out/interleaved.txt"
  done
done
