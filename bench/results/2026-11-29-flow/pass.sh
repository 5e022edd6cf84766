#!/usr/bin/env bash
# Flow control on the common path (issue 8): processing with and without queues, priorities and
# group keys, back to back on one fresh durable-commit cluster, next to the build before fair
# claiming (BASE: an ergon-bench built from 5e6f9a0) in the same run; then SQLite.
#   bench/results/2026-11-29-flow/pass.sh OUT_DIR BASE_BENCH   (from the repository root, after
#                                          cmake --build build/bench --target ergon_bench)
set -euo pipefail
out=$1
base=$2
mkdir -p "$out"
d=$(mktemp -d)
s=$(mktemp -d)
url=$(bench/pg-bench-cluster.sh start "$d")
trap 'bench/pg-bench-cluster.sh stop "$d"; rm -rf "$s"' EXIT
bin=build/bench/bench/ergon-bench
load() { echo "load $(cut -d' ' -f1-3 /proc/loadavg) $(date -u +%T)"; }
echo "start $(date -u) cores $(nproc)"; load
flow="--queues 4 --priorities 3"
for p in 0 1000; do
  "$base" --db "$url" --only processing --jobs 50000 --prefetch "$p" | tee "$out/pg-base-prefetch$p.txt"
  load
  "$bin" --db "$url" --only processing --jobs 50000 --prefetch "$p" | tee "$out/pg-prefetch$p.txt"
  load
  # shellcheck disable=SC2086
  "$bin" --db "$url" --only processing --jobs 50000 --prefetch "$p" $flow |
    tee "$out/pg-queues-priorities-prefetch$p.txt"
  load
  "$bin" --db "$url" --only processing --jobs 50000 --prefetch "$p" --groups 100 |
    tee "$out/pg-groups100-prefetch$p.txt"
  load
done
for p in 0 1000; do
  "$base" --db "sqlite:$s/base-$p.db" --only processing --jobs 50000 --prefetch "$p" |
    tee "$out/sqlite-base-prefetch$p.txt"
  "$bin" --db "sqlite:$s/new-$p.db" --only processing --jobs 50000 --prefetch "$p" |
    tee "$out/sqlite-prefetch$p.txt"
  # shellcheck disable=SC2086
  "$bin" --db "sqlite:$s/flow-$p.db" --only processing --jobs 50000 --prefetch "$p" $flow |
    tee "$out/sqlite-queues-priorities-prefetch$p.txt"
  "$bin" --db "sqlite:$s/groups-$p.db" --only processing --jobs 50000 --prefetch "$p" --groups 100 |
    tee "$out/sqlite-groups100-prefetch$p.txt"
  load
done
echo "end $(date -u)"
