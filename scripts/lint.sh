#!/usr/bin/env bash
# Checks formatting of the C++ (clang-format) and Python (ruff) sources.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mapfile -t cpp_files < <(git ls-files 'cpp/*.h' 'cpp/*.cc' 'bench/*.cc')
if [ ${#cpp_files[@]} -gt 0 ]; then
  clang-format --dry-run --Werror "${cpp_files[@]}"
fi
.venv/bin/ruff check python bench examples tests
.venv/bin/ruff format --check python bench examples tests
echo "lint: clean"
