#!/usr/bin/env bash
# Fails if any C/C++ source differs from .clang-format.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=$(git ls-files '*.c' '*.cc' '*.h' | while read -r f; do
  [ -f "$f" ] && ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1 && echo "$f"; done || true)
if [ -n "$bad" ]; then
  echo "clang-format would change these files (run: clang-format -i FILE):"
  echo "$bad"
  exit 1
fi
echo "format: ok"
