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
targets=$(ls tests/fuzz/*_fuzz.cc 2>/dev/null | xargs -rn1 basename | sed 's/\.cc$//')
[ -n "$targets" ] || { echo "fuzz: no targets"; exit 0; }
if [ "$mode" != _one ]; then
  CC=clang CXX=clang++ cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DGATEHOUSE_SANITIZE=ON -DGATEHOUSE_FUZZ=ON -DGATEHOUSE_BENCH=OFF >/dev/null
fi
if [ "$mode" = build ]; then
  cmake --build "$B" -j"$JOBS" --target $targets wg_tests control_tests proxy_tests
  exit 0
fi
[ "$mode" = _one ] || cmake --build "$B" -j"$JOBS" --target $targets
run_one() {
  local name=$1 secs=$2
  mkdir -p "$B/corpus/$name"
  local seeds="tests/fuzz/corpus/$name"
  local dirs=("$B/corpus/$name")
  [ -d "$seeds" ] && dirs+=("$seeds")
  local log="$B/fuzz-$name.log" rc=0
  # Artifacts (crash-*, leak-*) go next to the log, not into the source tree.
  # use_unaligned: lwIP links queued IPv6 fragments through a packed helper struct written into
  # each fragment's buffer at a 4-byte (not 8-byte) aligned offset (ip6_frag.c, 64-bit with
  # IPV6_FRAG_COPYHEADER); without it LeakSanitizer cannot see that pointer and reports the
  # fragments still waiting for reassembly at exit as leaked (netstack_fuzz, ~1 run in 4).
  LSAN_OPTIONS=${LSAN_OPTIONS:-use_unaligned=1} \
    "$B/bin/$name" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$B/" \
    "${dirs[@]}" >"$log" 2>&1 || rc=$?
  local units
  units=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  echo "fuzz: $name: ${units:-?} inputs in ${secs}s, exit $rc"
  if [ "$rc" -ne 0 ]; then
    echo "fuzz: $name FAILED (exit $rc); the last lines of $log:" >&2
    tail -n 60 "$log" >&2
    return 1
  fi
}
case "$mode" in
  smoke)
    # One target per core at a time; each writes its own log, the summary follows.
    secs=${FUZZ_SECONDS:-20}
    rc=0
    printf '%s\n' $targets | xargs -P "$JOBS" -I{} bash "$0" _one {} "$secs" || rc=$?
    if [ "$rc" -ne 0 ]; then
      echo "fuzz: at least one target failed (see above)" >&2
      exit 1
    fi
    ;;
  _one) run_one "$2" "$3" ;;  # internal: one target, already built
  run) run_one "$2" "${3:-60}" ;;
  *) echo "usage: $0 build | smoke | run NAME SECONDS" >&2; exit 2 ;;
esac
