#!/usr/bin/env bash
# Every figure of docs/performance.md's "ergon-bench" section, in one go, on a private
# durable-commit PostgreSQL cluster (bench/pg-bench-cluster.sh) and on SQLite files.
#
#   bench/run-all.sh BUILD_DIR OUT_DIR [--large]
#
# BUILD_DIR holds bench/ergon-bench (e.g. build/bench). OUT_DIR receives one .txt (the printed
# table) and one .json per step, plus machine.txt. --large adds the issue's full sizes (1M
# pending, 10M finished rows, 3 runs: about 15 more minutes and ~6 GB of disk).
# Each step takes a few minutes; the default set about 30 minutes on a 2-core machine.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 || ( $# -eq 3 && $3 != --large ) ]]; then
  echo "usage: $0 BUILD_DIR OUT_DIR [--large]" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
bin="$1/bench/ergon-bench"
out=$2
large=${3:-}
[[ -x "$bin" ]] || { echo "run-all: $bin not found (ninja -C $1 ergon_bench)" >&2; exit 1; }
mkdir -p "$out"

cluster=$(mktemp -d)
sqlite_dir=$(mktemp -d)
cleanup() {
  "$here/pg-bench-cluster.sh" stop "$cluster" || true
  rm -rf "$sqlite_dir"
}
trap cleanup EXIT
url=$("$here/pg-bench-cluster.sh" start "$cluster")

{
  date -u '+%Y-%m-%d %H:%M:%S UTC'
  echo "cores: $(nproc)"
  grep -m1 'model name' /proc/cpuinfo || true
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/machine.txt"

step() {  # step NAME COMMAND...: runs it, keeps its table in NAME.txt
  local name=$1
  shift
  echo "== $name: $* (load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%H:%M:%S) UTC)" |
    tee "$out/$name.txt"
  "$@" | tee -a "$out/$name.txt"
}

# PostgreSQL: the SQL-only ceiling, the peer, and Ergon, back to back on one cluster.
step pg-ceiling "$here/pgbench-ceiling.sh" "$url" 10
step pg-graphile "$here/peers/graphile.sh" "$url" 20000 3
step pg "$bin" --db "$url" --json "$out/pg.json"
for w in 2 4; do
  step "pg-processing-w$w" "$bin" --db "$url" --only processing --workers "$w" \
    --json "$out/pg-processing-w$w.json"
done
step pg-processing-pool16 "$bin" --db "$url" --only processing --pool-size 16 \
  --json "$out/pg-processing-pool16.json"

# SQLite: the default (synchronous=full: every commit durable) and synchronous=normal.
step sqlite "$bin" --db "sqlite:$sqlite_dir/bench.db" --json "$out/sqlite.json"
step sqlite-normal "$bin" --db "sqlite:$sqlite_dir/bench.db?synchronous=normal" \
  --only bulk_enqueue,single_enqueue,processing --json "$out/sqlite-normal.json"

if [[ $large == --large ]]; then
  step pg-large "$bin" --db "$url" --only backlog,history --backlog 1000000 \
    --history 10000000 --json "$out/pg-large.json"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"
