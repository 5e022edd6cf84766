#!/usr/bin/env bash
# The whole test suite, as `make test` and CI run it:
#   1. everything under AddressSanitizer + UndefinedBehaviorSanitizer, warnings as errors;
#   2. the concurrency tests again under ThreadSanitizer;
#   3. the cron parser under libFuzzer for a bounded time (ERGON_FUZZ_SECONDS, default 30);
#   4. the install check: install Ergon twice (static, and shared with BUILD_SHARED_LIBS=ON) and
#      build the examples against each as an application would: find_package(ergon) without
#      setting the C++ standard, -Wall -Wextra -Werror (send_email; dashboard_embed with
#      COMPONENTS dashboard, which serves a page), and send_email with pkg-config; none of them
#      links libcurl (Azure is opt-in).
# The last line is "summary: N passed, 0 failed"; any failure exits non-zero before it.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

# One throwaway PostgreSQL cluster serves both test stages (the PostgreSQL tests read its URL
# from ERGON_TEST_POSTGRES_URL). It is stopped and removed on exit, whatever happens.
pg_dir=""
az_dir=""
prefix=""
cleanup() {
  if [[ -n "$pg_dir" ]]; then scripts/pg-test-cluster.sh stop "$pg_dir" >/dev/null 2>&1 || true; fi
  if [[ -n "$az_dir" ]]; then scripts/azurite.sh stop "$az_dir" >/dev/null 2>&1 || true; fi
  if [[ -n "$prefix" ]]; then rm -rf "$prefix"; fi
}
trap cleanup EXIT

passed=0
ctest_cmd=(ctest)
run_ctest() {  # run_ctest ARGS... ; adds the number of tests run to $passed
  local log
  log=$(mktemp)
  "${ctest_cmd[@]}" "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local n
  n=$(sed -n 's/.*tests passed, 0 tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -1)
  rm -f "$log"
  [[ $rc -eq 0 && -n "$n" ]] || exit 1
  passed=$((passed + n))
}

# ccache (installed with --test) keeps the objects of earlier runs on this machine: a run after
# a small change, or CI in a fresh clone of the same tree, recompiles little. Paths are hashed
# relative to the clone, so clones in other folders share the cache; the precompiled headers
# need the sloppiness below to be cacheable.
launcher=()
if command -v ccache >/dev/null 2>&1; then
  export CCACHE_BASEDIR=$PWD
  export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
configure() {  # configure DIR [cmake args...]
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja -DERGON_WERROR=ON "${launcher[@]}" "$@" >/dev/null
}

echo "== ASan+UBSan build and tests"
# The test builds have the Azure Storage Queue client (off by default for applications).
configure build/asan -DCMAKE_BUILD_TYPE=Debug -DERGON_SANITIZE=address,undefined \
  -DCMAKE_CXX_FLAGS="-O1" -DERGON_WITH_AZURE=ON
cmake --build build/asan -j "$jobs"
pg_dir=$(mktemp -d /tmp/ergon-pg.XXXXXX)
ERGON_TEST_POSTGRES_URL=$(scripts/pg-test-cluster.sh start "$pg_dir")
export ERGON_TEST_POSTGRES_URL
echo "PostgreSQL test cluster: $ERGON_TEST_POSTGRES_URL"
# The Azure Storage queue emulator (Azurite, from npm) for the messaging tests.
az_dir=$(mktemp -d /tmp/ergon-azurite.XXXXXX)
ERGON_TEST_AZURITE=$(scripts/azurite.sh start "$az_dir")
export ERGON_TEST_AZURITE
echo "Azurite queue emulator: ${ERGON_TEST_AZURITE##*QueueEndpoint=}"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  run_ctest --test-dir build/asan -j "$jobs" --output-on-failure --timeout 600

echo "== TSan build and concurrency tests"
configure build/tsan -DCMAKE_BUILD_TYPE=Debug -DERGON_SANITIZE=thread -DCMAKE_CXX_FLAGS="-O1" \
  -DERGON_WITH_AZURE=ON
tsan_targets=$(ctest --test-dir build/asan -N -L concurrency | sed -n 's/^ *Test *#[0-9]*: //p')
# shellcheck disable=SC2086
cmake --build build/tsan -j "$jobs" --target $tsan_targets
# setarch -R: the TSan runtime of GCC 12 cannot map its shadow memory under the high-entropy
# address-space randomisation of recent kernels.
ctest_cmd=(setarch "$(uname -m)" -R ctest)
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
  run_ctest --test-dir build/tsan -L concurrency -j "$jobs" --output-on-failure --timeout 600

echo "== cron parser fuzzing (libFuzzer, bounded)"
mkdir -p build/fuzz
clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
  fuzz/cron_parse_fuzzer.cc src/cron/*.cc -lcctz -o build/fuzz/cron_parse_fuzzer
rm -rf build/fuzz/corpus && mkdir -p build/fuzz/corpus
# Seed with the conformance expressions (roughly extracted; exact escapes do not matter).
i=0
grep -o '"expr": "[^"]*"' tests/cron/data/cronos-cases.jsonl | cut -d'"' -f4 |
  while IFS= read -r expr; do
    i=$((i + 1))
    printf '\000%s' "$expr" > "build/fuzz/corpus/seed$i"
  done
build/fuzz/cron_parse_fuzzer build/fuzz/corpus -max_total_time="${ERGON_FUZZ_SECONDS:-30}" \
  -max_len=96 -print_final_stats=0 2>build/fuzz/log.txt || { tail -50 build/fuzz/log.txt; exit 1; }
grep -E "^Done [0-9]+ runs" build/fuzz/log.txt
echo "cron fuzzing: no findings"
passed=$((passed + 1))

echo "== the installed package: find_package(ergon) and pkg-config, static and shared"
# Installed twice from one build directory, with the defaults an application gets (no Azure):
# static, then BUILD_SHARED_LIBS=ON. Every module compiles with the same command line in both,
# so the shared pass takes its objects from ccache and only links. The prefix lives under
# build/ at a fixed path, so that ccache serves the examples' objects from one run to the next.
prefix=$PWD/build/install-check-prefix  # removed by cleanup
rm -rf "$prefix"
configure build/install-check -DCMAKE_BUILD_TYPE=Release -DERGON_BUILD_TESTS=OFF \
  -DERGON_BUILD_APPS=OFF -DERGON_WITH_AZURE=OFF -DBUILD_SHARED_LIBS=OFF
cmake --build build/install-check -j "$jobs"
cmake --install build/install-check --prefix "$prefix/static" >/dev/null
configure build/install-check -DBUILD_SHARED_LIBS=ON
cmake --build build/install-check -j "$jobs"
cmake --install build/install-check --prefix "$prefix/shared" >/dev/null
# The examples as an application builds them: their CMakeLists set no C++ standard (the
# targets carry cxx_std_20), and the option structs' designated initializers must not warn.
app_flags="-Wall -Wextra -Werror"
no_curl() {  # no_curl BINARY: Azure is off, so nothing may pull libcurl in (grep reads all of
  # ldd's output: with -q, ldd could die of SIGPIPE and pipefail hide a match)
  if ldd "$1" | grep libcurl >/dev/null; then echo "install check: $1 links libcurl" >&2; exit 1; fi
}
for kind in static shared; do
  for example in send_email dashboard_embed; do
    dir=$prefix/$kind-$example
    cmake -S "examples/$example" -B "$dir" -G Ninja "${launcher[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$prefix/$kind" -DCMAKE_CXX_FLAGS="$app_flags" >/dev/null
    cmake --build "$dir" >/dev/null
    "$dir/$example" "sqlite:$dir/example.db"
    no_curl "$dir/$example"
  done
done
ldd "$prefix/shared-send_email/send_email" | grep libergon_core.so >/dev/null ||
  { echo "install check: the shared send_email does not load libergon_core.so" >&2; exit 1; }
# pkg-config: one object, linked against each installation (a static Ergon's .pc lists its
# dependencies in Requires/Libs, a shared one's in the .private fields).
cxx=(c++)
if command -v ccache >/dev/null 2>&1; then cxx=(ccache c++); fi
pc() { PKG_CONFIG_PATH="$(dirname "$(find "$prefix/$1" -name ergon.pc)")" pkg-config "${@:2}" ergon; }
# shellcheck disable=SC2046,SC2086
"${cxx[@]}" -std=c++20 $app_flags $(pc static --cflags) -c examples/send_email/main.cc \
  -o "$prefix/send_email_pc.o"
# Every option struct takes a designated initializer warning-free (a member without a default
# member initializer fails this).
# shellcheck disable=SC2046,SC2086
c++ -std=c++20 $app_flags $(pc static --cflags) -fsyntax-only \
  tests/packaging/designated_initializers.cc
for kind in static shared; do
  # shellcheck disable=SC2046
  c++ "$prefix/send_email_pc.o" -o "$prefix/$kind-send_email_pc" $(pc "$kind" --libs) \
    -Wl,-rpath,"$(pc "$kind" --variable=libdir)"
  "$prefix/$kind-send_email_pc" "sqlite:$prefix/$kind-send_email_pc.db"
  no_curl "$prefix/$kind-send_email_pc"
done
passed=$((passed + 1))
echo "installed-package examples (static, shared, pkg-config): ok"
echo
echo "summary: $passed passed, 0 failed"
