# Sourced by the recorded passes in bench/results/*/pass.sh, which run from the repository
# root: one fresh durable-commit cluster per pass (bench/pg-bench-cluster.sh), stopped when
# the pass exits.
#   pass_cluster OUT_DIR   creates OUT_DIR, starts the cluster; sets $out and $url
#   pass_bin base|new      the ergon-bench of that side: $base, or this build's
pass_cluster() {
  out=$1
  mkdir -p "$out"
  pass_dir=$(mktemp -d)
  url=$(bench/pg-bench-cluster.sh start "$pass_dir")
  trap 'bench/pg-bench-cluster.sh stop "$pass_dir"' EXIT
}

pass_bin() {
  if [[ $1 == new ]]; then
    echo build/bench/bench/ergon-bench
  else
    echo "$base"
  fi
}
