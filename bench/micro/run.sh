#!/usr/bin/env bash
# Runs quiver's microbenchmarks and writes their JSON (one file per program) and a
# Markdown summary (summary.md) into bench/results/micro/, or the folder given.
#
#   bash bench/micro/run.sh [OUT_DIR]
#
# QUIVER_BUILD_DIR: the build holding bench/quiver_bench_* (default: build; configure it
#   with -DQUIVER_BUILD_BENCHMARKS=ON and build the three quiver_bench_* targets).
# QUIVER_PYTHON: the Python that runs the round trip's worker (default: .venv/bin/python).
# BENCHMARK_ARGS: Google Benchmark flags (default: 3 repetitions, medians reported).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${QUIVER_BUILD_DIR:-$root/build}"
out="${1:-$root/bench/results/micro}"
export QUIVER_PYTHON="${QUIVER_PYTHON:-$root/.venv/bin/python}"
mkdir -p "$out"
for name in stream framing roundtrip; do
  binary="$build/bench/quiver_bench_$name"
  if [ ! -x "$binary" ]; then
    echo "no $binary: build it with 'ninja -C $build quiver_bench_$name'" >&2
    exit 1
  fi
  echo "==> quiver_bench_$name" >&2
  # shellcheck disable=SC2086
  "$binary" --benchmark_format=json \
    ${BENCHMARK_ARGS:---benchmark_repetitions=3 --benchmark_report_aggregates_only=true} \
    > "$out/$name.json"
done
"$QUIVER_PYTHON" "$root/bench/micro/summarize.py" "$out"
echo "==> $out/summary.md" >&2
