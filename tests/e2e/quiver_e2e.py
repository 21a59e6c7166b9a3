"""Helpers of the end-to-end tests: input tables, UDFs computed in process, output checks."""

from __future__ import annotations

import datetime
import decimal
import importlib.util
import re
import subprocess
from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]
UDFS = Path(__file__).resolve().parent / "udfs"

_modules: dict[str, ModuleType] = {}


def udf_file(name: str) -> str:
    """Return the absolute path of tests/e2e/udfs/NAME.py, for --udf specs."""
    return str(UDFS / f"{name}.py")


def spec(result: str, module: str, function: str, *args: str) -> str:
    """Return a --udf spec: RESULT=.../udfs/MODULE.py:FUNCTION(ARGS)."""
    return f"{result}={udf_file(module)}:{function}({', '.join(args)})"


def load(module: str) -> ModuleType:
    """Import tests/e2e/udfs/MODULE.py in this process, to compute expected results."""
    if module not in _modules:
        location = importlib.util.spec_from_file_location(f"e2e_udfs_{module}", udf_file(module))
        loaded = importlib.util.module_from_spec(location)
        location.loader.exec_module(loaded)
        _modules[module] = loaded
    return _modules[module]


def expected(module: str, function: str, *columns: pa.Array) -> pa.Array:
    """Call a UDF in process on whole columns, the way the worker calls it per batch."""
    udf = getattr(load(module), function)
    arrays = [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in columns]
    if udf.eval_type == "scalar_pandas":
        result = udf(*[a.to_pandas() for a in arrays])
        return pa.array(result, type=udf.returns, from_pandas=True)
    result = udf(*arrays)
    if isinstance(result, pa.ChunkedArray):
        result = result.combine_chunks()
    return result


def typed_table(rows: int = 50) -> pa.Table:
    """Return a table with a column of every type the tests cover; every 5th value is null."""

    def nulled(values):
        return [None if i % 5 == 3 else v for i, v in enumerate(values)]

    base = datetime.datetime(2024, 3, 30, 22, 0, tzinfo=datetime.timezone.utc)
    cities = ["paris", "tokyo", "lima", "oslo"]
    return pa.table(
        {
            "i32": pa.array(nulled(range(rows)), pa.int32()),
            "i64": pa.array(nulled(i * 1_000_000_007 for i in range(rows)), pa.int64()),
            "f64": pa.array(nulled(i / 7 for i in range(rows)), pa.float64()),
            "s": pa.array(nulled(f"name {i} é" for i in range(rows)), pa.string()),
            "ls": pa.array(nulled(f"large {i}" for i in range(rows)), pa.large_string()),
            "lst": pa.array(
                nulled([list(range(i % 4)) + [None] * (i % 2) for i in range(rows)]),
                pa.list_(pa.int64()),
            ),
            "st": pa.array(
                nulled({"a": i, "b": None if i % 3 else f"b{i}"} for i in range(rows)),
                pa.struct([("a", pa.int64()), ("b", pa.string())]),
            ),
            "ts": pa.array(
                nulled(base + datetime.timedelta(minutes=37 * i) for i in range(rows)),
                pa.timestamp("us", tz="Europe/Paris"),
            ),
            "dec": pa.array(
                nulled(decimal.Decimal(i * 37) / 100 - 5 for i in range(rows)),
                pa.decimal128(10, 2),
            ),
            "dic": pa.array(nulled(cities[i % 4] for i in range(rows))).dictionary_encode(),
        }
    )


def people_table(rows: int) -> pa.Table:
    """Return a simple table: id, name, value, city (no nulls, so CSV round-trips)."""
    cities = ["paris", "tokyo", "lima", "oslo", "accra"]
    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "name": pa.array([f"person {i}" for i in range(rows)]),
            "value": pa.array([round(i * 1.25, 2) for i in range(rows)], pa.float64()),
            "city": pa.array([cities[i % 5] for i in range(rows)]),
        }
    )


def write_table(table: pa.Table, path: Path, batch_rows: int | None = None) -> Path:
    """Write `table` in the format the extension of `path` names."""
    suffix = path.suffix
    if suffix in (".parquet", ".pq"):
        pq.write_table(table, path, row_group_size=batch_rows)
    elif suffix == ".csv":
        pacsv.write_csv(table, path)
    elif suffix in (".arrow", ".feather", ".ipc"):
        with pa.ipc.new_file(path, table.schema) as writer:
            writer.write_table(table, max_chunksize=batch_rows)
    elif suffix == ".arrows":
        with pa.ipc.new_stream(path, table.schema) as writer:
            writer.write_table(table, max_chunksize=batch_rows)
    else:
        raise ValueError(f"no writer for {path}")
    return path


def read_table(path: Path) -> pa.Table:
    """Read an output file in the format its extension names."""
    suffix = path.suffix
    if suffix in (".parquet", ".pq"):
        return pq.read_table(path)
    if suffix == ".csv":
        return pacsv.read_csv(path)
    if suffix in (".arrow", ".feather", ".ipc"):
        with pa.ipc.open_file(path) as reader:
            return reader.read_all()
    if suffix == ".arrows":
        with pa.ipc.open_stream(path) as reader:
            return reader.read_all()
    raise ValueError(f"no reader for {path}")


def assert_ok(result: subprocess.CompletedProcess) -> None:
    """Assert a run succeeded, showing its stderr when not."""
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr}"


def assert_column(table: pa.Table, name: str, want: pa.Array) -> None:
    """Assert an output column has the expected type and values."""
    got = table.column(name).combine_chunks()
    assert got.type == want.type, f"{name}: type {got.type}, expected {want.type}"
    assert got.to_pylist() == want.to_pylist(), f"{name}: values differ"


def summary_batches(stderr: str) -> int:
    """Return the batch count the summary reports."""
    match = re.search(r"rows\s+[\d,]+ in ([\d,]+) batch", stderr)
    assert match, f"no summary in stderr:\n{stderr}"
    return int(match.group(1).replace(",", ""))


def leftovers(directory: Path) -> list[str]:
    """Return the temporary output files left in `directory`."""
    return sorted(p.name for p in directory.glob(".*quiver-tmp*"))


def assert_failed(
    result: subprocess.CompletedProcess, output: Path, *needles: str, status: int = 1
) -> str:
    """Assert a run failed cleanly: exit `status`, an error naming `needles`, no output."""
    assert result.returncode == status, (
        f"exit {result.returncode}, expected {status}\n{result.stderr}"
    )
    assert "quiver: error:" in result.stderr, result.stderr
    for needle in needles:
        assert needle in result.stderr, f"{needle!r} not in stderr:\n{result.stderr}"
    assert not output.exists(), f"{output} exists after a failed run"
    assert leftovers(output.parent) == [], f"temporary files left: {leftovers(output.parent)}"
    return result.stderr
