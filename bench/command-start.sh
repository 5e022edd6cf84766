#!/usr/bin/env bash
# What starting a command costs: ergon-micro's BM_CommandStart (run_command of /bin/true: the
# supervisor process, its fork of the command, the pipes, the lock) against BM_ForkExecBaseline
# (a bare fork + exec + wait of /bin/true), each in a process with 0 and 256 MiB resident.
# The difference is the price of the process-tree guarantee (docs/reliability.md).
#
#   bench/command-start.sh [BUILD_DIR]     (default build/bench: a Release build)
set -euo pipefail
build=${1:-build/bench}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
if [[ ! -f "$build/build.ninja" ]]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" --target ergon_micro >/dev/null
"$build/bench/ergon-micro" --benchmark_filter='CommandStart|ForkExecBaseline' \
  --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
