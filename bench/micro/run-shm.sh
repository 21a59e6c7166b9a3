#!/usr/bin/env bash
# Runs quiver_bench_shm (the identity round trip over shm beside uds, memcpy and a raw
# socket) and writes its JSON and a Markdown summary into bench/results/shm/, or the
# folder given.
#
#   bash bench/micro/run-shm.sh [OUT_DIR]
#
# QUIVER_BUILD_DIR: the build holding bench/quiver_bench_shm (default: build).
# QUIVER_PYTHON: the Python that runs the worker (default: .venv/bin/python).
# BENCHMARK_ARGS: Google Benchmark flags (default: 5 repetitions, medians reported).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${QUIVER_BUILD_DIR:-$root/build}"
out="${1:-$root/bench/results/shm}"
export QUIVER_PYTHON="${QUIVER_PYTHON:-$root/.venv/bin/python}"
mkdir -p "$out"
binary="$build/bench/quiver_bench_shm"
if [ ! -x "$binary" ]; then
  echo "no $binary: build it with 'ninja -C $build quiver_bench_shm'" >&2
  exit 1
fi
# shellcheck disable=SC2086
"$binary" --benchmark_format=json \
  ${BENCHMARK_ARGS:---benchmark_repetitions=5 --benchmark_report_aggregates_only=true} \
  > "$out/micro.json"
"$QUIVER_PYTHON" "$root/bench/micro/summarize_shm.py" "$out/micro.json" > "$out/micro.md"
cat "$out/micro.md"
