#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs every quiver test: the C++ suites with
# ctest, the Python suites with pytest, and the lint checks.
#
#   bash scripts/test.sh             # everything
#   QUIVER_SANITIZE=1 bash scripts/test.sh   # also the C++ suites under ASan + UBSan
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/setup.sh

echo "==> C++ tests (ctest)"
ctest --test-dir build --output-on-failure --timeout 300 -j "$(nproc)"

echo "==> Python tests (pytest)"
.venv/bin/python -m pytest python/tests tests -q

echo "==> lint"
bash scripts/lint.sh

if [ "${QUIVER_SANITIZE:-0}" = 1 ]; then
  echo "==> C++ tests under AddressSanitizer and UndefinedBehaviorSanitizer"
  QUIVER_BUILD_DIR="$root/build-asan" \
    QUIVER_CMAKE_ARGS="-DQUIVER_SANITIZE=address,undefined -DQUIVER_BUILD_BENCHMARKS=OFF -DCMAKE_BUILD_TYPE=Debug" \
    bash scripts/setup.sh
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure --timeout 600 -j "$(nproc)"
fi
echo "==> all tests passed"
