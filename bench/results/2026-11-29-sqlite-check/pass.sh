#!/usr/bin/env bash
# SQLite migration 9 (the status CHECK spelled with OR, jobs_finished_idx on completed_at)
# against the build before it (BASE_BENCH: 87fd950), interleaved (base new, new base, ...),
# one run each of the 40,000-job burn-down with --prefetch 1000 and of the 20,000-job
# burn-down with the defaults, each on a fresh file (synchronous=full) in DIR.
#   bench/results/2026-11-29-sqlite-check/pass.sh OUT_DIR BASE_BENCH DIR   (from the
#   repository root, after cmake --build build/bench --target ergon_bench)
set -euo pipefail
source bench/pass-lib.sh
out=$1 base=$2 dir=$3
mkdir -p "$out" "$dir"
run() {  # FILE BUILD ARGS...: one run, its lines prefixed with the pass number and build
  local file=$1 b=$2 bin
  bin=$(pass_bin "$b")
  shift 2
  "$bin" --db "sqlite:$dir/bench.db" --runs 1 "$@" 2>/dev/null | grep -E 'burn-down' |
    sed "s/^/$n $b /" | tee -a "$out/$file"
}
n=0
for order in "base new" "new base" "base new" "new base" "base new" "new base"; do
  for b in $order; do
    n=$((n + 1))
    run prefetch.txt "$b" --only processing --jobs 40000 --prefetch 1000
    run default.txt "$b" --only processing --jobs 20000
  done
done
