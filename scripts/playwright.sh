#!/usr/bin/env bash
# Installs playwright-core (the browser driver, without browsers: the tests use Debian's
# chromium) into ${ERGON_TOOLS_DIR:-/var/tmp/ergon-tools}/playwright, once, and prints that
# directory. The dashboard's browser test (tests/dashboard/browser_test.sh) calls it.
#   scripts/playwright.sh          install if needed; print the directory
set -euo pipefail

PLAYWRIGHT_VERSION=1.65.1
readonly PLAYWRIGHT_VERSION

tools=${ERGON_TOOLS_DIR:-/var/tmp/ergon-tools}
cache="$tools/playwright"

installed_version() {
  local pkg="$cache/node_modules/playwright-core/package.json"
  [[ -f "$pkg" ]] || return 0
  node -e 'process.stdout.write(require(process.argv[1]).version)' "$pkg" 2>/dev/null || true
}

if ! command -v node >/dev/null 2>&1; then
  echo "playwright: node is not installed (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
mkdir -p "$tools"
# Two test runs may start at once: the second waits for the first's install, then reuses it.
exec 9>"$tools/playwright.lock"
flock 9
if [[ "$(installed_version)" != "$PLAYWRIGHT_VERSION" ]]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "playwright: npm is not installed (Debian: apt-get install nodejs npm)" >&2
    exit 1
  fi
  tmp="$cache.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  echo "playwright: installing playwright-core@$PLAYWRIGHT_VERSION into $cache" >&2
  if ! npm install --prefix "$tmp" --no-audit --no-fund --no-save --loglevel=error \
    "playwright-core@$PLAYWRIGHT_VERSION" >"$tmp.log" 2>&1; then
    cat "$tmp.log" >&2
    rm -rf "$tmp" "$tmp.log"
    echo "playwright: npm install playwright-core@$PLAYWRIGHT_VERSION failed" >&2
    exit 1
  fi
  rm -rf "$cache" "$tmp.log"
  mv "$tmp" "$cache"
fi
flock -u 9
echo "$cache"
