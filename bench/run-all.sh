#!/usr/bin/env bash
# Every figure of docs/performance.md in one go, each step as its figures are published: on one
# private durable-commit PostgreSQL cluster (bench/pg-bench-cluster.sh), then on fresh SQLite
# files (synchronous=full), back to back. From the repository root:
#
#   bench/run-all.sh BUILD_DIR OUT_DIR
#
# BUILD_DIR holds bench/ergon-bench (a Release build: cmake --build BUILD_DIR --target
# ergon_bench). OUT_DIR receives the files that bench/results/README.md lists, one per step;
# `bench/run-all.sh build/bench bench/results` replaces the published ones. Needs PostgreSQL
# 15 (server, psql, pgbench) and node with npm (bench/peers/graphile.sh installs
# graphile-worker once). About 45 minutes on 2 cores and 6 GB of disk for the 10M-row history.
# Lines of interleaved runs start with the turn and who ran: "new" is this build's ergon-bench.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 BUILD_DIR OUT_DIR" >&2
  exit 2
fi
new_bench="$1/bench/ergon-bench"
[[ -x "$new_bench" ]] || { echo "run-all: $new_bench not found (ninja -C $1 ergon_bench)" >&2; exit 1; }
source bench/pass-lib.sh

files=(peers.txt ceiling.txt ceiling-insert.txt single-enqueue-4.txt single-enqueue-16.txt
  latency.txt commit-latency.txt bulk-copy-1.txt bulk-copy-4.txt bulk-enqueue.txt history.txt
  history.json idle.txt idle.json idle-autovacuum-off.txt idle-autovacuum-off.json
  sqlite-prefetch.txt sqlite-default.txt)
for store in pg sqlite; do
  for p in 0 1000; do
    files+=("flow-$store-prefetch$p.txt" "flow-$store-queues-priorities-prefetch$p.txt"
      "flow-$store-groups100-prefetch$p.txt")
  done
done
mkdir -p "$2"
for f in "${files[@]}"; do rm -f "${2:?}/$f"; done  # steps append; a rerun starts clean

pass_cluster "$2"
sqlite_dir=$(mktemp -d)
trap 'bench/pg-bench-cluster.sh stop "$pass_dir"; rm -rf "$sqlite_dir"' EXIT

# flow STORE DB: the 50,000-job burn-down, 3 runs, without and with a local queue, plain, with
# 4 queues and 3 priorities, and with 100 group keys (the fair claim).
flow() {
  local store=$1 db=$2 p
  for p in 0 1000; do
    "$new_bench" --db "$db" --only processing --jobs 50000 --prefetch "$p" |
      tee "$out/flow-$store-prefetch$p.txt"
    "$new_bench" --db "$db" --only processing --jobs 50000 --prefetch "$p" --queues 4 \
      --priorities 3 | tee "$out/flow-$store-queues-priorities-prefetch$p.txt"
    "$new_bench" --db "$db" --only processing --jobs 50000 --prefetch "$p" --groups 100 |
      tee "$out/flow-$store-groups100-prefetch$p.txt"
  done
}

# The relative targets: graphile-worker's batching preset and Ergon's 50,000-job burn-down with
# a local queue, alternating, each after a CHECKPOINT; then the SQL-only ceiling.
for n in 1 2 3; do
  pass_checkpoint
  bench/peers/graphile.sh "$url" 50000 1 2>&1 | sed "s/^/$n graphile /" | tee -a "$out/peers.txt"
  pass_checkpoint
  pass_run peers.txt ergon "$url" --only processing --jobs 50000 --prefetch 1000
done
pass_checkpoint
bench/pgbench-ceiling.sh "$url" 2>&1 | tee "$out/ceiling.txt"

# Single enqueue and latency: three turns of the one-row ceilings (with and without pg_notify,
# 4 and 16 clients, 5 s each), single_enqueue with 4 and 16 threads, and the latency benchmark.
for n in 1 2 3; do
  for c in 4 16; do
    CLIENTS=$c VARIANTS="insert_1 insert_1q" bench/pgbench-ceiling.sh "$url" 5 |
      grep '^insert' | sed "s/^/$n $c-clients /" | tee -a "$out/ceiling-insert.txt"
  done
  for t in 4 16; do
    pass_run "single-enqueue-$t.txt" new "$url" --only single_enqueue --threads "$t" \
      --pool-size "$t"
  done
  pass_run latency.txt new "$url" --only latency
done
bench/commit-latency.sh "$url" 10 | tee "$out/commit-latency.txt"

# Bulk enqueue: one COPY of 100,000 rows in one stream and in four, and one start_jobs call of
# 100,000 jobs, three turns.
for n in 1 2 3; do
  for c in 1 4; do
    pass_checkpoint
    CLIENTS=$c VARIANTS=copy COPY_ROWS=100000 bench/pgbench-ceiling.sh "$url" |
      grep '^copy' | sed "s/^/$n /" | tee -a "$out/bulk-copy-$c.txt"
  done
  pass_checkpoint
  "$new_bench" --db "$url" --runs 1 --only bulk_enqueue --jobs 100000 2>/dev/null |
    grep '^bulk_enqueue' | sed "s/^/$n /" | tee -a "$out/bulk-enqueue.txt"
done

flow pg "$url"

"$new_bench" --db "$url" --only history --history 10000000 --jobs 200000 --prefetch 1000 \
  --runs 3 --json "$out/history.json" 2>&1 | tee "$out/history.txt"

"$new_bench" --db "$url" --only tag_filter --runs 3 2>&1 | tee "$out/tag-filter.txt"

# The idle worker last: the second measurement turns the server's autovacuum off.
"$new_bench" --db "$url" --only idle --runs 3 --idle-seconds 30 --json "$out/idle.json" |
  tee "$out/idle.txt"
psql -X -q "$url" -c "ALTER SYSTEM SET autovacuum = off" -c "SELECT pg_reload_conf()" >/dev/null
"$new_bench" --db "$url" --only idle --runs 3 --idle-seconds 30 \
  --json "$out/idle-autovacuum-off.json" | tee "$out/idle-autovacuum-off.txt"

# SQLite: six runs each of the 40,000-job burn-down with a local queue and of the 20,000-job
# burn-down with the defaults, alternating; then the flow-control burn-downs.
db="sqlite:$sqlite_dir/bench.db"
for ((n = 1; n <= 6; ++n)); do
  pass_run sqlite-prefetch.txt new "$db" --only processing --jobs 40000 --prefetch 1000
  pass_run sqlite-default.txt new "$db" --only processing --jobs 20000
done
flow sqlite "$db"
