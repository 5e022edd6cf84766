#!/usr/bin/env bash
# The dashboard in a real browser: headless Chromium (Debian's chromium package) driven by
# playwright-core (scripts/playwright.sh caches it) against a dashboard on a real SQLite
# database with a worker running (dashboard_e2e_server).
#   browser_test.sh E2E_SERVER SOURCE_DIR [SCREENSHOT_DIR]
# Exits 77 (ctest: skipped) with a message where Chromium or node is absent.
set -euo pipefail
server=$1
src=$2
shots=${3:-$(dirname "$server")/screenshots}

chromium=${ERGON_CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [[ -z "$chromium" || ! -x "$chromium" ]]; then
  echo "SKIP: Chromium is not installed, so the dashboard's browser test cannot run." \
    "Install it with 'apt-get install chromium' (make test does: scripts/install-deps.sh --test)."
  exit 77
fi
if ! command -v node >/dev/null 2>&1; then
  echo "SKIP: node is not installed (apt-get install nodejs npm; make test does)."
  exit 77
fi
playwright=$("$src/scripts/playwright.sh")
work=$(mktemp -d /tmp/ergon-browser.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$shots"
ERGON_CHROMIUM="$chromium" ERGON_PLAYWRIGHT_DIR="$playwright" \
  node "$src/tests/dashboard/browser_test.js" "$server" "sqlite:$work/e2e.db" "$shots"
