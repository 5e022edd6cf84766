#!/usr/bin/env bash
# `ergon worker` with a Messaging section, end to end: a job enqueued with the CLI reaches the
# worker through Azure Storage Queues (Azurite) alone (the worker polls once an hour), runs
# its command, and leaves no message behind.
#   tests/messaging/cli_transport_test.sh ERGON_BINARY [--postgres]   (needs ERGON_TEST_AZURITE)
# On a SQLite file, or with --postgres in a fresh schema of ERGON_TEST_POSTGRES_URL.
set -euo pipefail
ergon=$1
postgres=${2:-}
schema=""
if [[ "$postgres" == --postgres ]]; then
  if [[ -z "${ERGON_TEST_POSTGRES_URL:-}" ]]; then
    echo "skipped: ERGON_TEST_POSTGRES_URL is not set (scripts/pg-test-cluster.sh)" >&2
    exit 77
  fi
  schema="t_cli_transport_$RANDOM$RANDOM"
fi
if [[ -z "${ERGON_TEST_AZURITE:-}" ]]; then
  echo "skipped: ERGON_TEST_AZURITE is not set (scripts/azurite.sh start DIR)" >&2
  exit 77
fi
dir=$(mktemp -d)
worker=""
cleanup() {
  if [[ -n "$worker" ]]; then kill -9 "$worker" 2>/dev/null || true; fi
  if [[ -n "$schema" ]]; then
    psql -q "$ERGON_TEST_POSTGRES_URL" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
db="sqlite:$dir/jobs.db"
[[ -z "$schema" ]] || db="$ERGON_TEST_POSTGRES_URL?schema=$schema"
queue="ergon-cli-$RANDOM$RANDOM"
printf '#!/bin/sh\ncat > %s/ran.json\n' "$dir" > "$dir/handler.sh"
chmod +x "$dir/handler.sh"
cat > "$dir/ergon.json" <<JSON
{
  "Database": "$db",
  "JobsWorker": { "PollingInterval": "01:00:00", "RunScheduler": false },
  "Handlers": { "hello": { "command": ["$dir/handler.sh"] } },
  "Messaging": {
    "Transport": "AzureStorageQueues",
    "ConnectionString": "$ERGON_TEST_AZURITE",
    "QueueName": "$queue",
    "ReceiveInterval": "00:00:00.100",
    "RelayInterval": "00:00:00.100"
  }
}
JSON
"$ergon" migrate --db "$db" >/dev/null
"$ergon" worker --config "$dir/ergon.json" 2> "$dir/worker.log" &
worker=$!
# Started (and the outbox enabled) once the worker is registered.
for _ in $(seq 200); do
  "$ergon" workers list --db "$db" 2>/dev/null | grep -q ":" && break
  sleep 0.05
done
# Due in a second: the worker's one poll at start cannot have taken it.
id=$("$ergon" enqueue hello '{"greeting":"hi"}' --delay 1s --db "$db")
status=""
for _ in $(seq 200); do
  status=$("$ergon" jobs show "$id" --db "$db" | sed -n 's/^status: *//p')
  [[ "$status" == Completed ]] && break
  sleep 0.1
done
kill -TERM "$worker"
wait "$worker" || { echo "FAIL: worker exited with $?"; cat "$dir/worker.log"; exit 1; }
worker=""
if [[ "$status" != Completed ]]; then
  echo "FAIL: job $id is $status"
  cat "$dir/worker.log"
  exit 1
fi
grep -q '"greeting":"hi"' "$dir/ran.json" || { echo "FAIL: the handler did not get the job data"; exit 1; }
if grep -q "error" "$dir/worker.log"; then
  echo "FAIL: the worker logged errors"
  cat "$dir/worker.log"
  exit 1
fi
echo "ok: job $id ran through queue $queue"
