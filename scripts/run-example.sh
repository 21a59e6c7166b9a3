#!/usr/bin/env bash
# Builds quiver (scripts/setup.sh), generates the example data when missing, runs two
# example UDFs over it with the `quiver` command, and prints the first rows of the result.
#
#   bash scripts/run-example.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/setup.sh

python=.venv/bin/python
if [ ! -f examples/data/people.parquet ]; then
  "$python" examples/make_example_data.py
fi

echo "==> quiver run" >&2
build/cpp/quiver/cli/quiver run examples/data/people.parquet \
  --udf 'loud=examples/udfs.py:shout(name)' \
  --udf 'gross=examples/udfs.py:price_with_tax(value)' \
  -o examples/data/people_out.parquet

echo "==> first rows of examples/data/people_out.parquet" >&2
"$python" - <<'PY'
import pyarrow.parquet as pq

table = pq.read_table("examples/data/people_out.parquet")
print(table.schema)
print()
print(table.slice(0, 8).to_pandas().to_string(index=False))
PY
