"""`quiver run` end to end for the grouped and table kinds: --apply, --agg, --udtf."""

from __future__ import annotations

import pyarrow as pa
import pytest
from quiver_e2e import assert_failed, assert_ok, read_table, udf_file, write_table


def keyed_table(rows: int = 300, keys: int = 17) -> pa.Table:
    """k cycles through `keys` values (so every group spans every batch); x and name vary."""
    return pa.table(
        {
            "k": pa.array([(i * 7) % keys for i in range(rows)], pa.int64()),
            "x": pa.array([float((i * 13) % 101) for i in range(rows)]),
            "name": pa.array([f"n{i}" for i in range(rows)]),
        }
    )


def by_key(table: pa.Table) -> dict:
    """Group the input rows by k, in order of first appearance."""
    groups: dict = {}
    for row in table.to_pylist():
        groups.setdefault(row["k"], []).append(row)
    return groups


@pytest.mark.parametrize("workers", [1, 2])
def test_grouped_map_pandas_sees_whole_groups_across_batches(quiver, tmp_path, workers):
    table = keyed_table()
    source = write_table(table, tmp_path / "in.parquet", batch_rows=40)
    out = tmp_path / "out.parquet"
    result = quiver(
        "run",
        source,
        "--group-by",
        "k",
        "--apply",
        f"{udf_file('kinds')}:summarise",
        "--batch-rows",
        50,
        "--workers",
        workers,
        "-o",
        out,
    )
    assert_ok(result)
    got = read_table(out)
    assert got.schema.names == ["k", "n", "total", "first"]
    assert got.schema.field("n").type == pa.int64()
    want = [
        {"k": k, "n": len(rows), "total": sum(r["x"] for r in rows), "first": rows[0]["name"]}
        for k, rows in by_key(table).items()
    ]
    assert got.to_pylist() == want  # groups in order of their first row


def test_grouped_map_arrow_returns_many_rows_per_group(quiver, tmp_path):
    table = keyed_table(120, keys=5)
    source = write_table(table, tmp_path / "in.arrow", batch_rows=16)
    out = tmp_path / "out.arrow"
    result = quiver(
        "run",
        source,
        "--group-by",
        "k",
        "--apply",
        f"{udf_file('kinds')}:ranked",
        "--batch-rows",
        30,
        "-o",
        out,
    )
    assert_ok(result)
    got = read_table(out).to_pylist()
    assert len(got) == 120
    want = []
    for k, rows in by_key(table).items():
        ordered = sorted(rows, key=lambda r: r["x"])  # stable: ties keep input order
        want += [{"k": k, "x": r["x"], "rank": i + 1} for i, r in enumerate(ordered)]
    assert got == want


def test_grouped_map_group_over_the_limit_fails_naming_it(quiver, tmp_path):
    table = keyed_table(400, keys=2)
    source = write_table(table, tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = quiver(
        "run",
        source,
        "--group-by",
        "k",
        "--apply",
        f"{udf_file('kinds')}:summarise",
        "--max-group-bytes",
        1000,
        "-o",
        out,
    )
    assert_failed(result, out, "grouped map 'summarise'", "k=0", "--max-group-bytes")


def test_grouped_map_workers_keep_to_their_memory_cap(quiver, tmp_path):
    source = write_table(keyed_table(400, keys=20), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = quiver(
        "run", source, "--group-by", "k", "--apply", f"{udf_file('kinds')}:hoard_per_group",
        "--worker-memory", "300M", "-o", out,
    )  # fmt: skip
    assert_failed(result, out, "over its cap of 300 MiB", "--worker-memory")


def test_grouped_map_result_without_a_declared_column_fails(quiver, tmp_path):
    source = write_table(keyed_table(), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = quiver(
        "run",
        source,
        "--group-by",
        "k",
        "--apply",
        f"{udf_file('kinds')}:wrong_columns",
        "-o",
        out,
    )
    assert_failed(result, out, "wrong_columns", "missing")


def test_grouped_map_user_error_names_the_function(quiver, tmp_path):
    source = write_table(keyed_table(), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = quiver(
        "run",
        source,
        "--group-by",
        "k",
        "--apply",
        f"{udf_file('kinds')}:explode_on_seven",
        "-o",
        out,
    )
    assert_failed(result, out, "explode_on_seven", "ValueError", "no sevens")


def test_grouped_map_unknown_key_suggests_a_column(quiver, tmp_path):
    source = write_table(keyed_table(), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = quiver(
        "run",
        source,
        "--group-by",
        "nmae",
        "--apply",
        f"{udf_file('kinds')}:summarise",
        "-o",
        out,
    )
    assert_failed(result, out, "'nmae'", "did you mean 'name'", status=2)


def test_kind_options_are_checked_before_anything_starts(quiver, tmp_path):
    source = write_table(keyed_table(), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    apply = f"{udf_file('kinds')}:summarise"
    result = quiver("run", source, "--apply", apply, "-o", out)
    assert_failed(result, out, "--apply needs --group-by", status=2)
    result = quiver("run", source, "--group-by", "k", "--udtf", f"w={apply}(name)", "-o", out)
    assert_failed(result, out, "--udtf takes no --group-by", status=2)
    for flag in ("--workers", "--max-in-flight", "--batch-rows", "--max-group-bytes"):
        result = quiver("run", source, "--group-by", "k", "--apply", apply, flag, "0", "-o", out)
        assert_failed(result, out, f"{flag} must be at least 1, not 0", status=2)


@pytest.mark.parametrize("workers", [1, 2])
def test_simple_udafs_give_one_value_per_group(quiver, tmp_path, workers):
    table = keyed_table()
    source = write_table(table, tmp_path / "in.parquet", batch_rows=40)
    out = tmp_path / "out.parquet"
    result = quiver(
        "run",
        source,
        "--group-by",
        "k",
        "--agg",
        f"rmean={udf_file('kinds')}:robust_mean(x)",
        "--agg",
        f"count={udf_file('kinds')}:count_arrow(name)",
        "--batch-rows",
        64,
        "--workers",
        workers,
        "-o",
        out,
    )
    assert_ok(result)
    got = read_table(out)
    assert got.schema.names == ["k", "rmean", "count"]
    want = []
    for k, rows in by_key(table).items():
        xs = sorted(r["x"] for r in rows)
        want.append({"k": k, "rmean": sum(xs[1:-1]) / (len(xs) - 2), "count": len(rows)})
    assert got.num_rows == len(want)
    for g, w in zip(got.to_pylist(), want, strict=True):
        assert g["k"] == w["k"] and g["count"] == w["count"]
        assert g["rmean"] == pytest.approx(w["rmean"])


def partial_run(quiver, tmp_path, function: str, workers: int) -> dict:
    table = keyed_table(600, keys=11)
    source = write_table(table, tmp_path / "in.parquet", batch_rows=50)
    out = tmp_path / f"out-{function}-{workers}.parquet"
    result = quiver(
        "run",
        source,
        "--group-by",
        "k",
        "--agg",
        f"m={udf_file('kinds')}:{function}(x)",
        "--batch-rows",
        50,
        "--workers",
        workers,
        "-o",
        out,
    )
    assert_ok(result)
    got = read_table(out)
    assert got.schema.names == ["k", "m"]
    return {row["k"]: row["m"] for row in got.to_pylist()}


def test_partial_udaf_states_from_several_workers_combine(quiver, tmp_path):
    table = keyed_table(600, keys=11)
    want = {k: sum(r["x"] for r in rows) / len(rows) for k, rows in by_key(table).items()}
    for workers in (1, 3):
        got = partial_run(quiver, tmp_path, "Mean", workers)
        assert got.keys() == want.keys()
        for k in want:
            assert got[k] == pytest.approx(want[k])


def test_non_associative_merge_depends_on_the_worker_count_as_documented(quiver, tmp_path):
    # docs/udaf.md: states are merged per worker first, then across workers, so a merge that
    # is not associative gives results that depend on --workers (and are stable for a count).
    one = partial_run(quiver, tmp_path, "MeanOfMeans", 1)
    two = partial_run(quiver, tmp_path, "MeanOfMeans", 2)
    again = partial_run(quiver, tmp_path, "MeanOfMeans", 2)
    assert two == again
    assert one.keys() == two.keys()
    assert any(one[k] != pytest.approx(two[k]) for k in one)


def test_udtf_generator_repeats_pass_through_columns_in_order(quiver, tmp_path):
    table = pa.table(
        {
            "id": pa.array(range(7), pa.int64()),
            "text": pa.array(["a b", "", None, "c", "d e f", "g", " "]),
        }
    )
    source = write_table(table, tmp_path / "in.parquet", batch_rows=3)
    out = tmp_path / "out.parquet"
    result = quiver(
        "run",
        source,
        "--udtf",
        f"w={udf_file('kinds')}:words(text)",
        "--select",
        "id",
        "--batch-rows",
        3,
        "--workers",
        2,
        "-o",
        out,
    )
    assert_ok(result)
    got = read_table(out)
    assert got.schema.names == ["id", "word", "position"]
    assert got.schema.field("position").type == pa.int32()
    assert got.to_pylist() == [
        {"id": 0, "word": "a", "position": 0},
        {"id": 0, "word": "b", "position": 1},
        {"id": 3, "word": "c", "position": 0},
        {"id": 4, "word": "d", "position": 0},
        {"id": 4, "word": "e", "position": 1},
        {"id": 4, "word": "f", "position": 2},
        {"id": 5, "word": "g", "position": 0},
    ]


def test_udtf_batch_form_keeps_every_input_column(quiver, tmp_path):
    table = pa.table({"n": pa.array([2, 0, 1, None, 3], pa.int64()), "tag": list("abcde")})
    source = write_table(table, tmp_path / "in.arrow")
    out = tmp_path / "out.arrow"
    result = quiver("run", source, "--udtf", f"r={udf_file('kinds')}:repeat(n)", "-o", out)
    assert_ok(result)
    got = read_table(out).to_pylist()
    assert [(r["tag"], r["copy"]) for r in got] == [
        ("a", 0),
        ("a", 1),
        ("c", 0),
        ("e", 0),
        ("e", 1),
        ("e", 2),
    ]
    assert list(got[0]) == ["n", "tag", "copy"]


@pytest.mark.parametrize(
    ("function", "needles"),
    [
        ("index_out_of_range", ["UDTF 'bad'", "input row index 5", "[0, 5)"]),
        ("index_backwards", ["UDTF 'bad'", "must not decrease"]),
    ],
)
def test_udtf_bad_row_indices_are_clear_errors(quiver, tmp_path, function, needles):
    table = pa.table({"n": pa.array([1, 2, 3, 4, 5], pa.int64())})
    source = write_table(table, tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = quiver("run", source, "--udtf", f"bad={udf_file('kinds')}:{function}(n)", "-o", out)
    assert_failed(result, out, *needles)
