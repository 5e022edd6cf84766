#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for benchmarks: scripts/pg-test-cluster.sh's cluster, switched
# to durable commits (fsync=on, synchronous_commit=on, full_page_writes=on), which is what the
# performance issue's targets assume. The test cluster trades durability for speed; a benchmark
# on it would measure a database that does not wait for the disk.
#
#   bench/pg-bench-cluster.sh start DIR   creates DIR, starts the cluster, prints the URL
#   bench/pg-bench-cluster.sh stop DIR    stops it and removes DIR
#
# ALTER SYSTEM writes postgresql.auto.conf, which is read after postgresql.conf and its
# includes, so it wins over the test settings; the restart applies it (fsync and
# full_page_writes cannot change without one).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cluster="$here/../scripts/pg-test-cluster.sh"

usage() {
  echo "usage: $0 start|stop DIR" >&2
  exit 2
}
[[ $# -eq 2 ]] || usage
dir=$2

case "$1" in
  start)
    url=$("$cluster" start "$dir")
    for setting in "fsync = on" "synchronous_commit = on" "full_page_writes = on"; do
      psql -X -q -v ON_ERROR_STOP=1 "$url" -c "ALTER SYSTEM SET $setting" >/dev/null
    done
    "$cluster" restart "$dir" >/dev/null
    # Refuse to hand out a cluster that did not take the settings.
    got=$(psql -X -A -t -v ON_ERROR_STOP=1 "$url" \
      -c "SELECT string_agg(name || '=' || setting, ',' ORDER BY name) FROM pg_settings
          WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')")
    if [[ "$got" != "fsync=on,full_page_writes=on,synchronous_commit=on" ]]; then
      echo "pg-bench-cluster: durable settings not in effect: $got" >&2
      "$cluster" stop "$dir"
      exit 1
    fi
    echo "$url"
    ;;
  stop)
    "$cluster" stop "$dir"
    ;;
  *)
    usage
    ;;
esac
