#!/usr/bin/env bash
# graphile-worker 0.17 on the same database: the peer figure of the performance issue
# ("processing at least 1.5x graphile-worker's batching preset measured in the same run").
#
#   bench/peers/graphile.sh URL [JOBS] [RUNS]      (default 20000 jobs, 3 runs)
#
# Installs graphile-worker@0.17 with npm into /var/tmp/ergon-tools/graphile (once; override
# with GRAPHILE_DIR) and runs bench/peers/graphile-burndown.cjs: per run a fresh schema, JOBS
# no-op jobs added with addJobs, then one runner with the documented batching preset burns
# them down. Prints median, min and max of the bulk enqueue and of the processing rate.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 3 ]]; then
  echo "usage: $0 URL [JOBS] [RUNS]" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
tools=${GRAPHILE_DIR:-/var/tmp/ergon-tools/graphile}

if [[ ! -f "$tools/node_modules/graphile-worker/package.json" ]]; then
  mkdir -p "$tools"
  (cd "$tools" && { [[ -f package.json ]] || npm init -y >/dev/null; } &&
    npm install --no-audit --no-fund graphile-worker@0.17 >/dev/null)
fi

NODE_PATH="$tools/node_modules" exec node "$here/graphile-burndown.cjs" "$1" "${2:-20000}" "${3:-3}"
