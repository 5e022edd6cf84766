#!/usr/bin/env bash
# The whole test suite, as `make test` and CI run it:
#   1. everything under AddressSanitizer + UndefinedBehaviorSanitizer, warnings as errors;
#   2. the concurrency tests again under ThreadSanitizer;
#   3. install to a temporary prefix and build the example against it with find_package(ergon).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

configure() {  # configure DIR [cmake args...]
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja -DERGON_WERROR=ON "$@" >/dev/null
}

echo "== ASan+UBSan build and tests"
configure build/asan -DCMAKE_BUILD_TYPE=Debug -DERGON_SANITIZE=address,undefined \
  -DCMAKE_CXX_FLAGS="-O1"
cmake --build build/asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build/asan -j "$jobs" --output-on-failure --timeout 600

echo "== TSan build and concurrency tests"
configure build/tsan -DCMAKE_BUILD_TYPE=Debug -DERGON_SANITIZE=thread -DCMAKE_CXX_FLAGS="-O1"
tsan_targets=$(ctest --test-dir build/asan -N -L concurrency | sed -n 's/^ *Test *#[0-9]*: //p')
# shellcheck disable=SC2086
cmake --build build/tsan -j "$jobs" --target $tsan_targets
# setarch -R: the TSan runtime of GCC 12 cannot map its shadow memory under the high-entropy
# address-space randomisation of recent kernels.
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
  setarch "$(uname -m)" -R ctest --test-dir build/tsan -L concurrency -j "$jobs" \
  --output-on-failure --timeout 600

echo "== find_package(ergon) from an installed copy"
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
configure build/install-check -DCMAKE_BUILD_TYPE=Release -DERGON_BUILD_TESTS=OFF \
  -DERGON_BUILD_APPS=OFF
cmake --build build/install-check -j "$jobs"
cmake --install build/install-check --prefix "$prefix/usr" >/dev/null
cmake -S examples/send_email -B "$prefix/example" -G Ninja -DCMAKE_PREFIX_PATH="$prefix/usr" >/dev/null
cmake --build "$prefix/example" >/dev/null
(cd "$prefix" && ./example/send_email "sqlite:$prefix/example.db")
echo "1 passed, 0 failed: installed-package example"
