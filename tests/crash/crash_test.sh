#!/usr/bin/env bash
# The crash test: several `ergon worker` processes share one database and run command handlers
# that write `start`/`end` lines to a ledger, while this script keeps killing workers with
# SIGKILL, stopping them gracefully and starting new ones. At the end it prints, and asserts:
# jobs enqueued, Completed, lost (must be 0), run concurrently on two workers (must be 0), run
# more than once (only allowed after a kill or a graceful stop), and the longest time a job of a
# killed worker waited before it ran again.
#
#   tests/crash/crash_test.sh --ergon build/release/apps/ergon/ergon [--size small|large]
#                             [--db URL]        (default: a fresh SQLite file)
set -euo pipefail

ergon="" size=small db=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --ergon) ergon=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --db) db=$2; shift 2 ;;
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
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
[[ -n "$db" ]] || db="sqlite:$dir/jobs.db"
ledger=$dir/ledger.txt
chaos=$dir/chaos.txt
: > "$ledger"
: > "$chaos"

# The handler: one ledger line when it starts and one when it ends, from the worker's child
# (so $PPID is the worker). Lines this short are appended atomically (O_APPEND, < PIPE_BUF).
cat > "$dir/handler.sh" <<SH
#!/bin/sh
cat > /dev/null
echo "start \$ERGON_JOB_ID \$ERGON_ATTEMPT \$PPID \$(date +%s.%N)" >> "$ledger"
sleep 0.1
echo "end \$ERGON_JOB_ID \$ERGON_ATTEMPT \$PPID \$(date +%s.%N)" >> "$ledger"
SH
chmod +x "$dir/handler.sh"

# Short leases so that rescues happen within the test; attempts and rescues are unbounded so
# that every job ends Completed however often its worker dies.
cat > "$dir/ergon.json" <<JSON
{
  "Database": "$db",
  "JobsWorker": {
    "MaxConcurrentJobs": 4,
    "PollingInterval": "00:00:00.100",
    "HeartbeatInterval": "00:00:00.200",
    "OrphanedJobThreshold": "00:00:01.500",
    "OrphanedJobsCheckInterval": "00:00:00.500",
    "ShutdownTimeout": "00:00:02",
    "RetryBaseDelay": "00:00:00.100",
    "RetryMaxDelay": "00:00:01",
    "DefaultMaxAttempts": 100000,
    "PoisonJobRescues": 1000,
    "RunScheduler": false
  },
  "Handlers": { "crash": { "command": ["$dir/handler.sh"] } }
}
JSON

"$ergon" migrate --db "$db" >/dev/null
"$ergon" enqueue crash '{}' --count "$jobs" --db "$db" > "$dir/ids.txt"

start_worker() {
  "$ergon" worker --config "$dir/ergon.json" >>"$dir/workers.log" 2>&1 &
  pids+=($!)
  disown $!  # no "Killed" notices from the shell
}
now() { date +%s.%N; }
for _ in $(seq "$workers"); do start_worker; done

# Chaos: every half second, SIGKILL a random worker, or SIGTERM one (graceful), then replace it.
for step in $(seq "$chaos_steps"); do
  sleep 0.5
  alive=()
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
  [[ ${#alive[@]} -gt 0 ]] || { start_worker; continue; }
  victim=${alive[$((RANDOM % ${#alive[@]}))]}
  if (( step % 2 == 1 )); then
    echo "kill $victim $(now)" >> "$chaos"
    kill -9 "$victim"
  else
    echo "term $victim $(now)" >> "$chaos"
    kill -TERM "$victim"
    while kill -0 "$victim" 2>/dev/null; do sleep 0.05; done
  fi
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
read -r concurrent reruns unexplained longest < <(awk '
  FNR == NR { if ($1 == "kill") killed[$2] = $3; else termed[$2] = $3; next }
  $1 == "start" { s[$2, $3] = $5; w[$2, $3] = $4; if ($3 > n[$2]) n[$2] = $3; starts[$2]++ }
  $1 == "end"   { e[$2, $3] = $5 }
  END {
    concurrent = 0; reruns = 0; unexplained = 0; longest = 0
    for (job in starts) {
      if (starts[job] > 1) reruns++
      # Walk the attempts in order: each must start after the previous one ended, and a
      # re-run must follow a killed or stopped worker.
      prev = ""
      for (a = 1; a <= n[job]; a++) {
        if (!((job, a) in s)) continue
        if (prev != "") {
          if ((job, prev) in e && s[job, a] < e[job, prev]) concurrent++
          pw = w[job, prev]
          if (pw in killed) {
            wait_s = s[job, a] - killed[pw]
            if (wait_s > longest) longest = wait_s
          } else if (!(pw in termed)) {
            unexplained++
          }
        }
        prev = a
      }
    }
    printf "%d %d %d %.2f\n", concurrent, reruns, unexplained, longest
  }' "$chaos" "$ledger")

kills=$(grep -c '^kill' "$chaos" || true)
terms=$(grep -c '^term' "$chaos" || true)
echo "crash test ($size, $db):"
echo "  workers killed with SIGKILL:     $kills"
echo "  workers stopped gracefully:      $terms"
echo "  jobs enqueued:                   $jobs"
echo "  jobs Completed:                  $completed"
echo "  jobs Failed / Cancelled:         $failed / $cancelled"
echo "  jobs lost:                       $lost"
echo "  jobs run concurrently twice:     $concurrent"
echo "  jobs run more than once:         $reruns (after a kill or a graceful stop)"
echo "  re-runs with no kill or stop:    $unexplained"
echo "  longest wait after a kill:       ${longest}s"

status=0
[[ $lost -eq 0 ]] || { echo "FAIL: $lost jobs lost"; status=1; }
[[ $completed -eq $jobs ]] || { echo "FAIL: only $completed of $jobs Completed"; status=1; }
[[ $concurrent -eq 0 ]] || { echo "FAIL: $concurrent jobs ran on two workers at once"; status=1; }
[[ $unexplained -eq 0 ]] || { echo "FAIL: $unexplained re-runs without a kill or stop"; status=1; }
[[ $status -eq 0 ]] && echo "crash test passed"
exit $status
