#!/usr/bin/env bash
# Tool-call extraction benchmark (by hand, never in CI; asserts nothing, prints figures):
# extraction throughput in MB/s (a 300 KB Claude-Code-sized request, a long Anthropic SSE stream),
# the tap's cost per streamed text delta, and the latency the gateway adds with
# logging.tool_calls on versus off (in-process gateway and mock provider on loopback).
# Usage: tools/bench/tools_bench.sh [PAIRS_PER_ROUND (1000)] [ROUNDS (5)]
# Builds build/bin/tool_extract_perf (Release) if needed; saves the output under
# tools/bench/results/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
nice cmake --build build -j2 --target tool_extract_perf >/dev/null
mkdir -p tools/bench/results
out="tools/bench/results/tools-$(date -u +%Y%m%d-%H%M%S).txt"
{
  echo "# tools_bench $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null || true) on $(nproc) cores"
  build/bin/tool_extract_perf "${1:-1000}" "${2:-5}"
} | tee "$out"
