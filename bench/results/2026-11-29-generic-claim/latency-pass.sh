#!/usr/bin/env bash
# Latency alone, BASE_BENCH against this build, alternating, six runs each, on one fresh
# durable-commit cluster, each run after a CHECKPOINT.
#   bench/results/2026-11-29-generic-claim/latency-pass.sh OUT_DIR BASE_BENCH
set -euo pipefail
source bench/pass-lib.sh
base=$2
pass_cluster "$1"
for n in 1 2 3 4 5 6; do
  for b in base new; do
    pass_checkpoint
    pass_run latency-alone.txt "$b" "$url" --only latency
  done
done
