# Sourced by bench/run-all.sh and bench/compare.sh, which run from the repository root: on
# PostgreSQL one fresh durable-commit cluster per run (bench/pg-bench-cluster.sh), stopped when
# the script exits; on SQLite fresh files in a directory.
#   pass_cluster OUT_DIR   creates OUT_DIR, starts the cluster; sets $out, $url and $pass_dir
#   pass_sqlite OUT_DIR DIR   creates both; sets $out, and $db to a file in DIR
#   pass_bin WHO           the ergon-bench that WHO runs: base is $base, anyone else this
#                          build's ($new_bench, by default build/bench/bench/ergon-bench)
#   pass_run FILE WHO DB ARGS...   one ergon-bench run (--runs 1) of WHO against DB; its
#                          figure lines, prefixed with the turn $n and WHO, go to $out/FILE
#   pass_checkpoint        CHECKPOINT on $url, so that no run inherits the WAL of the one before
pass_cluster() {
  out=$1
  mkdir -p "$out"
  pass_dir=$(mktemp -d)
  url=$(bench/pg-bench-cluster.sh start "$pass_dir")
  trap 'bench/pg-bench-cluster.sh stop "$pass_dir"' EXIT
}

pass_sqlite() {
  out=$1
  mkdir -p "$out" "$2"
  db="sqlite:$2/bench.db"
}

pass_bin() {
  if [[ $1 == base ]]; then
    echo "$base"
  else
    echo "${new_bench:-build/bench/bench/ergon-bench}"
  fi
}

pass_run() {
  local file=$1 b=$2 db=$3 bin
  bin=$(pass_bin "$b")
  shift 3
  "$bin" --db "$db" --runs 1 "$@" 2>/dev/null | grep -E 'burn-down|^latency|^backlog|^bulk_enqueue|^single_enqueue' |
    sed "s/^/$n $b /" | tee -a "$out/$file"
}

pass_checkpoint() {
  psql -X -q "$url" -c "CHECKPOINT"
}
