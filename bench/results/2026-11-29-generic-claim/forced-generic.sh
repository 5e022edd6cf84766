#!/usr/bin/env bash
# Generic plans for every statement on every connection (ALTER SYSTEM SET plan_cache_mode =
# force_generic_plan), BASE_BENCH (f6358e0: the claim joins `due`) against this build (the
# claim's `id = ANY (ARRAY(...))`), one 10,000-job default burn-down each, on one fresh
# durable-commit cluster, which is discarded afterwards. Shows why only the claim's own
# connections force generic plans, and that the ANY form's generic plan is sound.
#   bench/results/2026-11-29-generic-claim/forced-generic.sh OUT_DIR BASE_BENCH
set -euo pipefail
source bench/pass-lib.sh
base=$2
pass_cluster "$1"
for mode in auto force_generic_plan; do
  psql -X -q "$url" -c "ALTER SYSTEM SET plan_cache_mode = $mode" -c "SELECT pg_reload_conf()" \
    >/dev/null
  for b in base new; do
    psql -X -q "$url" -c "CHECKPOINT"
    "$(pass_bin "$b")" --db "$url" --runs 1 --only processing --jobs 10000 2>/dev/null |
      grep 'burn-down' | sed "s/^/$mode $b /" | tee -a "$out/forced-generic.txt"
  done
done
