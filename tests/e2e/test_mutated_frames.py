"""The engine against a worker that answers with mutated frames (tests/e2e/fake/).

Over many seeds, every `quiver run` must end either with exit 0 and exactly the results the
worker's bytes hold (read by pyarrow with full validation), or with exit 1 and an error - never
a signal, never an output that fails full validation, never a temporary file or private
directory left behind. CI runs $QUIVER_FAKE_SEEDS seeds (200 by default); raise it locally.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pytest
from quiver_e2e import leftovers, people_table, read_table, spec, write_table

FAKE_WORKER = Path(__file__).resolve().parent / "fake" / "mutating_worker.py"
ROWS, BATCH_ROWS = 300, 50  # six batches: replies 0 (InitResponse) to 7 (FinishResponse)


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    """Return an executable the engine starts as its 'Python': it runs the fake worker."""
    wrapper = tmp_path / "fake-python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_WORKER}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@pytest.fixture
def private_tmp():
    """Return a short directory for the engine's TMPDIR (socket paths must stay short)."""
    directory = Path(tempfile.mkdtemp(prefix="qv-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def run_seed(quiver, fake_python, private_tmp, source, work: Path, seed: int, mode: str):
    """Run quiver once against the fake worker; return (seed, problem or None, stderr)."""
    suffix = [".arrow", ".parquet", ".csv"][seed % 3]
    out = work / f"out-{seed}{suffix}"
    log = work / f"seed-{seed}.jsonl"
    env = dict(
        quiver.env,
        TMPDIR=str(private_tmp),
        QUIVER_FAKE_SEED=str(seed),
        QUIVER_FAKE_MODE=mode,
        QUIVER_FAKE_LOG=str(log),
    )
    command = [
        str(quiver.binary), "run", str(source), "--udf", spec("y", "untrusted", "echo", "name"),
        "--batch-rows", str(BATCH_ROWS), "--batch-timeout", "10", "--python", str(fake_python),
        "-q", "-o", str(out),
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    return seed, judge(result, out, log, source), result.stderr, result.returncode


def judge(result: subprocess.CompletedProcess, out: Path, log: Path, source: Path) -> str | None:
    """Return what is wrong with one run's outcome, or None."""
    if result.returncode == 1:
        if "quiver: error:" not in result.stderr:
            return "exit 1 without an error message"
        if out.exists():
            return "exit 1 left an output file"
        return None
    if result.returncode != 0:
        return f"exit {result.returncode} (a signal is {-result.returncode})"
    try:
        table = read_table(out)
        table.validate(full=True)
    except (pa.ArrowException, OSError, ValueError) as exc:
        return f"exit 0 with an output that does not read or validate: {exc}"
    sent = [json.loads(line) for line in log.read_text().splitlines()]
    sent.sort(key=lambda entry: entry["sequence"])
    if any(entry["values"] is None for entry in sent):
        return f"exit 0 although the worker sent an invalid result: {sent}"
    want = [value for entry in sent for value in entry["values"]]
    got = table.column("y").to_pylist()
    if got != want:
        mutations = [entry["mutation"] for entry in sent]
        return f"exit 0 with results other than those sent (mutations {mutations})"
    if table.column("id").to_pylist() != list(range(ROWS)):
        return "exit 0 with pass-through columns changed"
    return None


def test_mutated_frames_never_crash_the_engine(quiver, fake_python, private_tmp, tmp_path):
    source = write_table(people_table(ROWS), tmp_path / "in.parquet")
    work = tmp_path / "runs"
    work.mkdir()
    seeds = range(int(os.environ.get("QUIVER_FAKE_SEEDS", "200")))
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(
            pool.map(
                lambda seed: run_seed(
                    quiver, fake_python, private_tmp, source, work, seed, "mutate"
                ),
                seeds,
            )
        )
    exits = [code for *_, code in outcomes]
    print(f"{len(outcomes)} runs: {exits.count(0)} exit 0, {exits.count(1)} exit 1")
    problems = [(seed, problem, stderr) for seed, problem, stderr, _ in outcomes if problem]
    report = "\n".join(f"seed {s}: {p}\n{e[-600:]}" for s, p, e in problems[:10])
    assert not problems, f"{len(problems)} of {len(outcomes)} runs went wrong:\n{report}"
    # A damage the result survives (a flipped bit in a value, a length that still fits) must
    # give exit 0 with what the worker sent: a harness where every seed fails proves nothing.
    assert exits.count(0) >= len(outcomes) // 10 or len(outcomes) < 10, (
        f"only {exits.count(0)} of {len(outcomes)} runs reached exit 0"
    )
    assert leftovers(work) == [], leftovers(work)
    assert list(private_tmp.iterdir()) == [], "private directories left behind"


def test_the_undamaged_fake_worker_gives_exit_0_and_its_results(
    quiver, fake_python, private_tmp, tmp_path
):
    source = write_table(people_table(ROWS), tmp_path / "in.parquet")
    for seed in range(3):  # one per output format
        _, problem, stderr, code = run_seed(
            quiver, fake_python, private_tmp, source, tmp_path, seed, "clean"
        )
        assert (code, problem) == (0, None), stderr
        assert (
            read_table(tmp_path / f"out-{seed}{['.arrow', '.parquet', '.csv'][seed]}").num_rows
            == ROWS
        )


def test_an_unparsable_result_schema_keeps_the_parse_error(
    quiver, fake_python, private_tmp, tmp_path
):
    source = write_table(people_table(ROWS), tmp_path / "in.parquet")
    seed, problem, stderr, _ = run_seed(
        quiver, fake_python, private_tmp, source, tmp_path, 0, "bad-schema"
    )
    assert problem is None, problem
    assert "result schema that does not parse" in stderr, stderr
    assert "-1 fields" not in stderr, stderr
    assert list(private_tmp.iterdir()) == []
