#!/usr/bin/env bash
# The SQL-only ceiling: what PostgreSQL alone does with a table shaped like Ergon's `jobs`
# (same columns, same indexes; see src/store/postgres/pg_migrations.cc), with no worker, no
# handler and no client-side work. ergon-bench's processing figure is compared with it.
#
#   bench/pgbench-ceiling.sh URL [SECONDS]        (default 10 s per variant)
#   env: CLIENTS (pgbench clients, default 4), THREADS (pgbench -j, default 2),
#        ROWS (pending rows loaded before each claim variant, default SECONDS * 150000),
#        COPY_ROWS (rows per COPY measurement, default 400000),
#        VARIANTS (which of the variants below to run, space-separated; default all)
#
# Variants, each on a freshly loaded table (loading and VACUUM ANALYZE are not timed):
#   update        one statement: claim 100 Pending rows (FOR UPDATE SKIP LOCKED, claim order)
#                 and mark them Completed
#   claim_complete  the issue's definition of the ceiling: claim 100 (-> Running) and complete
#                 them (-> Completed) as two statements in one transaction: every job is
#                 written twice, as a worker writes it, but one commit covers both
#   update_2tx    claim 100 (-> Running) in one transaction, complete them in a second one:
#                 the shape of a worker that batches its completions
#   delete        claim 100 and DELETE them in one statement
#   insert_1      one row per transaction with its pg_notify: what start_job would ask of the
#                 server if every enqueue notified in its own transaction
#   insert_1q     one row per transaction without pg_notify: the ceiling of single_enqueue
#                 with wake-ups coalesced (a transaction that notifies holds a database-wide
#                 lock through its commit, so notifying commits do not share WAL flushes)
#   insert_1000   INSERT ... SELECT of 1000 Pending rows per transaction (server-side rows)
#   copy          COPY ... FROM STDIN of COPY_ROWS rows, split over CLIENTS psql \copy
#                 processes at once, one transaction each (pgbench cannot run COPY FROM STDIN)
# jobs/s = pgbench tps * rows per transaction. Each claim variant checks afterwards that
# Pending rows were left, i.e. that the table never ran dry during the run.
#
# Uses the schema ergon_ceiling (dropped and recreated; dropped at the end). Needs pgbench and
# psql (PostgreSQL 15: the package postgresql-15 ships /usr/lib/postgresql/15/bin/pgbench).
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 URL [SECONDS]" >&2
  exit 2
fi
url=$1
secs=${2:-10}
clients=${CLIENTS:-4}
threads=${THREADS:-2}
rows=${ROWS:-$((secs * 150000))}
copy_rows=${COPY_ROWS:-400000}
variants=" ${VARIANTS:-update claim_complete update_2tx delete insert_1 insert_1q insert_1000 copy} "
wanted() { [[ $variants == *" $1 "* ]]; }

pgbench=$(command -v pgbench || true)
if [[ -z "$pgbench" ]]; then
  for candidate in /usr/lib/postgresql/15/bin/pgbench /usr/lib/postgresql/*/bin/pgbench; do
    if [[ -x "$candidate" ]]; then
      pgbench=$candidate
      break
    fi
  done
fi
if [[ -z "$pgbench" ]]; then
  echo "pgbench-ceiling: pgbench not found (package postgresql-15)" >&2
  exit 1
fi

work=$(mktemp -d)
cleanup() {
  psql -X -q "$url" -c "DROP SCHEMA IF EXISTS ergon_ceiling CASCADE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

sql() { psql -X -q -v ON_ERROR_STOP=1 "$url" "$@"; }
value() { psql -X -A -t -v ON_ERROR_STOP=1 "$url" -c "$1"; }
calc() { awk "BEGIN { printf \"%.1f\", $1 }"; }

# The jobs table of Ergon's migrations 1 and 3, with all its indexes.
create_table() {
  sql >/dev/null <<'SQL'
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS ergon_ceiling CASCADE;
CREATE SCHEMA ergon_ceiling;
CREATE TABLE ergon_ceiling.jobs (
  id               uuid PRIMARY KEY,
  job_type         varchar NOT NULL,
  job_data         jsonb NOT NULL,
  status           varchar NOT NULL
                   CHECK (status IN ('Pending', 'Running', 'Completed', 'Failed', 'Cancelled')),
  created_at       timestamptz NOT NULL,
  started_at       timestamptz,
  completed_at     timestamptz,
  error_message    varchar,
  progress_message varchar,
  progress_percent integer CHECK (progress_percent BETWEEN 0 AND 100),
  queue            varchar NOT NULL DEFAULT 'default',
  priority         integer NOT NULL DEFAULT 0,
  run_at           timestamptz NOT NULL,
  attempt          integer NOT NULL DEFAULT 0,
  max_attempts     integer CHECK (max_attempts IS NULL OR max_attempts >= 1),
  worker_id        varchar,
  heartbeat_at     timestamptz,
  cancel_requested boolean NOT NULL DEFAULT false,
  rescue_count     integer NOT NULL DEFAULT 0,
  timeout_ms       bigint CHECK (timeout_ms IS NULL OR timeout_ms > 0)
);
CREATE INDEX jobs_claim_idx ON ergon_ceiling.jobs (priority, run_at, id) WHERE status = 'Pending';
CREATE INDEX jobs_status_idx ON ergon_ceiling.jobs (status, id);
CREATE INDEX jobs_running_idx ON ergon_ceiling.jobs (worker_id, heartbeat_at)
  WHERE status = 'Running';
CREATE INDEX jobs_finished_idx ON ergon_ceiling.jobs (status, completed_at)
  WHERE status IN ('Completed', 'Failed', 'Cancelled');
SQL
}

insert_columns="(id, job_type, job_data, status, created_at, run_at)"
# N Pending rows as Ergon writes them (UUIDv7-shaped, time-ordered ids; due in the past), in
# the order of insert_columns; the ids start at OFFSET + 1.
rows_sql() {  # rows_sql N [OFFSET]
  local n=$1 off=${2:-0}
  echo "SELECT (lpad(to_hex(floor(extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7' ||
          lpad(to_hex((g >> 12) & 4095), 3, '0') || '8' || lpad(to_hex(g & 4095), 3, '0') ||
          lpad(to_hex(g), 12, '0'))::uuid,
        'bench_noop', jsonb_build_object('n', g), 'Pending', t, t
   FROM (SELECT g, now() - interval '1 hour' + (g - $off) * (interval '3600 seconds' / $n) AS t
         FROM generate_series($off + 1::bigint, $off + $n) AS g) AS s"
}

load() {  # load N: a fresh table with N pending rows, settled as autovacuum would leave it
  create_table
  sql -c "INSERT INTO ergon_ceiling.jobs $insert_columns $(rows_sql "$1")" >/dev/null
  sql -c "VACUUM (ANALYZE) ergon_ceiling.jobs" >/dev/null
}

run_pgbench() {  # run_pgbench SCRIPT -> tps
  if ! "$pgbench" -n -f "$1" -c "$clients" -j "$threads" -T "$secs" "$url" >"$work/out" 2>&1; then
    cat "$work/out" >&2
    exit 1
  fi
  awk '/^tps = / { print $3; exit }' "$work/out"
}

claim_cte="WITH due AS (
  SELECT id FROM ergon_ceiling.jobs
   WHERE status = 'Pending' AND run_at <= now()
   ORDER BY priority, run_at, id
   LIMIT 100
   FOR UPDATE SKIP LOCKED)"

printf '%s\n' "$claim_cte" \
  "UPDATE ergon_ceiling.jobs AS j" \
  "   SET status = 'Completed', attempt = j.attempt + 1, worker_id = 'pgbench-' || :client_id," \
  "       started_at = now(), heartbeat_at = now(), completed_at = now()" \
  "  FROM due WHERE j.id = due.id;" >"$work/update.sql"
printf '%s\n' "$claim_cte" \
  "UPDATE ergon_ceiling.jobs AS j" \
  "   SET status = 'Running', attempt = j.attempt + 1, worker_id = 'pgbench-' || :client_id," \
  "       started_at = now(), heartbeat_at = now()" \
  "  FROM due WHERE j.id = due.id;" \
  "UPDATE ergon_ceiling.jobs SET status = 'Completed', completed_at = now()" \
  " WHERE worker_id = 'pgbench-' || :client_id AND status = 'Running';" >"$work/update_2tx.sql"
printf '%s\n' "BEGIN;" "$claim_cte" \
  "UPDATE ergon_ceiling.jobs AS j" \
  "   SET status = 'Running', attempt = j.attempt + 1, worker_id = 'pgbench-' || :client_id," \
  "       started_at = now(), heartbeat_at = now()" \
  "  FROM due WHERE j.id = due.id;" \
  "UPDATE ergon_ceiling.jobs SET status = 'Completed', completed_at = now()" \
  " WHERE worker_id = 'pgbench-' || :client_id AND status = 'Running';" \
  "END;" >"$work/claim_complete.sql"
printf '%s\n' "$claim_cte" \
  "DELETE FROM ergon_ceiling.jobs AS j USING due WHERE j.id = due.id;" >"$work/delete.sql"
printf '%s\n' "WITH ins AS (INSERT INTO ergon_ceiling.jobs $insert_columns" \
  "  VALUES (gen_random_uuid(), 'bench_noop', '{\"n\": 0}', 'Pending', now(), now())" \
  "  RETURNING run_at)" \
  "SELECT pg_notify('ergon_ceiling', run_at::text) FROM ins;" >"$work/insert_1.sql"
printf '%s\n' "INSERT INTO ergon_ceiling.jobs $insert_columns" \
  "SELECT gen_random_uuid(), 'bench_noop', '{\"n\": 0}', 'Pending', now(), now()" \
  "  FROM generate_series(1, 1000);" >"$work/insert_1000.sql"
printf '%s\n' "INSERT INTO ergon_ceiling.jobs $insert_columns" \
  "  VALUES (gen_random_uuid(), 'bench_noop', '{\"n\": 0}', 'Pending', now(), now());" \
  >"$work/insert_1q.sql"

echo "pgbench-ceiling: $(value "SELECT split_part(version(), ' on ', 1)"), fsync=$(value 'SHOW fsync')," \
  "synchronous_commit=$(value 'SHOW synchronous_commit'), full_page_writes=$(value 'SHOW full_page_writes')"
echo "  $clients clients, $threads pgbench threads, $secs s per variant," \
  "$rows pending rows loaded per claim variant"
printf '%-14s %12s %12s  %s\n' variant tps jobs/s notes

for variant in update claim_complete update_2tx delete; do
  wanted "$variant" || continue
  load "$rows"
  tps=$(run_pgbench "$work/$variant.sql")
  left=$(value "SELECT count(*) FROM ergon_ceiling.jobs WHERE status = 'Pending'")
  note="$left pending left"
  if [[ "$left" -eq 0 ]]; then note="RAN DRY: raise ROWS, the figure is too low"; fi
  printf '%-14s %12s %12s  %s\n' "$variant" "$tps" "$(calc "$tps * 100")" "$note"
done

if wanted insert_1; then
  create_table
  tps=$(run_pgbench "$work/insert_1.sql")
  printf '%-14s %12s %12s  %s\n' insert_1 "$tps" "$(calc "$tps * 1")" \
    "one row and its pg_notify per transaction"
fi
if wanted insert_1q; then
  create_table
  tps=$(run_pgbench "$work/insert_1q.sql")
  printf '%-14s %12s %12s  %s\n' insert_1q "$tps" "$(calc "$tps * 1")" \
    "one row per transaction, no pg_notify"
fi
if wanted insert_1000; then
  create_table
  tps=$(run_pgbench "$work/insert_1000.sql")
  printf '%-14s %12s %12s  %s\n' insert_1000 "$tps" "$(calc "$tps * 1000")" \
    "INSERT ... SELECT of 1000 rows per transaction"
fi
wanted copy || exit 0

# COPY: the server makes each client's rows once (not timed), then CLIENTS psql processes load
# them back through COPY FROM STDIN at once, one transaction each.
per=$((copy_rows / clients))
for ((c = 0; c < clients; c++)); do
  sql -c "\\copy ($(rows_sql "$per" $((c * per)))) TO '$work/copy$c.txt'" >/dev/null
done
create_table
pids=()
start=$(date +%s.%N)
for ((c = 0; c < clients; c++)); do
  psql -X -q -v ON_ERROR_STOP=1 "$url" \
    -c "\\copy ergon_ceiling.jobs $insert_columns FROM '$work/copy$c.txt'" >/dev/null &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
end=$(date +%s.%N)
loaded=$(value "SELECT count(*) FROM ergon_ceiling.jobs")
printf '%-14s %12s %12s  %s\n' copy "-" "$(calc "$loaded / ($end - $start)")" \
  "$loaded rows, $clients parallel COPY FROM STDIN"
