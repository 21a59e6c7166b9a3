"""The engine against a shm worker whose results lie, or which attacks results it handed over.

A worker over the shm transport tells the engine where its result lies in shared memory. Every
lie (outside the arena, wrapping, misaligned, empty, half written, flipped bytes) and every
attack on a region already handed over (rewritten, hole punched, arena shrunk) - by a fake worker
or by plain UDF code in the standard worker - must end the run with exit 1 and an error naming the
problem, or exit 0 with an output that passes full validation (for the attacks: holding exactly
the UDF's values) - never a signal, a hang or invalid output, on every output format.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from quiver_e2e import assert_failed, people_table, read_table, spec, write_table

FAKE_WORKER = Path(__file__).resolve().parent / "fake" / "shm_region_worker.py"


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    """Return an executable the engine starts as its 'Python': it runs the lying worker."""
    wrapper = tmp_path / "fake-python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_WORKER}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def run(quiver, fake_python, tmp_path, mode: str, out_name: str = "out.arrow"):
    """Run quiver over shm with the lying worker; return (result, output path)."""
    source = write_table(people_table(300), tmp_path / "in.parquet")
    out = tmp_path / out_name
    quiver.env["QUIVER_FAKE_SHM"] = mode
    result = quiver(
        "run", source, "--udf", spec("y", "untrusted", "echo", "name"), "--transport", "shm",
        "--batch-rows", 50, "--batch-timeout", 10, "--python", fake_python, "-q", "-o", out,
    )  # fmt: skip
    return result, out


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("past-end", "outside the output arena"),
        ("wrap", "outside the output arena"),
        ("misaligned", "not 8-byte aligned"),
        ("empty", "is empty"),
        ("half", "batch 0"),
    ],
)
def test_a_lying_region_fails_the_run_cleanly(quiver, fake_python, tmp_path, mode, says):
    result, out = run(quiver, fake_python, tmp_path, mode)
    assert_failed(result, out, says)


def assert_clean(result, out: Path, expected: pa.Table) -> None:
    """Exit 1 with an error and no output, or exit 0 with a valid output equal to `expected`."""
    assert result.returncode in (0, 1), f"exit {result.returncode}\n{result.stderr}"
    if result.returncode == 1:
        assert "quiver: error:" in result.stderr, result.stderr
        assert not out.exists()
        return
    table = read_table(out)
    table.validate(full=True)
    assert table.column("y").to_pylist() == expected.column("name").to_pylist()


@pytest.mark.parametrize("mode", ["rewrite", "punch", "shrink"])
@pytest.mark.parametrize("suffix", [".arrow", ".parquet", ".csv"])
def test_a_fake_worker_cannot_change_a_result_it_handed_over(
    quiver, fake_python, tmp_path, mode, suffix
):
    result, out = run(quiver, fake_python, tmp_path, mode, f"out{suffix}")
    assert_clean(result, out, people_table(300))


@pytest.mark.parametrize("mode", ["rewrite", "punch"])
@pytest.mark.parametrize("suffix", [".arrow", ".parquet", ".csv"])
def test_a_udf_cannot_change_a_result_its_worker_handed_over(quiver, tmp_path, mode, suffix):
    source = write_table(people_table(3000), tmp_path / "in.parquet")
    out = tmp_path / f"out{suffix}"
    quiver.env["QUIVER_SHM_ATTACK"] = mode
    udf = spec("y", "shm_attack", "echo_and_attack", "name")
    result = quiver(
        "run", source, "--udf", udf, "--transport", "shm", "--batch-rows", 100,
        "--batch-timeout", 10, "-q", "-o", out,
    )  # fmt: skip
    assert_clean(result, out, people_table(3000))


# The fake worker's seeded fuzz of lies and attacks: 12 seeds in CI, $QUIVER_SHM_FAKE_SEEDS locally.
@pytest.mark.parametrize("seed", range(int(os.environ.get("QUIVER_SHM_FAKE_SEEDS", "12"))))
def test_damaged_results_never_crash_the_engine(quiver, fake_python, tmp_path, seed):
    result, out = run(quiver, fake_python, tmp_path, f"seed:{seed}", f"out-{seed}.arrow")
    assert result.returncode in (0, 1), f"exit {result.returncode}\n{result.stderr}"
    if result.returncode == 1:
        assert "quiver: error:" in result.stderr, result.stderr
        assert not out.exists()
    else:
        table = read_table(out)
        table.validate(full=True)
        assert isinstance(table, pa.Table)
