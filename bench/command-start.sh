#!/usr/bin/env bash
# What starting a command costs (bench/command_start.cc): run_command() of /bin/true against a
# bare fork + exec + wait, with 0 and 256 MiB resident; the difference is the price of the
# supervisor that gives the process-tree guarantee (docs/reliability.md, "Process trees").
# Built here with -O2 from the three sources it needs, not by CMake: it is one program.
#
#   bench/command-start.sh [RUNS]     (default 2000 per figure)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
g++ -std=c++20 -O2 -DSPDLOG_FMT_EXTERNAL -DSPDLOG_COMPILED_LIB -I"$here/src" -I"$here/include" \
  "$here/bench/command_start.cc" "$here/src/commands/command_process.cc" \
  "$here/src/commands/command_supervisor.cc" "$here/src/runtime/command_lock.cc" \
  -o "$out/command-start" -lspdlog -lfmt
echo "command start, $(nproc) cores, $(uname -r), ${1:-2000} runs per figure:"
ERGON_RUNTIME_DIR=$out "$out/command-start" "${1:-2000}"
