#!/usr/bin/env bash
# Pass B of 2026-11-28: the ceiling, Ergon's single enqueue, processing and latency, and the
# peer, back to back on one fresh durable-commit cluster, in a quieter period of the machine.
#   bench/results/2026-11-28/pass-b/pass-b.sh OUT_DIR      (from the repository root)
set -euo pipefail
out=$1
mkdir -p "$out"
d=$(mktemp -d)
url=$(bench/pg-bench-cluster.sh start "$d")
trap 'bench/pg-bench-cluster.sh stop "$d"' EXIT
echo "start $(date -u) load $(cut -d' ' -f1-3 /proc/loadavg)"
bench/pgbench-ceiling.sh "$url" 10 | tee "$out/ceiling.txt"
echo "load $(cut -d' ' -f1-3 /proc/loadavg) $(date -u +%T)"
build/bench/bench/ergon-bench --db "$url" --only single_enqueue,processing,latency \
  --json "$out/pg.json" | tee "$out/pg.txt"
echo "load $(cut -d' ' -f1-3 /proc/loadavg) $(date -u +%T)"
bench/peers/graphile.sh "$url" 20000 3 | tee "$out/graphile.txt"
echo "end $(date -u) load $(cut -d' ' -f1-3 /proc/loadavg)"
