"""A result that does not decode is reported as the worker breaking the protocol, not as lost.

The fake shm worker (tests/e2e/fake/shm_region_worker.py) hands over a half-written or damaged
result: the worker is alive and sent bytes that are no Arrow IPC stream. The run must say that,
and that the worker was stopped - not that a worker "is still running but its connection failed".
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from quiver_e2e import assert_failed, people_table, spec, write_table

FAKE_WORKER = Path(__file__).resolve().parent / "fake" / "shm_region_worker.py"


@pytest.mark.parametrize("mode", ["half", "flip"])
def test_an_undecodable_result_is_a_protocol_violation(quiver, tmp_path, mode):
    python = tmp_path / "fake-python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_WORKER}" "$@"\n')
    python.chmod(0o755)
    source = write_table(people_table(300), tmp_path / "in.parquet")
    out = tmp_path / "out.arrow"
    quiver.env["QUIVER_FAKE_SHM"] = mode
    result = quiver(
        "run", source, "--udf", spec("y", "untrusted", "echo", "name"), "--transport", "shm",
        "--batch-rows", 50, "--batch-timeout", 10, "--python", python, "-q", "-o", out,
    )  # fmt: skip
    message = assert_failed(result, out, "not a valid Arrow IPC stream", "protocol violation")
    assert "the worker was stopped" in message, message
    for misleading in ("worker lost", "still running", "connection failed"):
        assert misleading not in message, message
