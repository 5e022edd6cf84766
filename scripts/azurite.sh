#!/usr/bin/env bash
# A throwaway Azurite (Azure Storage emulator) for the tests: the queue service only, on
# 127.0.0.1 and a free port, data in memory.
#   scripts/azurite.sh start DIR   installs Azurite if needed, starts it; prints the connection string
#   scripts/azurite.sh stop DIR    stops it and removes DIR
#   scripts/azurite.sh url DIR     prints the connection string of a started emulator
#
# The connection string names the emulator's well-known development account (devstoreaccount1
# and its published key, so nothing here is secret) with a path-style QueueEndpoint; the
# messaging tests read it from ERGON_TEST_AZURITE.
#
# Azurite comes from the npm registry (pinned to AZURITE_VERSION) and is installed once into
# ${ERGON_TOOLS_DIR:-/var/tmp/ergon-tools}/azurite, then reused. It needs node and npm
# (Debian: apt-get install nodejs npm). It runs with its default API-version check on: the
# client sends x-ms-version 2021-12-02, which Azurite 3.35 accepts, so --skipApiVersionCheck is
# not needed (and would hide a client that sends a version Azure itself does not know).
set -euo pipefail

AZURITE_VERSION=3.35.0
readonly AZURITE_VERSION
dev_key='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
readonly dev_key

usage() {
  echo "usage: $0 start|stop|url DIR" >&2
  exit 2
}
[[ $# -eq 2 ]] || usage
cmd=$1
dir=$2

tools=${ERGON_TOOLS_DIR:-/var/tmp/ergon-tools}
cache="$tools/azurite"
bin="$cache/node_modules/.bin/azurite-queue"

connection_string() {  # connection_string PORT
  echo "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$dev_key;QueueEndpoint=http://127.0.0.1:$1/devstoreaccount1;"
}

# True when nothing accepts connections on 127.0.0.1:$1.
port_is_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

installed_version() {
  local pkg="$cache/node_modules/azurite/package.json"
  [[ -f "$pkg" && -x "$bin" ]] || return 0
  node -e 'process.stdout.write(require(process.argv[1]).version)' "$pkg" 2>/dev/null || true
}

# Installs Azurite into $cache unless the pinned version is already there. Two test runs may
# start at once: the flock makes the second wait for the first's install and then reuse it.
ensure_installed() {
  if ! command -v node >/dev/null 2>&1; then
    echo "azurite: node is not installed (Debian: apt-get install nodejs npm)" >&2
    exit 1
  fi
  mkdir -p "$tools"
  exec 9>"$tools/azurite.lock"
  flock 9
  if [[ "$(installed_version)" != "$AZURITE_VERSION" ]]; then
    if ! command -v npm >/dev/null 2>&1; then
      echo "azurite: npm is not installed (Debian: apt-get install nodejs npm)" >&2
      exit 1
    fi
    local tmp="$cache.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    echo "azurite: installing azurite@$AZURITE_VERSION into $cache" >&2
    if ! npm install --prefix "$tmp" --no-audit --no-fund --no-save --loglevel=error \
      "azurite@$AZURITE_VERSION" >"$tmp.log" 2>&1; then
      cat "$tmp.log" >&2
      rm -rf "$tmp" "$tmp.log"
      echo "azurite: npm install azurite@$AZURITE_VERSION failed" >&2
      exit 1
    fi
    rm -rf "$cache" "$tmp.log"
    mv "$tmp" "$cache"
  fi
  flock -u 9
  exec 9>&-
}

# True while process $1 runs (a child that exited stays a zombie until reaped, and kill -0
# still succeeds on a zombie).
alive() {
  local state
  state=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [[ -n "$state" && "$state" != Z ]]
}

# True when $1 is the pid of an Azurite queue service (a pid file may outlive its process and
# the pid be reused by something else, which stop must not kill).
is_azurite() {
  [[ -r "/proc/$1/cmdline" ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q 'azurite-queue'
}

case "$cmd" in
  start)
    if [[ -e "$dir/pid" ]]; then
      echo "azurite: $dir/pid already exists (stop it first)" >&2
      exit 1
    fi
    ensure_installed
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    # Try ports from 10101 up: another emulator (another test run) may hold one, or take it
    # between the check and the start; then our process exits (EADDRINUSE) and we move on.
    for port in $(seq 10101 10200); do
      port_is_free "$port" || continue
      # All output goes to files: `$(azurite.sh start DIR)` must not wait for the server's
      # stdout to close. The debug log records each request's string-to-sign, which is what
      # one needs to see when a signature is refused.
      # Azurite refuses --location together with --inMemoryPersistence; it runs in DIR, so
      # whatever it might still write lands there and goes with `stop`.
      (cd "$dir" && exec "$bin" --queueHost 127.0.0.1 --queuePort "$port" \
        --inMemoryPersistence --disableTelemetry --silent --debug "$dir/debug.log" \
        </dev/null >"$dir/azurite.log" 2>&1) &
      pid=$!
      # Wait (up to 30 s) until it accepts connections, or exits.
      for _ in $(seq 300); do
        if ! alive "$pid"; then
          break
        fi
        if ! port_is_free "$port"; then
          echo "$pid" >"$dir/pid"
          echo "$port" >"$dir/port"
          connection_string "$port" | tee "$dir/url"
          exit 0
        fi
        sleep 0.1
      done
      if alive "$pid"; then
        kill "$pid" 2>/dev/null || true
        echo "azurite: the emulator did not accept connections on port $port in 30 s;" \
          "see $dir/azurite.log" >&2
        exit 1
      fi
      wait "$pid" 2>/dev/null || true
      if ! grep -q EADDRINUSE "$dir/azurite.log"; then
        cat "$dir/azurite.log" >&2
        echo "azurite: the emulator exited; see $dir/azurite.log" >&2
        exit 1
      fi
    done
    echo "azurite: could not start the emulator on any port 10101-10200; see $dir/azurite.log" >&2
    exit 1
    ;;
  stop)
    if [[ -f "$dir/pid" ]]; then
      pid=$(cat "$dir/pid")
      if is_azurite "$pid"; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
          is_azurite "$pid" || break
          sleep 0.1
        done
        if is_azurite "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
      fi
    fi
    rm -rf "$dir"
    ;;
  url)
    [[ -f "$dir/port" ]] || { echo "azurite: no emulator in $dir" >&2; exit 1; }
    connection_string "$(cat "$dir/port")"
    ;;
  *)
    usage
    ;;
esac
