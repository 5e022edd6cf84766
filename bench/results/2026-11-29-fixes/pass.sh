#!/usr/bin/env bash
# The pass of 2026-11-29 after the idle-query and outcome-fence changes and the worker's
# heartbeat/completer turn-taking (as committed in a214121; run 08:29-08:39 UTC), on one
# fresh durable-commit cluster, back to back:
#   1. processing, 50,000 jobs, 3 runs, without a local queue and with --prefetch 1000, for
#      the build before those changes (BASE_BENCH, an ergon-bench built from 6a391f8) and this
#      build, alternately;
#   2. latency (this build), and pg_test_fsync on the cluster's disk: what one flush costs;
#   3. history: 200,000 jobs with --prefetch 1000 on an empty table and on one with
#      10,000,000 Completed rows, 3 runs (this build).
#   bench/results/2026-11-29-fixes/pass.sh OUT_DIR BASE_BENCH   (from the repository root,
#   after cmake --build build/bench --target ergon_bench)
set -euo pipefail
out=$1
base=$2
new=build/bench/bench/ergon-bench
mkdir -p "$out"
d=$(mktemp -d)
url=$(bench/pg-bench-cluster.sh start "$d")
trap 'bench/pg-bench-cluster.sh stop "$d"' EXIT
for p in 0 1000; do
  for b in base new; do
    bin=$base
    [[ $b == new ]] && bin=$new
    "$bin" --db "$url" --only processing --jobs 50000 --prefetch "$p" --runs 3 \
      --json "$out/processing-p$p-$b.json" 2>&1 | tee "$out/processing-p$p-$b.txt"
  done
done
"$new" --db "$url" --only latency --runs 3 --json "$out/latency.json" 2>&1 | tee "$out/latency.txt"
# pg_test_fsync writes its test file in the cluster's data directory's file system.
/usr/lib/postgresql/15/bin/pg_test_fsync -s 2 -f "$d/fsync.test" 2>&1 | tee "$out/pg_test_fsync.txt"
"$new" --db "$url" --only history --history 10000000 --jobs 200000 --prefetch 1000 --runs 3 \
  --json "$out/history.json" 2>&1 | tee "$out/history.txt"
