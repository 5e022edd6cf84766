#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, on 127.0.0.1 and a free port.
#   scripts/pg-test-cluster.sh start DIR      creates DIR, initdb, starts; prints the URL
#   scripts/pg-test-cluster.sh restart DIR [SECONDS]
#                                             stops (fast), stays down SECONDS (default 0),
#                                             starts it again on the same port
#   scripts/pg-test-cluster.sh stop DIR       stops it (fast) and removes DIR
#   scripts/pg-test-cluster.sh url DIR        prints the URL of a started cluster
#
# The URL is postgresql://postgres@127.0.0.1:PORT/postgres (trust authentication, which is why
# the cluster listens on 127.0.0.1 only and its unix socket lives inside DIR). PostgreSQL
# refuses to run as root: as root the server runs as the `postgres` user (DIR is chowned to
# it); as anyone else it runs as the current user. Durability is traded for speed (fsync=off):
# the cluster holds test data only, and a clean or fast restart loses nothing anyway.
#
# The server binaries come from postgresql-15 (scripts/install-deps.sh --test);
# PG_BINDIR overrides where they are.
set -euo pipefail

usage() {
  echo "usage: $0 start|restart|stop|url DIR (restart DIR [SECONDS])" >&2
  exit 2
}
[[ $# -eq 2 || ( $# -eq 3 && $1 == restart ) ]] || usage
cmd=$1
dir=$2
pause=${3:-0}

bindir=${PG_BINDIR:-}
if [[ -z "$bindir" ]]; then
  for candidate in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    if [[ -x "$candidate/initdb" ]]; then
      bindir=$candidate
      break
    fi
  done
fi
if [[ -z "$bindir" || ! -x "$bindir/pg_ctl" ]]; then
  echo "pg-test-cluster: PostgreSQL server binaries not found (install postgresql-15:" \
    "scripts/install-deps.sh --test, or set PG_BINDIR)" >&2
  exit 1
fi

# Runs a command as the cluster's owner.
as_owner() {
  if [[ "$(id -u)" -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

data="$dir/data"
log="$dir/postgres.log"

url_of() {  # url_of PORT
  echo "postgresql://postgres@127.0.0.1:$1/postgres"
}

# True when nothing accepts connections on 127.0.0.1:$1.
port_is_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_server() {
  as_owner "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null
}

case "$cmd" in
  start)
    if [[ -e "$data" ]]; then
      echo "pg-test-cluster: $data already exists" >&2
      exit 1
    fi
    mkdir -p "$dir"
    if [[ "$(id -u)" -eq 0 ]]; then
      if ! id postgres >/dev/null 2>&1; then
        echo "pg-test-cluster: running as root needs a 'postgres' user (package postgresql-15)" >&2
        exit 1
      fi
      chown postgres: "$dir"
      chmod 700 "$dir"
      if ! runuser -u postgres -- test -w "$dir"; then
        echo "pg-test-cluster: the postgres user cannot reach $dir (check its parents)" >&2
        exit 1
      fi
    fi
    as_owner "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 \
      --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2
      exit 1
    }
    # Trust, but only for the unix socket inside DIR and for 127.0.0.1.
    as_owner tee "$data/pg_hba.conf" >/dev/null <<'EOF'
local all all              trust
host  all all 127.0.0.1/32 trust
EOF
    # Try ports from 54320 up: another cluster (another test run, another engineer) may hold
    # one, or take it between the check and the start; then the start fails and we move on.
    for port in $(seq 54320 54420); do
      port_is_free "$port" || continue
      as_owner tee "$data/ergon-test.conf" >/dev/null <<EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
      if ! grep -q "^include 'ergon-test.conf'" "$data/postgresql.conf"; then
        echo "include 'ergon-test.conf'" | as_owner tee -a "$data/postgresql.conf" >/dev/null
      fi
      if start_server 2>/dev/null; then
        echo "$port" >"$dir/port"
        url_of "$port" | tee "$dir/url"
        exit 0
      fi
    done
    echo "pg-test-cluster: could not start a server on any port 54320-54420; see $log" >&2
    exit 1
    ;;
  restart)
    [[ -f "$dir/port" ]] || { echo "pg-test-cluster: no cluster in $dir" >&2; exit 1; }
    as_owner "$bindir/pg_ctl" -D "$data" -w -t 60 -m fast stop >/dev/null
    sleep "$pause"
    start_server
    url_of "$(cat "$dir/port")"
    ;;
  stop)
    if [[ -f "$data/postmaster.pid" ]]; then
      as_owner "$bindir/pg_ctl" -D "$data" -w -t 60 -m fast stop >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
  url)
    [[ -f "$dir/port" ]] || { echo "pg-test-cluster: no cluster in $dir" >&2; exit 1; }
    url_of "$(cat "$dir/port")"
    ;;
  *)
    usage
    ;;
esac
