"""quiver.Session with class UDFs and with UDFs in their own Python environments (real
workers; environments install wheels built in the test's directory, no network)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from udfs import classes
from wheelhouse import apply, make_wheel, offline_environment, restore

import quiver

pytest.importorskip("quiver._engine", reason="quiver._engine is not built (scripts/setup.sh)")


def test_class_udf_with_json_and_bound_arguments() -> None:
    table = pa.table({"x": list(range(10)), "s": [f"n{i}" for i in range(10)]})
    with quiver.Session(workers=1) as s:
        for _ in range(2):  # the second map reuses the worker and its instances
            out = s.map(
                table,
                udfs=[
                    quiver.call(classes.Offset, "x", name="plus", init={"amount": 5}),
                    quiver.call(classes.Offset.bind(amount=7), "x", name="plus7"),
                    quiver.call(classes.Suffix, "s", init={"suffix": "?"}),
                    quiver.call(classes.SetupCount, "x", name="setups"),
                ],
                batch_rows=3,
            ).read_all()
            assert out.column("plus").to_pylist() == [i + 5 for i in range(10)]
            assert out.column("plus7").to_pylist() == [i + 7 for i in range(10)]
            assert out.column("Suffix").to_pylist() == [f"n{i}?" for i in range(10)]
            # Offset(5) and Offset(7) were set up once each (SETUPS counts Offset instances).
            assert set(out.column("setups").to_pylist()) == {2}
        assert s.workers_started == 1


def test_class_setup_error_is_a_worker_error_naming_the_class() -> None:
    with quiver.Session(workers=1) as s:
        with pytest.raises(quiver.WorkerError, match="setting up class BrokenSetup"):
            s.map(
                pa.table({"x": [1]}),
                udfs=[quiver.call(classes.BrokenSetup, "x", init={"model_path": "/no/model"})],
            ).read_all()


def test_init_takes_json_values_only() -> None:
    with pytest.raises(TypeError, match="Model.bind"):
        quiver.call(classes.Offset, "x", init={"amount": object()})


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("envs")
    wheels = base / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "quiverdemo", "1.0")
    make_wheel(wheels, "quiverdemo", "2.0")
    udfs = base / "versions.py"
    udfs.write_text(
        textwrap.dedent("""\
            import pyarrow as pa
            import quiverdemo  # only the environments have it
            import quiver

            @quiver.udf(returns="string", requirements=["quiverdemo<2"])
            def old(x: pa.Array) -> pa.Array:
                return pa.array([quiverdemo.VERSION] * len(x))

            @quiver.udf(returns="string", requirements=["quiverdemo==2.0"])
            def new(x: pa.Array) -> pa.Array:
                return pa.array([quiverdemo.VERSION] * len(x))
            """)
    )
    old = apply(offline_environment(wheels, base / "cache"))
    try:
        yield udfs
    finally:
        restore(old)


def test_udfs_with_conflicting_requirements_in_one_map(offline: Path) -> None:
    @quiver.udf(returns="int64", requirements=["quiverdemo==2.0"])
    def major(x: pa.Array) -> pa.Array:  # by value (cloudpickle), into its environment
        import quiverdemo

        return pa.array([int(quiverdemo.VERSION[0])] * len(x), pa.int64())

    table = pa.table({"id": list(range(7)), "other": ["a"] * 7})
    with quiver.Session(workers=1) as s:
        out = s.map(
            table,
            udfs=[
                quiver.call(f"{offline}:old", "id"),
                quiver.call(classes.Offset, "id", name="plus", init={"amount": 1}),
                quiver.call(f"{offline}:new", "id"),
                quiver.call(major, "id"),
            ],
            select=["id"],
            batch_rows=3,
        ).read_all()
    assert out.column_names == ["id", "old", "plus", "new", "major"]
    assert out.column("id").to_pylist() == list(range(7))
    assert set(out.column("old").to_pylist()) == {"1.0"}
    assert out.column("plus").to_pylist() == [i + 1 for i in range(7)]
    assert set(out.column("new").to_pylist()) == {"2.0"}
    assert set(out.column("major").to_pylist()) == {2}


def test_two_environments_run_as_one_run_with_both_in_its_metrics(offline: Path) -> None:
    table = pa.table({"id": list(range(10)), "other": [f"o{i}" for i in range(10)]})
    with quiver.Session(workers=1) as s:
        out = s.map(
            table,
            udfs=[quiver.call(f"{offline}:new", "id"), quiver.call(f"{offline}:old", "id")],
            batch_rows=4,
        )
        result = out.read_all()
        metrics = s.metrics(out)
        assert s.workers_started == 2  # one worker in each environment
    # Every input column, then the results in the order of udfs=[...].
    assert result.column_names == ["id", "other", "new", "old"]
    assert result.column("other").to_pylist() == [f"o{i}" for i in range(10)]
    assert result.column("new").to_pylist() == ["2.0"] * 10
    assert result.column("old").to_pylist() == ["1.0"] * 10
    # One run read the input once and fed both environments' workers.
    assert (metrics["rows"], metrics["batches"]) == (10, 3)
    groups = {tuple(g["udfs"]): g for g in metrics["groups"]}
    assert set(groups) == {("new",), ("old",)}
    assert all(g["rows_out"] == 10 and g["batches"] == 3 for g in groups.values())


def test_a_failing_install_raises_before_any_data_moves(offline: Path) -> None:
    @quiver.udf(returns="int64", requirements=["quiverdemo==9.9"])
    def never(x: pa.Array) -> pa.Array:
        return x

    with quiver.Session(workers=1) as s:
        with pytest.raises(quiver.QuiverError, match=r"quiverdemo==9\.9"):
            s.map(pa.table({"x": [1]}), udfs=[quiver.call(never, "x")])
