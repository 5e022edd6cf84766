#!/usr/bin/env bash
# The SQLite claims with INDEXED BY against the build before them (BASE_BENCH: 0e05598), on
# files without statistics, as Ergon's own files are (--no-settle: no ANALYZE after loading),
# and, for comparison, with them (the default): alternately (base new, new base, ...), one run
# each of the 20,000-job burn-down with the defaults and of the 40,000-job burn-down with
# --prefetch 1000, each on a fresh file (synchronous=full) in DIR.
#   bench/results/2026-11-29-sqlite-plan/pass.sh OUT_DIR BASE_BENCH DIR   (from the
#   repository root, after cmake --build build/bench --target ergon_bench)
set -euo pipefail
source bench/pass-lib.sh
base=$2
pass_sqlite "$1" "$3"
n=0
for order in "base new" "new base" "base new" "new base"; do
  for b in $order; do
    n=$((n + 1))
    pass_run default-no-stats.txt "$b" "$db" --only processing --jobs 20000 --no-settle
    pass_run prefetch-no-stats.txt "$b" "$db" --only processing --jobs 40000 --prefetch 1000 --no-settle
    pass_run default-stats.txt "$b" "$db" --only processing --jobs 20000
    pass_run prefetch-stats.txt "$b" "$db" --only processing --jobs 40000 --prefetch 1000
  done
done
