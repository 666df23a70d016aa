#!/usr/bin/env bash
# Builds Tessera and runs every test: unit tests, CLI tests and golden cases (Release),
# then the unit tests again under ASan/UBSan, then each fuzzer for a bounded time.
# Usage: scripts/test.sh [--quick]   (--quick: the Release build and its tests only)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
scripts/install-deps.sh
scripts/fetch-models.sh # the upscaler tests compare against the packages' own samples

echo "== Release build and tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

if [ "${1:-}" = "--quick" ]; then
  exit 0
fi

echo "== ASan/UBSan build and unit tests"
# -O2 with debug info: the SIMD kernels are unusably slow unoptimised (the sanitizers'
# checks do not depend on the optimisation level).
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTESSERA_SANITIZE=ON -DTESSERA_NATIVE=ON >/dev/null
cmake --build build-asan -j "$jobs"
ctest --test-dir build-asan --output-on-failure -j "$jobs" -LE golden

if [ -d fuzz ] && ls fuzz/*.c >/dev/null 2>&1; then
  echo "== Fuzzing (bounded time per target)"
  CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DTESSERA_FUZZ=ON >/dev/null
  cmake --build build-fuzz -j "$jobs" --target fuzz_all
  scripts/fuzz.sh build-fuzz "${TESSERA_FUZZ_SECONDS:-60}"
fi
echo "== all tests passed"
