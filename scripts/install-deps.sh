#!/usr/bin/env bash
# Installs the Debian packages Ergon needs to build and test (Debian 12). As root it runs
# apt-get; as anyone else it prints the exact command and fails.
#   scripts/install-deps.sh          build + demo packages
#   scripts/install-deps.sh --test   also what the test suite needs
set -euo pipefail

pkgs=(g++ make cmake ninja-build pkg-config git ca-certificates tzdata
      libsqlite3-dev libpq-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev
      libcctz-dev libcurl4-openssl-dev libssl-dev
      libcpp-httplib-dev prometheus-cpp-dev)
if [[ "${1:-}" == "--test" ]]; then
  # postgresql: the server binaries that scripts/pg-test-cluster.sh runs (libpq-dev is above).
  pkgs+=(libgtest-dev libgmock-dev clang libclang-rt-14-dev postgresql)
  # ccache: scripts/test.sh builds three configurations; repeated runs reuse their objects.
  pkgs+=(ccache)
  # chromium: the dashboard's browser test drives it headless (with playwright-core from npm,
  # which scripts/playwright.sh caches).
  pkgs+=(chromium)
  # node + npm: scripts/azurite.sh installs the Azure Storage emulator from npm. A NodeSource
  # nodejs ships its own npm and conflicts with Debian's npm package: test the commands, not
  # the packages.
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    pkgs+=(nodejs npm)
  fi
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps: not a Debian system; install the equivalents of: ${pkgs[*]}" >&2
  exit 0
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ "$(id -u)" -eq 0 ]]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install-deps: missing Debian packages. Run:" >&2
  echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
