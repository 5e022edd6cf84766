#!/usr/bin/env bash
# The relative targets in one run, on one fresh durable-commit cluster: three rounds
# of graphile-worker 0.17's batching preset (bench/peers/graphile.sh, 50,000 jobs, one run)
# and of this build's 50,000-job burn-down with --prefetch 1000, alternating, each after a
# CHECKPOINT; then the SQL-only ceiling (bench/pgbench-ceiling.sh, 10 s per variant).
#   bench/results/2026-11-29-peers/pass.sh OUT_DIR   (from the repository root, after
#   cmake --build build/bench --target ergon_bench)
set -euo pipefail
source bench/pass-lib.sh
pass_cluster "$1"
for n in 1 2 3; do
  psql -X -q "$url" -c "CHECKPOINT"
  bench/peers/graphile.sh "$url" 50000 1 2>&1 | sed "s/^/$n graphile /" | tee -a "$out/peers.txt"
  psql -X -q "$url" -c "CHECKPOINT"
  build/bench/bench/ergon-bench --db "$url" --only processing --jobs 50000 --prefetch 1000 \
    --runs 1 2>/dev/null | grep 'burn-down' | sed "s/^/$n ergon /" | tee -a "$out/peers.txt"
done
psql -X -q "$url" -c "CHECKPOINT"
bench/pgbench-ceiling.sh "$url" 2>&1 | tee "$out/ceiling.txt"
