#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs every quiver test: the C++ suites with
# ctest, the Python suites with pytest, and the lint checks.
#
#   bash scripts/test.sh             # everything
#   QUIVER_SANITIZE=1 bash scripts/test.sh   # also the C++ suites under ASan + UBSan
#   QUIVER_FUZZ=1 bash scripts/test.sh       # also each fuzz target for a bounded time
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Prints how long the previous step took, so slow steps show up in CI logs.
step_started=$SECONDS
took() {
  echo "    ($1 took $((SECONDS - step_started)) s)"
  step_started=$SECONDS
}

sanitize="${QUIVER_SANITIZE:-0}"
fuzz="${QUIVER_FUZZ:-0}"
# With QUIVER_SANITIZE=1 the C++ suites are built and run once, in the sanitized clang build
# below (warnings as errors there too): building them a second time with gcc would add minutes
# to every CI run and find nothing the sanitized run misses.
cxx_tests=ON
[ "$sanitize" = 1 ] && cxx_tests=OFF
QUIVER_CXX_TESTS="$cxx_tests" bash scripts/setup.sh --tests --bench
took "setup and build"

if [ "$cxx_tests" = ON ]; then
  echo "==> C++ tests (ctest)"
  ctest --test-dir build --output-on-failure --timeout 300 -j "$(nproc)"
  took "ctest"
fi

echo "==> Rust tests (cargo test: the worker SDK's codec and state machine)"
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
# Release, like setup.sh's build, so the dependencies are not compiled a second time.
(cd rust && cargo test --release --locked --offline --workspace --quiet)
took "cargo test"

echo "==> conformance kit: every in-repo worker on every transport (quiver conformance)"
# Each worker on every transport `all` names, then on shm (docs/protocol.md §10), which `all`
# leaves out and every in-repo worker speaks.
conformance() {
  local name="$1"
  shift
  echo "--- $name"
  build/cpp/quiver/cli/quiver conformance --transport all "$@"
  echo "--- $name, shm"
  build/cpp/quiver/cli/quiver conformance --transport shm "$@"
}
conformance "Python worker" --payload-format python/ref -- .venv/bin/python -m quiver.worker
conformance "C++ example worker" -- build/cpp/examples/udf_worker/quiver_example_udf_worker
# The Rust example worker, when the Rust workspace is there and built (scripts/setup.sh).
rust_worker=rust/target/release/examples/udfs
if [ -d rust ] && [ -x "$rust_worker" ]; then
  conformance "Rust example worker" -- "$rust_worker"
fi
took "conformance kit"

echo "==> conformance kit in Spark's dialect (quiver conformance --dialect spark, unix and tcp)"
echo "--- Python worker"
build/cpp/quiver/cli/quiver conformance --dialect spark --transport all \
  --payload-format python/ref -- .venv/bin/python -m quiver.worker --dialect spark
echo "--- C++ example worker"
build/cpp/quiver/cli/quiver conformance --dialect spark --transport all \
  -- build/cpp/examples/udf_worker/quiver_example_udf_worker --dialect spark
if [ -d rust ] && [ -x "$rust_worker" ]; then
  echo "--- Rust example worker"
  build/cpp/quiver/cli/quiver conformance --dialect spark --transport all \
    -- "$rust_worker" --dialect spark
fi
took "conformance kit, Spark's dialect"

echo "==> Spark's own classes drive every worker (jvm/spark-harness: Maven, JUnit)"
# Spark's released udf-worker jars come from the PySpark wheel; Maven fetches the rest once.
spark_jars="$(.venv/bin/python -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')"
(
  cd jvm/spark-harness
  rm -rf target/surefire-reports
  status=0
  # Debian's Maven writes colour resets even in batch mode; they are stripped from the log.
  timeout 900 mvn -q --batch-mode test -Dspark.jars="$spark_jars" 2>&1 |
    sed -u 's/\x1b\[[0-9;]*m//g' || status=$?
  ../../.venv/bin/python summarize_reports.py || status=1
  exit "$status"
)
took "JVM harness"

echo "==> Python tests (pytest): the package, the quiver command end to end, the benchmark harness"
.venv/bin/python -m pytest python/tests tests -q -n "$(nproc)" --dist loadfile
took "pytest"

echo "==> lint"
bash scripts/lint.sh
took "lint"

# One clang build (build-sanitize/) serves both: the C++ suites under AddressSanitizer and
# UndefinedBehaviorSanitizer, and (QUIVER_FUZZ=1) the libFuzzer targets, whose coverage
# instrumentation (fuzzer-no-link) the libraries then carry too. -O1: sanitizers need
# some optimisation to run at speed, and -O2 would only lengthen the build.
if [ "$sanitize" = 1 ] || [ "$fuzz" = 1 ]; then
  sanitized_tests=OFF
  [ "$sanitize" = 1 ] && sanitized_tests=ON
  fuzz_option=OFF
  [ "$fuzz" = 1 ] && fuzz_option=ON
  echo "==> sanitized build (clang, ASan + UBSan; tests: $sanitized_tests, fuzz targets: $fuzz_option)"
  sanitize_dir="$root/build-sanitize"
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S "$root" -B "$sanitize_dir" -G Ninja "${launcher[@]}" \
    -DCMAKE_CXX_COMPILER=clang++ -DQUIVER_PYTHON="$root/.venv/bin/python" \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -gline-tables-only" \
    -DQUIVER_SANITIZE=address,undefined -DQUIVER_WARNINGS_AS_ERRORS=ON \
    -DQUIVER_FUZZ="$fuzz_option" -DQUIVER_BUILD_TESTS="$sanitized_tests" \
    -DQUIVER_BUILD_BENCHMARKS=OFF -DQUIVER_BUILD_PYTHON=OFF >/dev/null
  cmake --build "$sanitize_dir" --parallel "${QUIVER_JOBS:-$(nproc)}"
  took "sanitized build"
  if [ "$sanitize" = 1 ]; then
    echo "==> C++ tests under AddressSanitizer and UndefinedBehaviorSanitizer"
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
      ctest --test-dir "$sanitize_dir" --output-on-failure --timeout 600 -j "$(nproc)"
    took "sanitized ctest"
  fi
  if [ "$fuzz" = 1 ]; then
    echo "==> fuzz targets (libFuzzer, ASan + UBSan), ${QUIVER_FUZZ_SECONDS:-15} s each"
    QUIVER_FUZZ_BUILD_DIR="$sanitize_dir" bash scripts/fuzz.sh
    took "fuzz runs"
  fi
fi
echo "==> all tests passed"
