#!/usr/bin/env bash
# Processing with 1,000,000 jobs pending (the backlog figure): BASE_BENCH (an
# ergon-bench built from f6358e0, before the claim was planned once) against this build,
# alternating (base new new base), one run each of
#   --only backlog --backlog 1000000 --jobs 50000 --prefetch 1000
# on one fresh durable-commit cluster, each after a CHECKPOINT.
#   bench/results/2026-11-29-backlog/pass.sh OUT_DIR BASE_BENCH
set -euo pipefail
source bench/pass-lib.sh
base=$2
pass_cluster "$1"
n=0
for b in base new new base; do
  n=$((n + 1))
  pass_checkpoint
  pass_run backlog.txt "$b" "$url" --only backlog --backlog 1000000 --jobs 50000 --prefetch 1000
done
