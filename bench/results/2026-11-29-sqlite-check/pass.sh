#!/usr/bin/env bash
# SQLite migration 9 (the status CHECK spelled with OR, jobs_finished_idx on completed_at)
# against the build before it (BASE_BENCH: 87fd950), interleaved (base new, new base, ...),
# one run each of the 40,000-job burn-down with --prefetch 1000 and of the 20,000-job
# burn-down with the defaults, each on a fresh file (synchronous=full) in DIR.
#   bench/results/2026-11-29-sqlite-check/pass.sh OUT_DIR BASE_BENCH DIR   (from the
#   repository root, after cmake --build build/bench --target ergon_bench)
set -euo pipefail
source bench/pass-lib.sh
base=$2
pass_sqlite "$1" "$3"
n=0
for order in "base new" "new base" "base new" "new base" "base new" "new base"; do
  for b in $order; do
    n=$((n + 1))
    pass_run prefetch.txt "$b" "$db" --only processing --jobs 40000 --prefetch 1000
    pass_run default.txt "$b" "$db" --only processing --jobs 20000
  done
done
