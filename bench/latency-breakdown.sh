#!/usr/bin/env bash
# Where enqueue-to-start latency goes on PostgreSQL: runs `ergon-bench --only latency` once with
# every statement logged (log_min_duration_statement = 0, millisecond log timestamps; both
# reset afterwards) and reads, per job, from the server log: the insert's execution time, the
# time from the insert's log line to the claim's start (the claim's log time minus its
# duration: the insert's commit, the NOTIFY, the worker's wake-up), and the claim's execution
# time. Prints the medians. Needs the server's log file (scripts/pg-test-cluster.sh's
# DIR/postgres.log) and superuser rights for ALTER SYSTEM.
#
#   bench/latency-breakdown.sh URL SERVER_LOG [ERGON_BENCH]
set -euo pipefail
url=$1
log=$2
bench=${3:-build/bench/bench/ergon-bench}
set_logging() {
  psql -X -q -v ON_ERROR_STOP=1 "$url" -c "$1 log_min_duration_statement$2" \
    -c "$1 log_line_prefix$3" -c "SELECT pg_reload_conf()" >/dev/null
}
set_logging "ALTER SYSTEM SET" " = 0" " = '%m [%p] '"
trap 'set_logging "ALTER SYSTEM RESET" "" ""' EXIT
start=$(wc -l <"$log")
"$bench" --db "$url" --only latency --runs 1 2>/dev/null | grep '^latency'
tail -n +"$((start + 1))" "$log" | grep -E 'execute ergon_job_(insert|claim)' | awk '
  function ms(hms,  t) { split(hms, t, ":"); return (t[1] * 3600 + t[2] * 60 + t[3]) * 1000 }
  $10 ~ /insert/ { ins_end = ms($2); ins = $7; next }
  ins_end != "" { n++; gap[n] = ms($2) - $7 - ins_end; cl[n] = $7; ie[n] = ins; ins_end = "" }
  function median(a,  i, j, k, v, b) {
    for (i = 1; i <= n; i++) b[i] = a[i]
    for (i = 2; i <= n; i++) { v = b[i]; for (j = i - 1; j >= 1 && b[j] > v; j--) b[j + 1] = b[j]; b[j + 1] = v }
    return b[int((n + 1) / 2)]
  }
  END {
    printf "jobs: %d\ninsert execution (ms): %.3f\ninsert logged -> claim starts (ms): %.3f\n", n, median(ie), median(gap)
    printf "claim execution (ms): %.3f\n", median(cl)
  }'
