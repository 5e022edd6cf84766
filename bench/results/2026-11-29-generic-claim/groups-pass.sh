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
  for prefetch in 0 1000; do
    pass_checkpoint
    pass_run groups.txt "$b" "$url" --only processing --jobs 30000 --groups 100 \
      --prefetch "$prefetch"
  done
done
