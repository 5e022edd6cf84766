# Sourced by the recorded passes in bench/results/*/pass.sh, which run from the repository
# root: on PostgreSQL one fresh durable-commit cluster per pass (bench/pg-bench-cluster.sh),
# stopped when the pass exits; on SQLite fresh files in a directory.
#   pass_cluster OUT_DIR   creates OUT_DIR, starts the cluster; sets $out and $url
#   pass_sqlite OUT_DIR DIR   creates both; sets $out, and $db to a file in DIR
#   pass_bin base|new      the ergon-bench of that side: $base, or this build's
#   pass_run FILE BUILD DB ARGS...   one ergon-bench run (--runs 1) of BUILD against DB; its
#                          figure lines, prefixed with the turn $n and BUILD, go to $out/FILE
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
  if [[ $1 == new ]]; then
    echo build/bench/bench/ergon-bench
  else
    echo "$base"
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
