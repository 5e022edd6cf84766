#!/usr/bin/env bash
# Latency alone, BASE_BENCH against this build, alternating, six runs each, on one fresh
# durable-commit cluster, each run after a CHECKPOINT.
#   bench/results/2026-11-29-generic-claim/latency-pass.sh OUT_DIR BASE_BENCH
set -euo pipefail
out=$1
base=$2
new=build/bench/bench/ergon-bench
mkdir -p "$out"
d=$(mktemp -d)
url=$(bench/pg-bench-cluster.sh start "$d")
trap 'bench/pg-bench-cluster.sh stop "$d"' EXIT
for n in 1 2 3 4 5 6; do
  for b in base new; do
    bin=$base
    [[ $b == new ]] && bin=$new
    psql -X -q "$url" -c "CHECKPOINT"
    "$bin" --db "$url" --runs 1 --only latency 2>/dev/null | grep -E '^latency' |
      sed "s/^/$n $b /" | tee -a "$out/latency-alone.txt"
  done
done
