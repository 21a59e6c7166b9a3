"""`quiver run` over Arrow IPC files and CSV decoded on several threads writes what one
decode thread writes: every row once, in the input's order."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from quiver_e2e import assert_failed, assert_ok, people_table, read_table, spec, write_table

# Over 1 MiB of CSV (the smallest block): several blocks, so several decode threads.
ROWS = 60_000


def run_with_threads(quiver, source, out, threads: int):
    """Run shout(name) over `source` with `threads` decode threads, output to `out`."""
    quiver.env["QUIVER_DECODE_THREADS"] = str(threads)
    return quiver(
        "run",
        source,
        "--udf",
        spec("loud", "typed", "shout", "name"),
        "--batch-rows",
        1000,
        "-o",
        out,
        timeout=180,
    )


@pytest.mark.parametrize("name", ["in.arrow", "in.csv"])
def test_several_decode_threads_write_what_one_writes(quiver, tmp_path, name):
    table = people_table(ROWS)
    source = write_table(table, tmp_path / name, batch_rows=700)
    if name == "in.arrow":
        # Compressed, so that the threads decompress too.
        with pa.ipc.new_file(
            source, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")
        ) as writer:
            writer.write_table(table, max_chunksize=700)
    outputs = {}
    for threads in (1, 3):
        out = tmp_path / f"out-{threads}.parquet"
        assert_ok(run_with_threads(quiver, source, out, threads))
        outputs[threads] = read_table(out)
    assert outputs[3].equals(outputs[1])
    assert outputs[3].column("id").to_pylist() == list(range(ROWS))
    assert outputs[3].column("loud").to_pylist() == pc.utf8_upper(table.column("name")).to_pylist()


def test_a_malformed_csv_row_fails_the_run_naming_the_file_and_its_line(quiver, tmp_path):
    source = write_table(people_table(ROWS), tmp_path / "in.csv")
    lines = source.read_text().splitlines()
    lines[50_001] = "50000,only,three"  # row 50000: one field short
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.parquet"
    # Line 50002 of the file: the header is line 1.
    assert_failed(
        run_with_threads(quiver, source, out, 3),
        out,
        str(source),
        "line 50002: Expected 4 columns, got 3",
    )


def test_a_broken_arrow_batch_fails_the_run_naming_the_file_and_the_batch(quiver, tmp_path):
    # A string column whose bytes are not UTF-8 in its 6th batch: only validation sees it.
    source = tmp_path / "in.arrow"
    schema = pa.schema([("name", pa.string())])
    with pa.ipc.new_file(source, schema) as writer:
        for batch in range(10):
            text = b"\xff\xfe\xfd\xfc" if batch == 5 else b"fine"
            array = pa.Array.from_buffers(
                pa.string(), 1, [None, pa.py_buffer(b"\0\0\0\0\4\0\0\0"), pa.py_buffer(text)]
            )
            writer.write_batch(pa.record_batch([array], schema=schema))
    out = tmp_path / "out.parquet"
    assert_failed(
        run_with_threads(quiver, source, out, 3), out, str(source), "record batch 5 of 10"
    )
