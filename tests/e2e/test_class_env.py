"""`quiver run` with class UDFs (--udf-arg) and per-UDF Python environments (--requirements,
@quiver.udf(requirements=...)). Environments install wheels built in the test's directory: no
network."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from quiver_e2e import ROOT, assert_failed, assert_ok, people_table, read_table, spec, write_table

_wheelhouse_spec = importlib.util.spec_from_file_location(
    "wheelhouse", ROOT / "python" / "tests" / "wheelhouse.py"
)
wheelhouse = importlib.util.module_from_spec(_wheelhouse_spec)
_wheelhouse_spec.loader.exec_module(wheelhouse)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A Parquet input of 1000 rows (10 batches with --batch-rows 100)."""
    return write_table(people_table(1000), tmp_path / "in.parquet")


@pytest.fixture(scope="module")
def offline_envs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment variables that build environments from a local wheelhouse (shared cache)."""
    base = tmp_path_factory.mktemp("envs")
    wheels = base / "wheels"
    wheels.mkdir()
    wheelhouse.make_wheel(wheels, "quiverdemo", "1.0")
    wheelhouse.make_wheel(wheels, "quiverdemo", "2.0")
    return wheelhouse.offline_environment(wheels, base / "cache")


# ---- class UDFs ----


def test_class_udfs_in_every_flavour_with_constructor_arguments(quiver, source, tmp_path):
    out = tmp_path / "out.parquet"
    reports = tmp_path / "reports"
    reports.mkdir()
    result = quiver(
        "run", source, "--batch-rows", "100", "--workers", "2",
        "--udf", spec("plus", "classes", "Counted", "id"),
        "--udf-arg", "plus.amount=1000", "--udf-arg", f"plus.report_dir={reports}",
        "--udf", spec("label", "classes", "Labeller", "name"),
        "--udf-arg", "label.prefix=Dr. ", "--udf-arg", "label.upper=true",
        "--udf", spec("n", "classes", "Numbered", "id"), "--udf-arg", "n.start=1",
        "--select", "id,name", "-o", out,
    )  # fmt: skip
    assert_ok(result)
    table = read_table(out)
    ids = table.column("id").to_pylist()
    assert table.column("plus").to_pylist() == [i + 1000 for i in ids]
    names = table.column("name").to_pylist()
    assert table.column("label").to_pylist() == [
        None if n is None else ("Dr. " + n).upper() for n in names
    ]
    assert len(table.column("n")) == 1000
    # Each worker built its Counted once (SETUPS counts Counted instances of the process) and
    # closed it when the run ended, after all its batches.
    closed = sorted(p.read_text().split() for p in reports.iterdir())
    assert 1 <= len(closed) <= 2
    assert all(setups == "1" for setups, _ in closed)
    assert sum(int(batches) for _, batches in closed) == 10


def test_a_failing_setup_names_the_class(quiver, source, tmp_path):
    out = tmp_path / "out.parquet"
    result = quiver(
        "run", source,
        "--udf", spec("m", "classes", "NeedsModel", "id"),
        "--udf-arg", "m.model_path=/nonexistent/model.bin", "-o", out,
    )  # fmt: skip
    assert_failed(result, out, "setting up class NeedsModel", "FileNotFoundError", "model.bin")


def test_a_missing_constructor_argument_names_the_class(quiver, source, tmp_path):
    out = tmp_path / "out.parquet"
    result = quiver("run", source, "--udf", spec("m", "classes", "NeedsModel", "id"), "-o", out)
    assert_failed(result, out, "NeedsModel", "model_path")


def test_udf_arg_for_an_unknown_udf_is_a_usage_error(quiver, source, tmp_path):
    out = tmp_path / "out.parquet"
    result = quiver(
        "run", source, "--udf", spec("plus", "classes", "Counted", "id"),
        "--udf-arg", "pluss.amount=1", "-o", out,
    )  # fmt: skip
    assert_failed(result, out, "--udf-arg names UDF 'pluss'", "(plus)", status=2)


# ---- environments ----


def test_conflicting_requirements_run_side_by_side(quiver, source, tmp_path, offline_envs):
    quiver.env.update(offline_envs)
    out = tmp_path / "out.parquet"
    result = quiver(
        "run", source, "--batch-rows", "250",
        "--udf", spec("old", "versions", "old_version", "id"),
        "--udf", spec("new", "versions", "new_version", "id"),
        "--udf", spec("here", "any_version", "demo_version", "id"),
        "--udf", spec("plus", "classes", "Counted", "id"), "--udf-arg", "plus.amount=1",
        "--select", "id", "-o", out,
    )  # fmt: skip
    assert_ok(result)
    assert "building a Python environment for quiverdemo<2" in result.stderr
    table = read_table(out)
    assert table.column_names == ["id", "old", "new", "here", "plus"]
    assert set(table.column("old").to_pylist()) == {"1.0"}
    assert set(table.column("new").to_pylist()) == {"2.0"}
    assert set(table.column("here").to_pylist()) == {"none"}
    assert table.column("plus").to_pylist() == [i + 1 for i in table.column("id").to_pylist()]
    # The second run finds both environments built.
    again = quiver(
        "run", source, "--udf", spec("old", "versions", "old_version", "id"),
        "--udf", spec("new", "versions", "new_version", "id"), "-o", tmp_path / "again.parquet",
    )  # fmt: skip
    assert_ok(again)
    assert "building" not in again.stderr


def test_requirements_file_for_every_python_udf(quiver, source, tmp_path, offline_envs):
    quiver.env.update(offline_envs)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# the newest\nquiverdemo==2.0\n")
    out = tmp_path / "out.parquet"
    result = quiver(
        "run", source, "--requirements", requirements,
        "--udf", spec("v", "any_version", "demo_version", "id"),
        "--udf", spec("prefix", "any_version", "interpreter", "id"), "-o", out,
    )  # fmt: skip
    assert_ok(result)
    table = read_table(out)
    assert set(table.column("v").to_pylist()) == {"2.0"}
    (prefix,) = set(table.column("prefix").to_pylist())
    assert prefix.startswith(offline_envs["QUIVER_ENV_DIR"]) and prefix != sys.prefix


def test_a_failing_install_names_the_package_and_the_log(quiver, source, tmp_path, offline_envs):
    quiver.env.update(offline_envs)
    out = tmp_path / "out.parquet"
    result = quiver("run", source, "--udf", spec("m", "versions", "missing", "id"), "-o", out)
    stderr = assert_failed(result, out, "quiver-no-such-package-xyz", "the full log is")
    assert "cannot prepare the Python environments" in stderr


def test_a_missing_requirements_file(quiver, source, tmp_path):
    out = tmp_path / "out.parquet"
    result = quiver(
        "run", source, "--requirements", tmp_path / "nope.txt",
        "--udf", spec("v", "any_version", "demo_version", "id"), "-o", out,
    )  # fmt: skip
    assert_failed(result, out, "cannot read the requirements file", "nope.txt")
