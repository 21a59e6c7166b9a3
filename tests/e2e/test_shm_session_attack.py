"""A UDF that rewrites its worker's handed-over shm results, driven through quiver.Session.

The UDF (tests/e2e/udfs/shm_attack.py, the one `quiver run`'s attack tests use) finds its shm
connection with `gc` and, after each result is handed over, writes over the region or punches a
hole in it. The user's process must then get a clear quiver error or exactly the UDF's values in
a table that passes full validation: never a crash of the user's own process, never invalid data.
The session runs in a child process, so a crash shows as that child's signal.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from quiver_e2e import udf_file

CHILD = """
import sys
import pyarrow as pa
import quiver

names = pa.array([f"person {i}" for i in range(3000)])
table = pa.table({"id": pa.array(range(3000), pa.int64()), "name": names})
with quiver.Session(workers=1, transport="shm", batch_timeout=10,
                    environment={"QUIVER_SHM_ATTACK": sys.argv[1]}) as session:
    try:
        result = session.map(
            table, udfs=[quiver.call(sys.argv[2] + ":echo_and_attack", "name", name="y")],
            batch_rows=100,
        ).read_all()
    except quiver.QuiverError as exc:
        print(f"ERROR {type(exc).__name__}: {exc}")
        sys.exit(0)
result.validate(full=True)
assert result.column("y").combine_chunks().equals(names), "values other than the UDF's"
assert result.column("id").to_pylist() == list(range(3000))
print("OK")
"""


@pytest.mark.parametrize("mode", ["rewrite", "punch"])
def test_a_udf_cannot_change_a_handed_over_result_under_a_session(mode):
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), mode, udf_file("shm_attack")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, f"exit {child.returncode}\n{child.stdout}\n{child.stderr}"
    said = child.stdout.strip()
    assert said == "OK" or said.startswith("ERROR "), child.stdout + child.stderr
    if said.startswith("ERROR "):  # an error names the batch and what was wrong with it
        assert "batch" in said and "result" in said, said
