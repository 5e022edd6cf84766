#!/usr/bin/env bash
# The pass of 2026-11-29 (batched outcomes, prefetch): the SQL-only ceiling, the peer and
# Ergon's processing with and without a local queue, single enqueue and latency, back to back
# on one fresh durable-commit cluster; then SQLite processing.
#   bench/results/2026-11-29/pass.sh OUT_DIR      (from the repository root, after
#                                                  cmake --build build/bench --target ergon_bench)
set -euo pipefail
out=$1
mkdir -p "$out"
d=$(mktemp -d)
s=$(mktemp -d)
url=$(bench/pg-bench-cluster.sh start "$d")
trap 'bench/pg-bench-cluster.sh stop "$d"; rm -rf "$s"' EXIT
bin=build/bench/bench/ergon-bench
load() { echo "load $(cut -d' ' -f1-3 /proc/loadavg) $(date -u +%T)"; }
echo "start $(date -u) cores $(nproc)"; load
bench/pgbench-ceiling.sh "$url" 10 | tee "$out/ceiling.txt"; load
bench/peers/graphile.sh "$url" 20000 3 | tee "$out/graphile.txt"; load
for p in 0 100 1000; do
  "$bin" --db "$url" --only processing --jobs 50000 --prefetch "$p" \
    --json "$out/pg-processing-prefetch$p.json" | tee "$out/pg-processing-prefetch$p.txt"
  load
done
"$bin" --db "$url" --only processing --jobs 50000 --workers 2 --prefetch 1000 \
  --json "$out/pg-processing-w2-prefetch1000.json" | tee "$out/pg-processing-w2-prefetch1000.txt"
load
"$bin" --db "$url" --only single_enqueue,latency,bulk_enqueue --json "$out/pg-enqueue-latency.json" |
  tee "$out/pg-enqueue-latency.txt"
load
for p in 0 1000; do
  "$bin" --db "sqlite:$s/bench-$p.db" --only processing --jobs 50000 --prefetch "$p" \
    --json "$out/sqlite-processing-prefetch$p.json" | tee "$out/sqlite-processing-prefetch$p.txt"
  load
done
echo "end $(date -u)"
