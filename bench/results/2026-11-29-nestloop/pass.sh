#!/usr/bin/env bash
# The pass of 2026-11-29 after job_finish_many's transaction turned nested loops off, on one
# fresh durable-commit cluster, back to back:
#   1. processing, 50,000 jobs with --prefetch 1000, 3 runs, for the build before this
#      session's changes (BASE_BENCH, an ergon-bench built from 6a391f8) and this build;
#   2. history: 200,000 jobs with --prefetch 1000 on an empty table and on one with
#      10,000,000 Completed rows, 3 runs (this build);
#   3. bench/commit-latency.sh and the latency benchmark (this build).
#   bench/results/2026-11-29-nestloop/pass.sh OUT_DIR BASE_BENCH   (from the repository root,
#   after cmake --build build/bench --target ergon_bench)
set -euo pipefail
out=$1
base=$2
new=build/bench/bench/ergon-bench
mkdir -p "$out"
d=$(mktemp -d)
url=$(bench/pg-bench-cluster.sh start "$d")
trap 'bench/pg-bench-cluster.sh stop "$d"' EXIT
for b in base new; do
  bin=$base
  [[ $b == new ]] && bin=$new
  "$bin" --db "$url" --only processing --jobs 50000 --prefetch 1000 --runs 3 \
    --json "$out/processing-$b.json" 2>&1 | tee "$out/processing-$b.txt"
done
"$new" --db "$url" --only history --history 10000000 --jobs 200000 --prefetch 1000 --runs 3 \
  --json "$out/history.json" 2>&1 | tee "$out/history.txt"
bench/commit-latency.sh "$url" 10 2>&1 | tee "$out/commit-latency.txt"
"$new" --db "$url" --only latency --runs 3 --json "$out/latency.json" 2>&1 | tee "$out/latency.txt"
