"""quiver.Session.apply, .aggregate and .flat_map (grouped map, UDAFs, UDTFs) with real
workers: each equals `quiver run` on the same functions and a reference computed here, and
bad inputs fail with the errors docs/grouped-map.md, udaf.md and udtf.md describe."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from udfs import kinds_session as k
from wheelhouse import apply, make_wheel, offline_environment, restore

import quiver

pytest.importorskip("quiver._engine", reason="quiver._engine is not built (scripts/setup.sh)")

ROOT = Path(__file__).resolve().parents[2]
UDFS = Path(k.__file__).resolve()
BINARY = Path(os.environ.get("QUIVER_BINARY", ROOT / "build" / "cpp" / "quiver" / "cli" / "quiver"))


def keyed(rows: int = 240, keys: int = 13) -> pa.Table:
    """k cycles through `keys` values, so every group spans every input batch."""
    return pa.table(
        {
            "k": pa.array([(i * 7) % keys for i in range(rows)], pa.int64()),
            "x": pa.array([float((i * 13) % 101) for i in range(rows)]),
            "name": pa.array([f"n{i}" for i in range(rows)]),
        }
    )


def batched(table: pa.Table, rows: int) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=rows))


def by_key(table: pa.Table) -> dict:
    """The rows of each k, keys in order of first appearance."""
    groups: dict = {}
    for row in table.to_pylist():
        groups.setdefault(row["k"], []).append(row)
    return groups


def run_cli(tmp_path: Path, table: pa.Table, *args: str) -> subprocess.CompletedProcess:
    """`quiver run` over `table` (written in row groups of 50 rows) into out.parquet."""
    if not BINARY.exists():
        pytest.skip(f"the quiver command is not built ({BINARY})")
    source, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(table, source, row_group_size=50)
    return subprocess.run(
        [BINARY, "run", source, *args, "--python", sys.executable, "-o", out, "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def quiver_run(tmp_path: Path, table: pa.Table, *args: str) -> pa.Table:
    """`quiver run` over `table`; returns its output."""
    done = run_cli(tmp_path, table, *args)
    assert done.returncode == 0, done.stderr
    return pq.read_table(tmp_path / "out.parquet")


@pytest.fixture(scope="module")
def session() -> Iterator[quiver.Session]:
    with quiver.Session(workers=2) as s:
        yield s


# ---- each kind equals `quiver run` and a reference ----


def test_apply_equals_quiver_run_and_pandas(session: quiver.Session, tmp_path: Path) -> None:
    table = keyed()
    got = session.apply(batched(table, 50), k.demean, group_by="k", batch_rows=40).read_all()
    assert got.schema.names == ["k", "name", "x", "centred"]
    want = []
    for rows in by_key(table).values():
        mean = sum(r["x"] for r in rows) / len(rows)
        want += [{**r, "centred": r["x"] - mean} for r in rows]
    assert [(r["k"], r["name"]) for r in got.to_pylist()] == [(r["k"], r["name"]) for r in want]
    assert got.column("centred").to_pylist() == pytest.approx([r["centred"] for r in want])
    cli = quiver_run(tmp_path, table, "--group-by", "k", "--apply", f"{UDFS}:demean")
    assert got.equals(cli.cast(got.schema))


def test_aggregate_simple_equals_quiver_run(session: quiver.Session, tmp_path: Path) -> None:
    table = keyed()
    aggs = {"spread": quiver.call(k.spread, "x"), "n": quiver.call(f"{UDFS}:count", "name")}
    got = session.aggregate(table, aggs, group_by=["k"]).read_all()
    assert got.schema.names == ["k", "spread", "n"]
    want = [
        {"k": key, "spread": max(r["x"] for r in rows) - min(r["x"] for r in rows), "n": len(rows)}
        for key, rows in by_key(table).items()
    ]
    assert got.to_pylist() == want
    cli = quiver_run(
        tmp_path,
        table,
        "--group-by",
        "k",
        "--agg",
        f"spread={UDFS}:spread(x)",
        "--agg",
        f"n={UDFS}:count(name)",
    )
    assert got.equals(cli)


def test_aggregate_partial_form_from_several_workers(session: quiver.Session) -> None:
    table = keyed(600, keys=11)
    got = session.aggregate(
        batched(table, 50), [quiver.call(k.Mean, "x", name="mean")], group_by="k"
    ).read_all()
    assert got.schema.names == ["k", "mean"]
    want = {key: sum(r["x"] for r in rows) / len(rows) for key, rows in by_key(table).items()}
    assert got.column("k").to_pylist() == list(want)
    assert got.column("mean").to_pylist() == pytest.approx(list(want.values()))


def test_flat_map_equals_quiver_run(session: quiver.Session, tmp_path: Path) -> None:
    table = pa.table(
        {"id": pa.array(range(7), pa.int64()), "text": ["a b", "", None, "c", "d e f", "g", " "]}
    )
    got = session.flat_map(table, quiver.call(k.words, "text"), select=["id"], batch_rows=3)
    got = got.read_all()
    assert got.schema.names == ["id", "word", "position"]
    assert got.to_pylist() == [
        {"id": i, "word": w, "position": p}
        for i, text in enumerate(table.column("text").to_pylist())
        for p, w in enumerate((text or "").split())
    ]
    cli = quiver_run(tmp_path, table, "--select", "id", "--udtf", f"w={UDFS}:words(text)")
    assert got.equals(cli)


def test_the_kinds_reuse_the_sessions_warm_workers(session: quiver.Session) -> None:
    table = keyed(60)
    session.map(table, udfs=[quiver.call(k.same, "x")]).read_all()  # both workers are warm
    started = session.workers_started
    for _ in range(2):
        session.apply(table, k.demean, group_by="k").read_all()
        session.aggregate(table, {"n": quiver.call(k.count, "x")}, group_by="k").read_all()
        session.aggregate(table, {"m": quiver.call(k.Mean, "x")}, group_by="k").read_all()
        session.flat_map(table, quiver.call(k.words, "name")).read_all()
        session.map(table, udfs=[quiver.call(k.same, "x")]).read_all()
    assert session.workers_started == started


def test_a_reader_dropped_early_leaves_the_session_usable(session: quiver.Session) -> None:
    table = pa.table({"text": ["a b c"] * 500})
    reader = session.flat_map(table, quiver.call(k.words, "text"), batch_rows=10)
    assert reader.read_next_batch().num_rows == 30
    reader.close()
    del reader
    got = session.flat_map(table.slice(0, 2), quiver.call(k.words, "text")).read_all()
    assert got.column("word").to_pylist() == ["a", "b", "c"] * 2


# ---- bad inputs ----


def test_a_udtf_index_out_of_range_fails_naming_it(session: quiver.Session) -> None:
    table = pa.table({"n": pa.array([1, 2, 3, 4, 5], pa.int64())})
    reader = session.flat_map(table, quiver.call(k.index_out_of_range, "n", name="bad"))
    with pytest.raises(quiver.QuiverError, match=r"UDTF 'bad'.*input row index 5.*\[0, 5\)"):
        reader.read_all()


def test_a_group_over_the_limit_fails_naming_its_keys(session: quiver.Session) -> None:
    table = pa.table({"k": [1] * 5 + [2] * 500, "x": [1.0] * 505, "name": ["n"] * 505})
    reader = session.apply(table, k.demean, group_by="k", max_group_bytes=1000)
    with pytest.raises(quiver.QuiverError, match=r"(?s)group.*k=2.*max_group_bytes"):
        reader.read_all()
    # Aggregates of the simple form are bounded the same way.
    with pytest.raises(quiver.QuiverError, match="max_group_bytes"):
        session.aggregate(
            table, {"n": quiver.call(k.count, "x")}, group_by="k", max_group_bytes=1000
        ).read_all()


def test_a_non_associative_merge_depends_on_the_worker_count_as_documented() -> None:
    # docs/udaf.md: states merge per worker first, then across workers; a merge that is not
    # associative gives results that change with the worker count (stable for one count).
    table = keyed(600, keys=11)
    aggs = {"m": quiver.call(k.MeanOfMeans, "x")}
    results = []
    for workers, runs in ((1, 1), (2, 2)):
        with quiver.Session(workers=workers) as s:
            for _ in range(runs):
                out = s.aggregate(batched(table, 50), aggs, group_by="k", batch_rows=50)
                results.append(dict(zip(*out.read_all().to_pydict().values(), strict=True)))
    one, two, again = results
    assert two == again
    assert one.keys() == two.keys()
    assert any(one[key] != pytest.approx(two[key]) for key in one)


def test_a_udf_error_keeps_its_kind(session: quiver.Session) -> None:
    reader = session.apply(keyed(60), k.explode_on_three, group_by="k")
    with pytest.raises(quiver.UdfError, match="no threes") as caught:
        reader.read_all()
    assert caught.value.udf_name == "explode_on_three"
    assert caught.value.error_class == "ValueError"


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[None]:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "quiverdemo", "1.0")
    old = apply(offline_environment(wheels, tmp_path / "cache"))
    try:
        yield
    finally:
        restore(old)


def test_an_environment_that_fails_to_install_raises_naming_the_package(offline: None) -> None:
    with quiver.Session(workers=1) as s:
        with pytest.raises(quiver.QuiverError, match=r"quiverdemo==9\.9"):
            s.aggregate(pa.table({"k": [1], "x": [1]}), {"n": k.unavailable}, group_by="k")
        assert s.workers_started == 0


def test_quiver_run_builds_a_kinds_environment_too(offline: None, tmp_path: Path) -> None:
    table = pa.table({"k": [1], "x": [1]})
    done = run_cli(tmp_path, table, "--group-by", "k", "--agg", f"n={UDFS}:unavailable(x)")
    assert done.returncode != 0
    assert "quiverdemo==9.9" in done.stderr
    assert not (tmp_path / "out.parquet").exists()


def test_a_closed_session_refuses_every_kind() -> None:
    s = quiver.Session(workers=1)
    s.close()
    table = keyed(10)
    with pytest.raises(quiver.SessionClosed):
        s.apply(table, k.demean, group_by="k")
    with pytest.raises(quiver.SessionClosed):
        s.aggregate(table, {"n": quiver.call(k.count, "x")}, group_by="k")
    with pytest.raises(quiver.SessionClosed):
        s.flat_map(table, quiver.call(k.words, "name"))


def test_unknown_columns_fail_before_any_worker_starts() -> None:
    table = keyed(10)
    with quiver.Session(workers=1) as s:
        with pytest.raises(quiver.InvalidInput, match=r"'kk'.*did you mean 'k'"):
            s.apply(table, k.demean, group_by="kk")
        with pytest.raises(quiver.InvalidInput, match=r"'xx'.*did you mean 'x'"):
            s.aggregate(table, {"n": quiver.call(k.count, "xx")}, group_by="k")
        with pytest.raises(quiver.InvalidInput, match="'nam'"):
            s.flat_map(table, quiver.call(k.words, "name"), select=["nam"])
        assert s.workers_started == 0


def test_functions_of_the_wrong_kind_are_refused_at_the_call(session: quiver.Session) -> None:
    table = keyed(10)
    with pytest.raises(quiver.InvalidInput, match=r"fn= takes a grouped map.*not a UDAF"):
        session.apply(table, k.spread, group_by="k")
    with pytest.raises(quiver.InvalidInput, match="udtf= takes a table function.*grouped map"):
        session.flat_map(table, quiver.call(k.demean))
    with pytest.raises(quiver.InvalidInput, match="aggs= takes a UDAF.*not a scalar UDF"):
        session.aggregate(table, {"n": quiver.call(k.same, "x")}, group_by="k")
    with pytest.raises(quiver.InvalidInput, match="without arguments"):
        session.apply(table, quiver.call(k.demean, "x"), group_by="k")
    with pytest.raises(quiver.InvalidInput, match="group_by"):
        session.apply(table, k.demean, group_by=[])


# ---- the docs' Python examples run as written ----


def docs_examples(page: str) -> str:
    """The ```python blocks of the page's "Python API" section."""
    text = (ROOT / "docs" / page).read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, f"docs/{page} has no Python example"
    return "\n".join(blocks)


def test_the_docs_python_examples_run() -> None:
    pages = {
        "grouped-map.md": "{'city': 'Oslo', 'name': 'di', 'value': 4.0, 'rank': 2}",
        "udaf.md": "[{'city': 'Oslo', 'mean': 4.0}, {'city': 'Lima', 'mean': 1.0}]",
        "udtf.md": "{'id': 3, 'part': 'Hopper', 'position': 1}]",
    }
    # One interpreter runs the three pages' examples, each in a namespace of its own.
    script = "\n".join(
        f"exec({docs_examples(page)!r}, {{'__name__': '__main__'}})" for page in pages
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    for page, printed in pages.items():
        assert printed in done.stdout, f"docs/{page}: {done.stdout}"
