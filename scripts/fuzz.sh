#!/usr/bin/env bash
# Builds the libFuzzer targets of cpp/fuzz with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer (build-fuzz/), then runs each for a bounded time
# from its checked-in seed corpus. A crash, a sanitizer report or a leak fails.
#
#   bash scripts/fuzz.sh                       # 15 s per target (what CI runs)
#   QUIVER_FUZZ_SECONDS=600 bash scripts/fuzz.sh frame_decoder_fuzz   # longer, one target
#   QUIVER_FUZZ_RUNS=10000000 bash scripts/fuzz.sh     # a fixed number of executions per target
#   QUIVER_FUZZ_SANITIZE=undefined QUIVER_FUZZ_BUILD_DIR=build-fuzz-ubsan QUIVER_FUZZ_RUNS=10000000 \
#     bash scripts/fuzz.sh                             # long runs: UBSan only, ~2.4x the executions/s
#
# New inputs found go to build-fuzz/corpus/TARGET (not to the checked-in seeds);
# regenerate the seeds with `.venv/bin/python cpp/fuzz/make_corpus.py`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${QUIVER_FUZZ_BUILD_DIR:-$root/build-fuzz}"
seconds="${QUIVER_FUZZ_SECONDS:-15}"
runs="${QUIVER_FUZZ_RUNS:-}"
limit=(-max_total_time="$seconds")
[ -n "$runs" ] && limit=(-runs="$runs")
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame_decoder_fuzz chunked_input_stream_fuzz
  result_batch_fuzz worker_message_fuzz grpc_data_envelope_fuzz)

if [ ! -f "$build_dir/build.ninja" ]; then
  # Warnings are enforced by the gcc build; clang's extra ones must not block fuzzing.
  CC=clang CXX=clang++ cmake -S "$root" -B "$build_dir" -G Ninja -DQUIVER_FUZZ=ON \
    -DQUIVER_SANITIZE="${QUIVER_FUZZ_SANITIZE:-address,undefined}" -DQUIVER_BUILD_TESTS=OFF \
    -DQUIVER_BUILD_BENCHMARKS=OFF -DQUIVER_WARNINGS_AS_ERRORS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQUIVER_PYTHON="$root/.venv/bin/python"
fi
cmake --build "$build_dir" --target quiver_fuzz --parallel "${QUIVER_JOBS:-$(nproc)}"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
for target in "${targets[@]}"; do
  corpus="$build_dir/corpus/$target"
  mkdir -p "$corpus"
  echo "==> $target (${limit[*]})"
  log="$build_dir/$target.log"
  # -rss_limit_mb: a decoder that allocates what a length field claims fails here.
  if ! "$build_dir/cpp/fuzz/$target" "${limit[@]}" -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build_dir/$target-" \
    "$corpus" "$root/cpp/fuzz/corpus/$target" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "$target failed: the input is saved as $build_dir/$target-*"
    exit 1
  fi
  grep -E "^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb)" "$log" | tr '\n' ' '
  echo
done
