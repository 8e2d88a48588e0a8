#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/*_fuzz.cc) with clang, ASan and UBSan into build-asan/
# (the same build the sanitizer unit tests use, so CI compiles with clang once) and runs them.
#   tools/fuzz.sh build        configure and build the targets and the unit test binaries
#   tools/fuzz.sh smoke        build the targets, run each for a short time (CI); any crash, leak
#                              or sanitizer report fails the run
#   tools/fuzz.sh run NAME S   one target for S seconds, corpus kept in build-asan/corpus/NAME
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-smoke}
B=build-asan
JOBS=$(nproc)
CC=clang CXX=clang++ cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DGATEHOUSE_SANITIZE=ON -DGATEHOUSE_FUZZ=ON -DGATEHOUSE_BENCH=OFF >/dev/null
targets=$(ls tests/fuzz/*_fuzz.cc 2>/dev/null | xargs -rn1 basename | sed 's/\.cc$//')
[ -n "$targets" ] || { echo "fuzz: no targets"; exit 0; }
if [ "$mode" = build ]; then
  cmake --build "$B" -j"$JOBS" --target $targets wg_tests control_tests proxy_tests
  exit 0
fi
cmake --build "$B" -j"$JOBS" --target $targets
run_one() {
  local name=$1 secs=$2
  mkdir -p "$B/corpus/$name"
  local seeds="tests/fuzz/corpus/$name"
  local dirs=("$B/corpus/$name")
  [ -d "$seeds" ] && dirs+=("$seeds")
  echo "fuzz: $name for ${secs}s"
  local log="$B/fuzz-$name.log" rc=0
  # Artifacts (crash-*, leak-*) go next to the log, not into the source tree.
  "$B/bin/$name" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$B/" \
    "${dirs[@]}" >"$log" 2>&1 || rc=$?
  grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|artifact' "$log" || true
  if [ "$rc" -ne 0 ]; then
    echo "fuzz: $name FAILED (exit $rc); the last lines of $log:" >&2
    tail -n 60 "$log" >&2
    return 1
  fi
}
case "$mode" in
  smoke)
    failed=()
    for t in $targets; do run_one "$t" "${FUZZ_SECONDS:-20}" || failed+=("$t"); done
    if [ ${#failed[@]} -gt 0 ]; then
      echo "fuzz: failed: ${failed[*]}" >&2
      exit 1
    fi
    ;;
  run) run_one "$2" "${3:-60}" ;;
  *) echo "usage: $0 build | smoke | run NAME SECONDS" >&2; exit 2 ;;
esac
