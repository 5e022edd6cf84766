#!/usr/bin/env bash
# The idle-worker pass of 2026-11-29: `ergon-bench --only idle` (transactions per second in a
# database only the worker uses), 3 runs of a 30 s idle period, on a fresh durable-commit
# cluster; then the same with the server's autovacuum off, which shows what the remainder is.
#   bench/results/2026-11-29-idle/pass.sh OUT_DIR     (from the repository root, after
#   cmake --build build/bench --target ergon_bench)
set -euo pipefail
out=$1
mkdir -p "$out"
d=$(mktemp -d)
url=$(bench/pg-bench-cluster.sh start "$d")
trap 'bench/pg-bench-cluster.sh stop "$d"' EXIT
build/bench/bench/ergon-bench --db "$url" --only idle --runs 3 --idle-seconds 30 \
  --json "$out/idle.json" | tee "$out/idle.txt"
psql -X -q "$url" -c "ALTER SYSTEM SET autovacuum = off" -c "SELECT pg_reload_conf()" >/dev/null
build/bench/bench/ergon-bench --db "$url" --only idle --runs 3 --idle-seconds 30 \
  --json "$out/idle-autovacuum-off.json" | tee "$out/idle-autovacuum-off.txt"
