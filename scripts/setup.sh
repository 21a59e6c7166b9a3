#!/usr/bin/env bash
# Installs what quiver needs and is missing, then configures and builds it.
# Idempotent: a second run installs nothing and rebuilds only what changed.
#
#   bash scripts/setup.sh                  # what running quiver needs: the quiver command, .venv
#   bash scripts/setup.sh --tests          # + test tools (GoogleTest, pytest, ruff, ...), every target,
#                                          #   the Rust workspace
#   bash scripts/setup.sh --bench          # + the benchmark's peers (Java, PySpark, DuckDB, Polars)
#   QUIVER_CXX_TESTS=OFF bash scripts/setup.sh --tests   # as --tests, but the C++ suites are
#                                          #   left to another build (CI runs them sanitized)
#   QUIVER_BUILD_DIR=build-asan QUIVER_CMAKE_ARGS="-DQUIVER_SANITIZE=address,undefined" \
#     bash scripts/setup.sh --tests        # a second, sanitized build
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${QUIVER_BUILD_DIR:-$root/build}"
venv="$root/.venv"

with_tests=0
with_bench=0
for argument in "$@"; do
  case "$argument" in
    --tests) with_tests=1 ;;
    --bench) with_bench=1 ;;
    *) echo "setup.sh: unknown option $argument (known: --tests, --bench)" >&2; exit 2 ;;
  esac
done

step() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Building and running quiver.
debian_packages=(
  build-essential cmake ninja-build pkg-config python3-venv python3-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libcli11-dev
  libcurl4-openssl-dev  # quiver run --otlp-endpoint posts OTLP/HTTP with libcurl
)
# Building and running its tests and lint checks.
debian_test_packages=(libgtest-dev libgmock-dev libbenchmark-dev clang-format clang-tidy)

# The sanitized build and the fuzz targets (QUIVER_SANITIZE=1, QUIVER_FUZZ=1) need clang
# and its libFuzzer and sanitizer runtimes.
if [ "${QUIVER_FUZZ:-0}" = 1 ] || [ "${QUIVER_SANITIZE:-0}" = 1 ]; then debian_packages+=(clang libclang-rt-14-dev); fi

install_debian_packages() {
  local wanted=("${debian_packages[@]}") missing=()
  [ "$with_tests" = 1 ] && wanted+=("${debian_test_packages[@]}")
  for package in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$package")
  done
  # PySpark, a peer of the benchmark, needs a Java runtime (17 or newer).
  if [ "$with_bench" = 1 ] && ! command -v java >/dev/null; then
    missing+=(openjdk-17-jre-headless)
  fi
  # The JVM harness (jvm/spark-harness) builds with a JDK 17 and Maven.
  if [ "$with_tests" = 1 ]; then
    command -v javac >/dev/null || missing+=(openjdk-17-jdk-headless)
    command -v mvn >/dev/null || missing+=(maven)
  fi
  [ ${#missing[@]} -eq 0 ] && return
  step "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Installs a requirements file into .venv once, and again whenever it changes.
install_requirements() {
  local requirements="$1" what="$2"
  local stamp="$venv/.quiver-$(basename "$(dirname "$requirements")")-$(basename "$requirements").stamp"
  [ -f "$stamp" ] && [ "$stamp" -nt "$requirements" ] && return
  step "installing $what into .venv"
  "$venv/bin/python" -m pip install -q "${@:3}" -r "$requirements"
  touch "$stamp"
}

create_python_environment() {
  if [ ! -x "$venv/bin/python" ]; then
    step "creating the Python environment at .venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
  fi
  install_requirements "$root/python/requirements.txt" "the quiver package's requirements"
  if [ "$with_tests" = 1 ]; then
    install_requirements "$root/python/requirements-test.txt" "the test tools"
  fi
  if [ "$with_bench" = 1 ]; then
    install_requirements "$root/bench/requirements.txt" "the benchmark's peers"
    install_requirements "$root/bench/requirements-no-deps.txt" "Daft (pyarrow kept)" --no-deps
  fi
  local stamp="$venv/.quiver-installed"
  if [ ! -f "$stamp" ] || [ "$root/python/pyproject.toml" -nt "$stamp" ]; then
    step "installing the quiver package (editable) into .venv"
    # Compiles nothing: build() below links quiver._engine and the command into python/quiver.
    "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$root/python"
    touch "$stamp"
  fi
}

generate_python_protocol() {
  local proto="$root/proto/quiver/v1/quiver.proto"
  local generated="$root/python/quiver/v1/quiver_pb2.py"
  [ -f "$generated" ] && [ "$generated" -nt "$proto" ] && return
  step "generating the Python protocol code"
  (cd "$root" && "$venv/bin/python" -m grpc_tools.protoc -I proto --python_out=python \
     --pyi_out=python --grpc_python_out=python proto/quiver/v1/quiver.proto)
}

# Spark's UDF worker protocol (proto/spark), for the Python worker's --dialect spark. The
# script also turns protoc's bare-name imports between the four files into relative ones.
generate_spark_python_protocol() {
  local generated="$root/python/quiver/spark_dialect/proto/udf_service_pb2_grpc.py"
  if [ -f "$generated" ] && [ -z "$(find "$root/proto/spark" -newer "$generated")" ]; then
    return  # generated already, and no .proto file changed since
  fi
  step "generating the Python code of Spark's UDF worker protocol"
  "$venv/bin/python" "$root/python/quiver/spark_dialect/codegen.py" "$root/proto/spark" \
    "$root/python/quiver/spark_dialect/proto"
}

# Without --tests only the quiver command and quiver._engine are built: no test or
# benchmark targets, so a first run of the example compiles what it runs.
build() {
  local tests=OFF
  [ "$with_tests" = 1 ] && tests=ON
  local cxx_tests="${QUIVER_CXX_TESTS:-$tests}"
  step "configuring $build_dir (C++ tests: $cxx_tests, benchmarks: $tests)"
  # ccache, when the machine has it, makes rebuilds of other checkouts and build
  # directories cheap; it is optional and never installed here.
  local launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  # shellcheck disable=SC2086
  cmake -S "$root" -B "$build_dir" -G Ninja -DQUIVER_PYTHON="$venv/bin/python" "${launcher[@]}" \
    -DQUIVER_BUILD_TESTS="$cxx_tests" -DQUIVER_BUILD_BENCHMARKS="$tests" ${QUIVER_CMAKE_ARGS:-} >/dev/null
  step "building $build_dir"
  if [ "$with_tests" = 1 ]; then
    cmake --build "$build_dir" --parallel "${QUIVER_JOBS:-$(nproc)}"
  else
    cmake --build "$build_dir" --parallel "${QUIVER_JOBS:-$(nproc)}" --target quiver _engine
  fi
}

# The Rust worker SDK (rust/quiver-worker) and its example worker, which the tests and
# `quiver run` start. cargo comes from the machine (rustup's ~/.cargo/bin included); when
# there is none, from Debian's package (its Rust must be recent enough for arrow-rs).
build_rust() {
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  if ! command -v cargo >/dev/null; then
    step "installing cargo (Debian package)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends cargo
  fi
  step "building the Rust workspace (release)"
  # The first run fetches the crates Cargo.lock names; later runs build offline.
  (cd "$root/rust" && cargo build --release --locked --workspace --examples --quiet)
}

install_debian_packages
create_python_environment
generate_python_protocol
generate_spark_python_protocol
build
# The example runs Python UDFs only; the tests also start the Rust example worker.
if [ "$with_tests" = 1 ]; then build_rust; fi
