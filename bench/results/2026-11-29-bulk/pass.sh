#!/usr/bin/env bash
# Bulk enqueue against one COPY stream: on one fresh durable-commit cluster, alternately,
# three times: bench/pgbench-ceiling.sh's COPY of 100,000 rows with one client (one psql
# \copy, one transaction: the ceiling of an atomic start_jobs) and with four, and one run of
# this build's bulk_enqueue of 100,000 jobs (one start_jobs call: COPY in one transaction).
#   bench/results/2026-11-29-bulk/pass.sh OUT_DIR   (from the repository root, after
#   cmake --build build/bench --target ergon_bench)
set -euo pipefail
source bench/pass-lib.sh
pass_cluster "$1"
for n in 1 2 3; do
  psql -X -q "$url" -c "CHECKPOINT"
  CLIENTS=1 VARIANTS=copy COPY_ROWS=100000 bench/pgbench-ceiling.sh "$url" |
    grep '^copy' | sed "s/^/$n /" | tee -a "$out/copy-1.txt"
  psql -X -q "$url" -c "CHECKPOINT"
  CLIENTS=4 VARIANTS=copy COPY_ROWS=100000 bench/pgbench-ceiling.sh "$url" |
    grep '^copy' | sed "s/^/$n /" | tee -a "$out/copy-4.txt"
  psql -X -q "$url" -c "CHECKPOINT"
  build/bench/bench/ergon-bench --db "$url" --runs 1 --only bulk_enqueue --jobs 100000 \
    2>/dev/null | grep '^bulk_enqueue' | sed "s/^/$n /" | tee -a "$out/ergon.txt"
done
