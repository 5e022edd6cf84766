#!/usr/bin/env bash
# Another build's ergon-bench against this build's, interleaved (base new, new base, ...), on
# one fresh SQLite directory or one fresh durable-commit PostgreSQL cluster, one run per turn:
# the way a change to a hot path is measured against the build before it.
#   bench/compare.sh BASE_BENCH sqlite|postgres OUT_DIR ROUNDS ERGON_BENCH_ARGS...
# (from the repository root, after cmake --build build/bench --target ergon_bench). Each turn's
# figure lines go to OUT_DIR/runs.txt prefixed with the turn and the build; the last lines
# are each build's median per figure.
set -euo pipefail
source bench/pass-lib.sh
base=$1
store=$2
out_dir=$3
rounds=$4
shift 4
if [[ $store == postgres ]]; then
  pass_cluster "$out_dir"
  db=$url
else
  pass_sqlite "$out_dir" "$(mktemp -d)"
fi
n=0
for ((r = 0; r < rounds; ++r)); do
  order="base new"
  ((r % 2)) && order="new base"
  for b in $order; do
    n=$((n + 1))
    [[ $store == postgres ]] && pass_checkpoint
    [[ $store == sqlite ]] && rm -f "${db#sqlite:}" "${db#sqlite:}"-wal "${db#sqlite:}"-shm
    pass_run runs.txt "$b" "$db" "$@"
  done
done
# Each build's median per figure (a figure: the benchmark and measure names, then its value).
while read -r figure; do
  for b in base new; do
    vals=$(awk -v b="$b" -v f="$figure" '$2 == b && $3 " " $4 == f { print $5 }' "$out/runs.txt" |
      sort -n)
    count=$(wc -l <<< "$vals")
    echo "median $b $figure: $(sed -n "$(((count + 1) / 2))p" <<< "$vals") ($count runs)"
  done
done < <(awk '$1 ~ /^[0-9]+$/ { print $3 " " $4 }' "$out/runs.txt" | sort -u) | tee -a "$out/runs.txt"
