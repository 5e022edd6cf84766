#!/usr/bin/env bash
# What one durable commit costs on a server, the floor under enqueue-to-start latency (an
# enqueue commits, then the claim that starts the job commits): pgbench with one client for
# SECONDS each, first `SELECT 1` (a round trip, no commit), then a one-row INSERT per
# transaction into a scratch table (a round trip and a commit that waits for the WAL flush).
# pgbench's "latency average" of each is printed. Then the same INSERT after a pause of
# GAP_MS (default 5, as ergon-bench's latency benchmark pauses before each enqueue), whose
# own latency pgbench -r reports apart from the pause: what one commit costs when the server
# was idle before it, as it is when a job is enqueued into an idle system.
#
#   bench/commit-latency.sh URL [SECONDS]        (default 10)
#   env: GAP_MS (default 5)
set -euo pipefail
url=$1
secs=${2:-10}
pgbench=/usr/lib/postgresql/15/bin/pgbench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; psql -X -q "$url" -c "DROP TABLE IF EXISTS ergon_commit_probe" >/dev/null' EXIT
psql -X -q -v ON_ERROR_STOP=1 "$url" \
  -c "DROP TABLE IF EXISTS ergon_commit_probe" \
  -c "CREATE TABLE ergon_commit_probe (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())"
echo "SELECT 1;" >"$tmp/select.sql"
echo "INSERT INTO ergon_commit_probe DEFAULT VALUES;" >"$tmp/insert.sql"
psql -X -A -t "$url" -c "SELECT 'server: ' || string_agg(name || '=' || setting, ', ' ORDER BY name)
  FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method')"
for v in select insert; do
  printf '%s: ' "$v"
  "$pgbench" -n -c 1 -T "$secs" -f "$tmp/$v.sql" "$url" 2>/dev/null | grep 'latency average'
done
gap=${GAP_MS:-5}
printf '\\sleep %s ms\nINSERT INTO ergon_commit_probe DEFAULT VALUES;\n' "$gap" >"$tmp/gap.sql"
printf 'insert after a %s ms pause: ' "$gap"
"$pgbench" -n -c 1 -T "$secs" -r -f "$tmp/gap.sql" "$url" 2>/dev/null |
  awk '/INSERT INTO ergon_commit_probe/ { print "latency average = " $1 " ms" }'
