#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the benchmarks need. Idempotent: it
# only calls apt-get for packages that are missing, and prints what it installs.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  clang llvm clang-format                       # libFuzzer, sanitizers, formatting check
  libsodium-dev libuv1-dev nlohmann-json3-dev libprotobuf-dev protobuf-compiler
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev
  liblwip-dev node-llhttp android-libboringssl-dev libsqlite3-dev libzstd-dev libre2-dev
  libhiredis-dev redis-server                   # Redis quota store and its tests
  wireguard-go wireguard-tools iproute2 iputils-ping iperf3 procps psmisc
  nginx-light wrk                               # tools/bench/gateway_bench.sh (mock, peer, load)
  python3 curl
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js may come from another Debian-format source whose nodejs bundles npm (and conflicts with
# Debian's npm package): only ask apt for them when the commands are absent.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

# The official provider SDKs the gateway tests drive (pinned in tests/gateway/package-lock.json).
gateway_sdks() { [ -d "$(dirname "$0")/../tests/gateway/node_modules" ] || npm ci --prefix "$(dirname "$0")/../tests/gateway" --no-audit --no-fund; }
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  gateway_sdks
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: must run as root to install packages" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
gateway_sdks
