#!/usr/bin/env bash
# The crash test: several `ergon worker` processes share one database and run command handlers
# that write `start`/`end` lines to a ledger, while this script keeps killing workers with
# SIGKILL, stopping them gracefully, starting new ones and (on PostgreSQL) restarting the
# database server. The handler is a shell script without exec that starts a child, which
# starts a grandchild; each of the three writes its own lines (the grandchild also `tick`s while
# it runs). At the end it prints, and asserts: jobs enqueued, Completed, lost (must be 0), run
# concurrently on two workers (must be 0), overlapping runs counting every process of an attempt
# (must be 0: no line of an attempt, from any of its processes, may come after the next attempt
# started), run more than once (only allowed after a kill or a graceful stop of the worker that
# ran it; a database restart must cause none), and the longest time a job of a killed worker
# waited before it ran again. Workers prefetch (PrefetchJobs 4) and store outcomes in batches,
# so both fast paths are under the chaos too.
#
#   tests/crash/crash_test.sh --ergon build/release/apps/ergon/ergon [--size small|large]
#                             [--postgres]   (a private PostgreSQL cluster, restarted as chaos)
#                             [--db URL]     (an existing database; no restarts)
#   default: a fresh SQLite file.
set -euo pipefail

ergon="" size=small db="" postgres=0
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --ergon) ergon=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --db) db=$2; shift 2 ;;
    --postgres) postgres=1; shift ;;
    *) echo "crash_test: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -x "$ergon" ]] || { echo "crash_test: --ergon PATH to the ergon binary is required" >&2; exit 2; }
case "$size" in
  small) jobs=300 workers=3 chaos_steps=16 ;;
  large) jobs=5000 workers=4 chaos_steps=150 ;;
  *) echo "crash_test: --size is small or large" >&2; exit 2 ;;
esac

dir=$(mktemp -d)
chmod 755 "$dir"  # the cluster's owner (postgres, when run as root) must reach $dir/pg
pids=()
pg_dir=""
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [[ -n "$pg_dir" ]]; then "$here/../../scripts/pg-test-cluster.sh" stop "$pg_dir" || true; fi
  if [[ -n "${CRASH_TEST_KEEP:-}" ]]; then echo "crash_test: kept $dir" >&2; else rm -rf "$dir"; fi
}
trap cleanup EXIT
# A lease must outlast a database restart (about a second here), or the restart would make
# healthy jobs look orphaned; on SQLite nothing restarts and short leases keep the test quick.
threshold="00:00:01.500"
if [[ $postgres -eq 1 ]]; then
  [[ -z "$db" ]] || { echo "crash_test: --postgres and --db exclude each other" >&2; exit 2; }
  if [[ -z "${PG_BINDIR:-}" ]] && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    echo "crash_test: skipped: no PostgreSQL server binaries (scripts/install-deps.sh --test)" >&2
    exit 77
  fi
  pg_dir=$dir/pg
  db=$("$here/../../scripts/pg-test-cluster.sh" start "$pg_dir")
  threshold="00:00:04"
fi
[[ -n "$db" ]] || db="sqlite:$dir/jobs.db"
ledger=$dir/ledger.txt
chaos=$dir/chaos.txt
: > "$ledger"
: > "$chaos"

# The handler, its child and its grandchild: each writes a line when it starts and when it ends
# (and the grandchild while it runs), with the job, the attempt, the worker that ran it (each
# worker gets its own number through its config's handler environment) and the time. Lines
# this short are appended atomically (O_APPEND, < PIPE_BUF).
cat > "$dir/log.sh" <<SH
log() { echo "\$1 \$ERGON_JOB_ID \$ERGON_ATTEMPT \$CRASH_WORKER \$2 \$(date +%s.%N)" >> "$ledger"; }
SH
cat > "$dir/handler.sh" <<SH
#!/bin/sh
. "$dir/log.sh"
cat > /dev/null
log start handler
"$dir/child.sh" &
sleep 0.1
: > "$dir/done/\$ERGON_JOB_ID.\$ERGON_ATTEMPT.\$CRASH_WORKER"
wait
log end handler
SH
cat > "$dir/child.sh" <<SH
#!/bin/sh
. "$dir/log.sh"
log start child
"$dir/grandchild.sh" &
wait
log end child
SH
# The grandchild ticks until its handler says the attempt is done, at most a second: left
# orphaned (its handler killed), it outlives a replacement worker's start, so an attempt whose
# processes survived their worker shows as an overlap.
cat > "$dir/grandchild.sh" <<SH
#!/bin/sh
. "$dir/log.sh"
log start grandchild
i=0
while [ ! -e "$dir/done/\$ERGON_JOB_ID.\$ERGON_ATTEMPT.\$CRASH_WORKER" ] && [ \$i -lt 20 ]; do
  sleep 0.05; log tick grandchild; i=\$((i + 1))
done
log end grandchild
SH
mkdir "$dir/done"
chmod +x "$dir/handler.sh" "$dir/child.sh" "$dir/grandchild.sh"

# Short leases so that rescues happen within the test; attempts and rescues are unbounded so
# that every job ends Completed however often its worker dies. One config per worker: its
# number reaches the handlers as CRASH_WORKER.
write_config() {
  cat > "$dir/ergon-$1.json" <<JSON
{
  "Database": "$db",
  "JobsWorker": {
    "MaxConcurrentJobs": 4,
    "PrefetchJobs": 4,
    "PollingInterval": "00:00:00.100",
    "HeartbeatInterval": "00:00:00.200",
    "OrphanedJobThreshold": "$threshold",
    "OrphanedJobsCheckInterval": "00:00:00.500",
    "ShutdownTimeout": "00:00:02",
    "RetryBaseDelay": "00:00:00.100",
    "RetryMaxDelay": "00:00:01",
    "DefaultMaxAttempts": 100000,
    "PoisonJobRescues": 1000,
    "RunScheduler": false
  },
  "Handlers": {
    "crash": { "command": ["$dir/handler.sh"], "env": { "CRASH_WORKER": "$1" } }
  }
}
JSON
}
# The workers' command lock files (docs/reliability.md), away from other tests'.
export ERGON_RUNTIME_DIR=$dir/run
mkdir -m 700 "$ERGON_RUNTIME_DIR"

"$ergon" migrate --db "$db" >/dev/null
"$ergon" enqueue crash '{}' --count "$jobs" --db "$db" > "$dir/ids.txt"

declare -A number_of  # worker pid -> its number
started=0
start_worker() {
  started=$((started + 1))
  write_config "$started"
  "$ergon" worker --config "$dir/ergon-$started.json" >>"$dir/workers.log" 2>&1 &
  pids+=($!)
  number_of[$!]=$started
  disown $!  # no "Killed" notices from the shell
}
now() { date +%s.%N; }
for _ in $(seq "$workers"); do start_worker; done

# Chaos: every half second, SIGKILL a random worker, or SIGTERM one (graceful), then replace it;
# with --postgres every fourth step restarts the database server instead (fast shutdown: the
# server ends every session, the workers lose their connections, in-flight statements fail)
# and keeps it down for 1.5 s: long enough that handlers finish while it is away and their
# outcomes must wait for it, shorter than the lease.
for step in $(seq "$chaos_steps"); do
  sleep 0.5
  if [[ -n "$pg_dir" ]] && (( step % 4 == 0 )); then
    t0=$(now)
    if ! "$here/../../scripts/pg-test-cluster.sh" restart "$pg_dir" 1.5 >/dev/null; then
      echo "crash_test: the database did not restart; its log ends with:" >&2
      tail -20 "$pg_dir/postgres.log" >&2
      exit 1
    fi
    echo "restart db $t0 $(now)" >> "$chaos"
    continue
  fi
  alive=()
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
  [[ ${#alive[@]} -gt 0 ]] || { start_worker; continue; }
  victim=${alive[$((RANDOM % ${#alive[@]}))]}
  # Each line holds the time before the signal and the time the worker was gone: a handler
  # that the worker started in between (it had not seen the signal yet) is the victim's too.
  if (( step % 2 == 1 )); then what=kill sig=-9; else what=term sig=-TERM; fi
  t0=$(now)
  kill "$sig" "$victim"
  while kill -0 "$victim" 2>/dev/null; do sleep 0.01; done
  echo "$what ${number_of[$victim]} $t0 $(now)" >> "$chaos"
  start_worker
done

# Let the survivors finish; every job must reach a final state.
deadline=$((SECONDS + 180))
remaining() {
  local p r
  p=$("$ergon" jobs list --status Pending --limit 10000 --json --db "$db" | grep -c '"id"' || true)
  r=$("$ergon" jobs list --status Running --limit 10000 --json --db "$db" | grep -c '"id"' || true)
  echo $((p + r))
}
while [[ $(remaining) -gt 0 && $SECONDS -lt $deadline ]]; do sleep 0.5; done
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done
pids=()

count() { "$ergon" jobs list --status "$1" --limit 10000 --json --db "$db" | grep -c '"id"' || true; }
completed=$(count Completed)
failed=$(count Failed)
cancelled=$(count Cancelled)
lost=$((jobs - completed - failed - cancelled))

# The ledger against the chaos log.
# Ledger lines: kind (start, tick, end), job, attempt, worker number, process (handler, child,
# grandchild), time. An attempt starts with its handler's start line; it lasts until the last
# line any of its processes wrote.
read -r concurrent overlapping reruns unexplained longest longest_term < <(awk \
    -v unexplained_file="$dir/unexplained.txt" '
  FNR == NR {
    if ($1 == "kill" || $1 == "term") { what[$2] = $1; from[$2] = $3; to[$2] = $4 }
    next
  }
  # Runs are numbered per job in the order their handlers started: a release gives its attempt
  # back, so the next run may carry the same ERGON_ATTEMPT (under another worker).
  $1 == "start" && $5 == "handler" {
    a = ++n[$2]; run[$2, $3, $4] = a; s[$2, a] = $6; w[$2, a] = $4; starts[$2]++
  }
  ($2, $3, $4) in run {
    a = run[$2, $3, $4]
    if ($1 == "end" && $5 == "handler") e[$2, a] = $6
    t = $6 + 0; if (!(($2, a) in last) || t > last[$2, a]) last[$2, a] = t
  }
  END {
    concurrent = 0; overlapping = 0; reruns = 0; unexplained = 0; longest = 0; longest_term = 0
    for (job in starts) {
      if (starts[job] > 1) reruns++
      # Every process of every run: nothing of run a after a later run b started.
      overlap = 0
      for (a = 1; a <= n[job]; a++) {
        if (!((job, a) in last)) continue
        for (b = a + 1; b <= n[job]; b++) {
          if (!((job, b) in s) || last[job, a] <= s[job, b] + 0) continue
          overlap = 1
          printf "overlapping run: job %s run %d wrote at %.3f, after run %d started at %.3f\n", \
            job, a, last[job, a], b, s[job, b] > "/dev/stderr"
        }
      }
      overlapping += overlap
      # Walk the attempts in order: each must start after the previous one ended, and a
      # re-run must follow a kill or a graceful stop of the previous worker, signalled after
      # that attempt started... or while it was being started (to[] is when the worker was
      # gone), and before the re-run.
      prev = ""
      for (a = 1; a <= n[job]; a++) {
        if (!((job, a) in s)) continue
        if (prev != "") {
          if ((job, prev) in e && s[job, a] < e[job, prev]) concurrent++
          pw = w[job, prev]
          if ((pw in what) && to[pw] >= s[job, prev] && from[pw] <= s[job, a]) {
            wait_s = s[job, a] - to[pw]
            if (what[pw] == "kill" && wait_s > longest) longest = wait_s
            if (what[pw] == "term" && wait_s > longest_term) longest_term = wait_s
          } else {
            unexplained++
            printf "unexplained re-run: job %s run %d (worker %s, %s-%s) then %d at %s\n", \
              job, prev, pw, s[job, prev], e[job, prev], a, s[job, a] > "/dev/stderr"
            print job > unexplained_file
          }
        }
        prev = a
      }
    }
    printf "%d %d %d %d %.2f %.2f\n", concurrent, overlapping, reruns, unexplained, longest, \
      longest_term
  }' "$chaos" "$ledger")

kills=$(grep -c '^kill' "$chaos" || true)
terms=$(grep -c '^term' "$chaos" || true)
restarts=$(grep -c '^restart' "$chaos" || true)
longest_restart=$(awk '$1 == "restart" { d = $4 - $3; if (d > m) m = d } END { printf "%.2f", m }' "$chaos")
echo "crash test ($size, $db):"
echo "  workers killed with SIGKILL:     $kills"
echo "  workers stopped gracefully:      $terms"
echo "  database restarts:               $restarts (longest ${longest_restart}s)"
echo "  jobs enqueued:                   $jobs"
echo "  jobs Completed:                  $completed"
echo "  jobs Failed / Cancelled:         $failed / $cancelled"
echo "  jobs lost:                       $lost"
echo "  jobs run concurrently twice:     $concurrent"
echo "  overlapping runs (all processes of an attempt): $overlapping"
echo "  jobs run more than once:         $reruns (after a kill or a graceful stop)"
echo "  re-runs with no kill or stop:    $unexplained"
echo "  longest wait after a kill:       ${longest}s"
echo "  longest wait after a stop:       ${longest_term}s"

# The database's view of each unexplained re-run, for whoever investigates.
if [[ -s "$dir/unexplained.txt" ]]; then
  sort -u "$dir/unexplained.txt" | while read -r id; do "$ergon" jobs show "$id" --db "$db" >&2; done
fi
status=0
[[ $lost -eq 0 ]] || { echo "FAIL: $lost jobs lost"; status=1; }
[[ $completed -eq $jobs ]] || { echo "FAIL: only $completed of $jobs Completed"; status=1; }
[[ $concurrent -eq 0 ]] || { echo "FAIL: $concurrent jobs ran on two workers at once"; status=1; }
[[ $overlapping -eq 0 ]] ||
  { echo "FAIL: $overlapping jobs had a process of one attempt running into the next"; status=1; }
[[ $unexplained -eq 0 ]] || { echo "FAIL: $unexplained re-runs without a kill or stop"; status=1; }
# A graceful stop gives its jobs back at once, at their old place in the queue: none of them
# may have waited for orphan rescue (the lease).
threshold_s=$(awk -F: '{ print $1 * 3600 + $2 * 60 + $3 }' <<< "$threshold")
awk -v w="$longest_term" -v t="$threshold_s" 'BEGIN { exit !(w < t) }' ||
  { echo "FAIL: a stopped worker's job waited ${longest_term}s, as long as a lease"; status=1; }
[[ $status -eq 0 ]] && echo "crash test passed"
exit $status
