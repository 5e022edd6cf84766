#!/usr/bin/env bash
# The fair claim (every job has one of 100 group keys) with generic plans: BASE_BENCH
# (f6358e0) against this build, base new new base, one run each of the 30,000-job burn-down
# with --groups 100, without and with --prefetch 1000, on one fresh durable-commit cluster,
# each after a CHECKPOINT.
#   bench/results/2026-11-29-generic-claim/groups-pass.sh OUT_DIR BASE_BENCH
set -euo pipefail
source bench/pass-lib.sh
base=$2
pass_cluster "$1"
n=0
for b in base new new base; do
  n=$((n + 1))
  bin=$(pass_bin "$b")
  for prefetch in 0 1000; do
    psql -X -q "$url" -c "CHECKPOINT"
    "$bin" --db "$url" --runs 1 --only processing --jobs 30000 --groups 100 \
      --prefetch "$prefetch" 2>/dev/null | grep 'burn-down' | sed "s/^/$n $b /" |
      tee -a "$out/groups.txt"
  done
done
