#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/*_fuzz.cc) with clang, ASan and UBSan into build-asan/
# (the same build the sanitizer unit tests use, so CI compiles with clang once) and runs them.
#   tools/fuzz.sh smoke        each target for a short time (CI)
#   tools/fuzz.sh run NAME S   one target for S seconds, corpus kept in build-asan/corpus/NAME
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-smoke}
B=build-asan
CC=clang CXX=clang++ cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DGATEHOUSE_SANITIZE=ON -DGATEHOUSE_FUZZ=ON -DGATEHOUSE_BENCH=OFF >/dev/null
targets=$(ls tests/fuzz/*_fuzz.cc 2>/dev/null | xargs -rn1 basename | sed 's/\.cc$//')
[ -n "$targets" ] || { echo "fuzz: no targets"; exit 0; }
cmake --build "$B" -j"$(nproc)" --target $targets
run_one() {
  local name=$1 secs=$2
  mkdir -p "$B/corpus/$name"
  local seeds="tests/fuzz/corpus/$name"
  local dirs=("$B/corpus/$name")
  [ -d "$seeds" ] && dirs+=("$seeds")
  echo "fuzz: $name for ${secs}s"
  "$B/bin/$name" -max_total_time="$secs" -print_final_stats=1 "${dirs[@]}" 2>&1 |
    grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|crash-' || true
  test "${PIPESTATUS[0]}" -eq 0
}
case "$mode" in
  smoke) for t in $targets; do run_one "$t" "${FUZZ_SECONDS:-20}"; done ;;
  run) run_one "$2" "${3:-60}" ;;
  *) echo "usage: $0 smoke | run NAME SECONDS" >&2; exit 2 ;;
esac
