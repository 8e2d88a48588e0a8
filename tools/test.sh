#!/usr/bin/env bash
# Sets up and runs the whole test suite: deps, Release build into build/, every test (unit,
# interop in network namespaces, slow rekey), a short fuzz smoke run, a clang-format check, then
# the unit tests again under ASan+UBSan (build-asan/).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=$(nproc)

bash tools/install-deps.sh

echo "== format check"
bash tools/check-format.sh

echo "== build (Release) into build/"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$JOBS"

echo "== tests"
(cd build && ctest --output-on-failure -j"$JOBS" -LE interop)
(cd build && ctest --output-on-failure -L interop)

echo "== fuzz smoke (libFuzzer, clang)"
# 10 s per target keeps a CI run under 30 minutes; tools/fuzz.sh run NAME SECS goes longer.
FUZZ_SECONDS=${FUZZ_SECONDS:-10} bash tools/fuzz.sh smoke

echo "== unit tests under ASan+UBSan into build-asan/"
# build-asan/ was configured by tools/fuzz.sh (ASan+UBSan+libFuzzer coverage, clang); the
# objects the fuzz targets were linked from are reused here.
cmake --build build-asan -j"$JOBS" --target wg_tests control_tests proxy_tests
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -j"$JOBS" -L unit)

echo "== all tests passed"
