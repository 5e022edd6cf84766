#!/usr/bin/env bash
# Single enqueue with coalesced wake-ups against the build before (BASE_BENCH: 0e05598), on one
# fresh durable-commit cluster, three turns of: bench/pgbench-ceiling.sh's insert_1 (one row
# and its pg_notify per transaction) and insert_1q (one row, no pg_notify) with 4 and with 16
# clients, 5 s each; then each build's single_enqueue with 4 threads and with 16 (and as many
# pooled connections), and its enqueue-to-start latency (base new, then new base).
#   bench/results/2026-11-29-coalesced/pass.sh OUT_DIR BASE_BENCH   (from the repository
#   root, after cmake --build build/bench --target ergon_bench)
set -euo pipefail
source bench/pass-lib.sh
base=$2
pass_cluster "$1"
n=0
for order in "base new" "new base" "base new"; do
  n=$((n + 1))
  for c in 4 16; do
    CLIENTS=$c VARIANTS="insert_1 insert_1q" bench/pgbench-ceiling.sh "$url" 5 |
      grep '^insert' | sed "s/^/$n $c-clients /" | tee -a "$out/ceiling.txt"
  done
  for b in $order; do
    for t in 4 16; do
      pass_run single-$t.txt "$b" "$url" --only single_enqueue --threads $t --pool-size $t
    done
    pass_run latency.txt "$b" "$url" --only latency
  done
done
