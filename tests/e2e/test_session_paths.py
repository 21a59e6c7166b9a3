"""`quiver.Session.map(path)`: the engine reads files with the command's own readers.

The same file through `quiver run` and through a Session handed its path gives the same table;
the errors are the command's (a missing file names the closest one beside it, a malformed file
says which file and where: the CSV line, the Parquet row group); and the engine reads in
batches, so a file far larger than a batch does not raise the process's memory by its size.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from quiver_e2e import assert_failed, people_table, read_table, spec, udf_file, write_table

from quiver import InvalidInput, QuiverError, Session, UdfCall, call

LOUD = spec("loud", "typed", "shout", "name")


def loud_call() -> UdfCall:
    return call(f"{udf_file('typed')}:shout", "name", name="loud")


@pytest.mark.parametrize("name", ["in.parquet", "in.csv", "in.arrow", "in.arrows"])
def test_session_map_of_a_path_equals_quiver_run_of_it(quiver, tmp_path, name):
    source = write_table(people_table(5000), tmp_path / name, 700)
    out = tmp_path / "out.arrow"
    result = quiver("run", source, "--udf", LOUD, "-o", out, "--batch-rows", "1000")
    assert result.returncode == 0, result.stderr
    with quiver_session() as session:
        got = session.map(str(source), udfs=[loud_call()], batch_rows=1000).read_all()
        assert got.equals(read_table(out)), (got.schema, read_table(out).schema)
        kept = session.map(source, udfs=[loud_call()], select=["id"]).read_all()
    assert kept.column_names == ["id", "loud"]
    assert kept["loud"].to_pylist() == [f"PERSON {i}" for i in range(5000)]


def test_several_paths_are_read_one_after_the_other(tmp_path):
    people = people_table(3000)
    first = write_table(people.slice(0, 1000), tmp_path / "a.parquet", 300)
    second = write_table(people.slice(1000), tmp_path / "b.csv")
    with quiver_session() as session:
        got = session.map([first, second], udfs=[loud_call()], select=["id"]).read_all()
    assert got["id"].to_pylist() == list(range(3000))
    assert got["loud"].to_pylist() == [f"PERSON {i}" for i in range(3000)]


def test_a_named_format_reads_a_file_whose_extension_does_not_say(tmp_path):
    source = write_table(people_table(10), tmp_path / "people.parquet")
    renamed = source.rename(tmp_path / "people.data")
    with quiver_session() as session:
        with pytest.raises(InvalidInput, match=r"name it with input_format=parquet\|"):
            session.map(renamed, udfs=[loud_call()])
        got = session.map(renamed, udfs=[loud_call()], input_format="parquet").read_all()
    assert got.num_rows == 10


def test_a_missing_file_is_the_commands_error_with_the_closest_name(quiver, tmp_path):
    write_table(people_table(10), tmp_path / "people.parquet")
    typo = tmp_path / "peeple.parquet"
    said = [f"input file {typo} does not exist", f"did you mean '{tmp_path / 'people.parquet'}'?"]
    result = quiver("run", typo, "--udf", LOUD, "-o", tmp_path / "out.arrow")
    assert_failed(result, tmp_path / "out.arrow", *said)
    with quiver_session() as session:
        with pytest.raises(InvalidInput) as raised:
            session.map(typo, udfs=[loud_call()])
    for text in said:
        assert text in str(raised.value)
    assert session.workers_started == 0  # checked before any worker starts


def test_a_file_that_is_not_parquet_says_so(quiver, tmp_path):
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"not a parquet file at all " * 200)
    said = f"cannot read {corrupt} as Parquet"
    result = quiver("run", corrupt, "--udf", LOUD, "-o", tmp_path / "out.arrow")
    assert_failed(result, tmp_path / "out.arrow", said, "--input-format")
    with quiver_session() as session:
        with pytest.raises(InvalidInput, match="input_format=") as raised:
            session.map(corrupt, udfs=[loud_call()])
    assert said in str(raised.value)


# A bad line among the first two 1 MiB blocks (where the column types are found), and one
# past them (~4 MB of rows: read by the block reader).
@pytest.mark.parametrize("rows,bad", [(2000, 1500), (100_000, 90_000)])
def test_a_malformed_csv_line_is_named(quiver, tmp_path, rows, bad):
    source = write_table(people_table(rows), tmp_path / "people.csv")
    lines = source.read_text().splitlines()
    lines[bad] += ",one field too many"  # line bad + 1 of the file
    source.write_text("\n".join(lines) + "\n")
    said = f"line {bad + 1}"
    result = quiver("run", source, "--udf", LOUD, "-o", tmp_path / "out.arrow")
    assert_failed(result, tmp_path / "out.arrow", str(source), said)
    with quiver_session() as session:
        with pytest.raises(QuiverError) as raised:
            session.map(source, udfs=[loud_call()]).read_all()
    assert str(source) in str(raised.value) and said in str(raised.value)


def test_a_broken_parquet_row_group_is_named(quiver, tmp_path):
    source = tmp_path / "people.parquet"
    pq.write_table(
        people_table(4000), source, row_group_size=1000, use_dictionary=False, compression="none"
    )
    # Garbage over the page header of row group 2's first column: its footer still reads.
    start = pq.ParquetFile(source).metadata.row_group(2).column(0).data_page_offset
    data = bytearray(source.read_bytes())
    data[start : start + 16] = b"\xff" * 16
    source.write_bytes(bytes(data))
    said = "row group 2 of 4"
    result = quiver("run", source, "--udf", LOUD, "-o", tmp_path / "out.arrow")
    assert_failed(result, tmp_path / "out.arrow", str(source), said)
    with quiver_session() as session:
        with pytest.raises(QuiverError) as raised:
            session.map(source, udfs=[loud_call()]).read_all()
    assert str(source) in str(raised.value) and said in str(raised.value)


def test_apply_aggregate_and_flat_map_read_a_path_as_they_read_its_table(tmp_path):
    table = pa.table(
        {
            "k": pa.array([i % 7 for i in range(3000)], pa.int64()),
            "x": pa.array([i * 0.5 for i in range(3000)], pa.float64()),
            "name": pa.array([f"word{i} and more" for i in range(3000)]),
        }
    )
    source = write_table(table, tmp_path / "groups.parquet", 500)
    kinds = udf_file("kinds")
    with quiver_session() as session:
        applied = [
            session.apply(data, f"{kinds}:summarise", group_by="k").read_all()
            for data in (table, source)
        ]
        aggregated = [
            session.aggregate(
                data, [call(f"{kinds}:count_arrow", "x", name="n")], group_by="k"
            ).read_all()
            for data in (table, source)
        ]
        flat = [
            session.flat_map(data, call(f"{kinds}:words", "name"), select=["k"]).read_all()
            for data in (table, source)
        ]
        renamed = source.rename(tmp_path / "groups.data")
        named = session.apply(renamed, f"{kinds}:summarise", group_by="k", input_format="parquet")
        assert named.read_all().equals(applied[0])
    for from_table, from_path in (applied, aggregated, flat):
        assert from_path.num_rows > 0
        assert from_path.equals(from_table), (from_path.slice(0, 3), from_table.slice(0, 3))


# Maps a file of DECODED_MIB of strings (dictionary-encoded on disk, so the file is small) in
# another process, reading and dropping each result, and prints how far the process's peak
# resident memory (VmHWM) rose over a warm map of a tiny file.
MEMORY_PROBE = """
import re, sys
import quiver

def peak_mib():
    status = open("/proc/self/status").read()
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) // 1024

big, small, udfs = sys.argv[1:4]
with quiver.Session(workers=1) as session:
    call = quiver.call(udfs + ":identity_string", "text", name="same")
    for _ in session.map(small, udfs=[call]):
        pass
    before = peak_mib()
    rows = 0
    for batch in session.map(big, udfs=[call], select=[]):
        rows += batch.num_rows
    print(rows, peak_mib() - before)
"""


def test_a_file_far_larger_than_a_batch_does_not_raise_memory_by_its_size(tmp_path):
    rows, text = 4_000_000, "q" * 100  # 400 MB of strings decoded
    big, small = tmp_path / "big.parquet", tmp_path / "small.parquet"
    pq.write_table(pa.table({"text": pa.array([text] * rows)}), big, row_group_size=500_000)
    pq.write_table(pa.table({"text": pa.array([text] * 10)}), small)
    udfs = tmp_path / "identity_udfs.py"
    udfs.write_text(
        textwrap.dedent("""
        import pyarrow as pa
        import quiver

        @quiver.udf(returns="string")
        def identity_string(x: pa.Array) -> pa.Array:
            return x
        """)
    )
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(big), str(small), str(udfs)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    read, rise = map(int, done.stdout.split())
    assert read == rows
    # A few 4 MiB batches in flight (read ahead, at the worker, results), never the 400 MB.
    assert rise < 150, f"the peak resident memory rose by {rise} MiB reading 400 MB of strings"


def quiver_session() -> Session:
    """A session of two workers, as a user's."""
    return Session(workers=2)
