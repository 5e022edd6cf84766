#!/usr/bin/env bash
# The 10M-history target again after the claim changes of the evening (this build), on one
# fresh durable-commit cluster: 200,000 jobs with --prefetch 1000 on an empty table and on one
# with 10,000,000 Completed rows, 3 runs (as bench/results/2026-11-29-nestloop/pass.sh step 2).
#   bench/results/2026-11-29-history-evening/pass.sh OUT_DIR   (from the repository root,
#   after cmake --build build/bench --target ergon_bench)
set -euo pipefail
source bench/pass-lib.sh
pass_cluster "$1"
build/bench/bench/ergon-bench --db "$url" --only history --history 10000000 --jobs 200000 \
  --prefetch 1000 --runs 3 --json "$out/history.json" 2>&1 | tee "$out/history.txt"
