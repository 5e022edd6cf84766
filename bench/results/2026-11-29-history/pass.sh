#!/usr/bin/env bash
# The 10M-history pass of 2026-11-29: processing of 200,000 jobs with PrefetchJobs 1000 on an
# empty table and on one holding 10,000,000 Completed rows, run alternately, 3 runs each, on a
# fresh durable-commit cluster. Run 08:06-08:13 UTC with the build of f54a8e7 (the idle-query
# change); it logged one "deadlock detected" (docs/performance.md).
#   bench/results/2026-11-29-history/pass.sh OUT_DIR     (from the repository root, after
#   cmake --build build/bench --target ergon_bench)
set -euo pipefail
out=$1
mkdir -p "$out"
d=$(mktemp -d)
url=$(bench/pg-bench-cluster.sh start "$d")
trap 'bench/pg-bench-cluster.sh stop "$d"' EXIT
build/bench/bench/ergon-bench --db "$url" --only history --history 10000000 --jobs 200000 \
  --prefetch 1000 --runs 3 --json "$out/history.json" 2>&1 | tee "$out/history.txt"
