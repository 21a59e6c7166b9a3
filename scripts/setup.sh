#!/usr/bin/env bash
# Installs what quiver needs and is missing, then configures and builds it.
# Idempotent: a second run installs nothing and rebuilds only what changed.
#
#   bash scripts/setup.sh            # Debian packages, .venv, generated code, build/
#   QUIVER_BUILD_DIR=build-asan QUIVER_CMAKE_ARGS="-DQUIVER_SANITIZE=address,undefined" \
#     bash scripts/setup.sh          # a second, sanitized build
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${QUIVER_BUILD_DIR:-$root/build}"
venv="$root/.venv"

step() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

debian_packages=(
  build-essential cmake ninja-build pkg-config python3-venv python3-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev clang-format clang-tidy
)

# The fuzz targets (QUIVER_FUZZ=1) need clang and its libFuzzer runtime.
if [ "${QUIVER_FUZZ:-0}" = 1 ]; then debian_packages+=(clang libclang-rt-14-dev); fi

install_debian_packages() {
  local missing=()
  for package in "${debian_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$package")
  done
  # PySpark, a peer of the benchmark, needs a Java runtime (17 or newer).
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  [ ${#missing[@]} -eq 0 ] && return
  step "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

create_python_environment() {
  local stamp="$venv/.quiver-installed"
  if [ ! -x "$venv/bin/python" ]; then
    step "creating the Python environment at .venv"
    python3 -m venv "$venv"
  fi
  if [ ! -f "$stamp" ] || [ "$root/python/pyproject.toml" -nt "$stamp" ] ||
     [ "$root/python/requirements.txt" -nt "$stamp" ] ||
     [ "$root/bench/requirements.txt" -nt "$stamp" ]; then
    step "installing Python packages into .venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    # The package, its tests, and the peers the benchmark runs beside quiver.
    "$venv/bin/python" -m pip install -q -r "$root/python/requirements.txt" \
      -r "$root/bench/requirements.txt"
    "$venv/bin/python" -m pip install -q --no-deps -e "$root/python"
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

build() {
  if [ ! -f "$build_dir/build.ninja" ]; then
    step "configuring $build_dir"
    # shellcheck disable=SC2086
    cmake -S "$root" -B "$build_dir" -G Ninja -DQUIVER_PYTHON="$venv/bin/python" \
      ${QUIVER_CMAKE_ARGS:-}
  fi
  step "building $build_dir"
  cmake --build "$build_dir" --parallel "${QUIVER_JOBS:-$(nproc)}"
}

install_debian_packages
create_python_environment
generate_python_protocol
build
